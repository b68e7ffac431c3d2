"""Property test of the edit bodies: whatever JSON arrives, parsing either refuses it with a
400 naming a parameter, or yields edit parameters that can be stored, served back and read
again unchanged by the edit functions (``from_mapping``) — never anything in between."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cinepatch.editing.params import parse_params
from cinepatch.errors import APIError, InvalidParameter
from cinepatch.service.http import parse
from cinepatch.service.schemas import BlendVideos, EditVideo, ExtendVideo, LoopVideo, RecutVideo

BODIES = {"extend": ExtendVideo, "remix": EditVideo, "loop": LoopVideo, "recut": RecutVideo, "blend": BlendVideos}

# Numbers and text as an attacker sends them: non-finite, huge, negative, loose spellings, lone
# surrogates and NUL among ordinary values.
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["1", "0.5", "1e999", "Infinity", "1_0", "２", " 3", "-1", "0x10", ""]),
)
texts = st.one_of(st.text(max_size=8), st.sampled_from(["forward", "backward", "join", "mix", "\ud800", "a\x00b"]))
hostile = st.one_of(numbers, texts, st.none(), st.booleans(), st.lists(numbers, max_size=3),
                    st.lists(st.lists(numbers, max_size=3), max_size=3))
seconds = st.one_of(st.floats(min_value=0, max_value=12), st.integers(min_value=0, max_value=12),
                    st.sampled_from(["1", "2.5", "0.25"]))
span = st.tuples(seconds, seconds).map(list)
REF = {"id": "video_" + "ab" * 16}

# A plausible body per edit (so parsing often succeeds and what it yields is checked) …
PLAUSIBLE = {
    "extend": st.fixed_dictionaries({"video": st.just(REF)}, optional={
        "direction": st.sampled_from(["forward", "backward"]), "seconds": seconds}),
    "remix": st.fixed_dictionaries({"video": st.just(REF)}, optional={"strength": seconds, "prompt": st.text(max_size=5)}),
    "loop": st.fixed_dictionaries({"video": st.just(REF)}, optional={"bridge": seconds}),
    "recut": st.one_of(
        st.fixed_dictionaries({"video": st.just(REF), "start": seconds, "end": seconds}, optional={"at": seconds}),
        st.fixed_dictionaries({"video": st.just(REF), "ranges": st.lists(span, min_size=1, max_size=3)},
                              optional={"at": seconds}),
    ),
    "blend": st.fixed_dictionaries({"videos": st.just([REF, REF])}, optional={
        "mode": st.sampled_from(["join", "mix"]), "transition": seconds, "with": st.text(max_size=5)}),
}
FIELDS = ["video", "videos", "direction", "seconds", "strength", "prompt", "bridge", "start", "end", "ranges",
          "at", "mode", "transition", "with", "seed", "size", "colour"]


def body(edit: str) -> st.SearchStrategy[dict]:
    """… and, half the time, one field of it replaced by (or added as) something hostile."""
    spoiled = st.tuples(PLAUSIBLE[edit], st.sampled_from(FIELDS), hostile).map(lambda t: {**t[0], t[1]: t[2]})
    return st.one_of(PLAUSIBLE[edit], spoiled)


def servable(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError):
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(BODIES)).flatmap(lambda edit: st.tuples(st.just(edit), body(edit))))
def test_edit_bodies_are_refused_or_parsed_into_servable_parameters(case):
    edit, fields = case
    try:
        parsed = parse(BODIES[edit], fields)
        params = parsed.params()
    except APIError as exc:
        assert exc.status == 400 and exc.param, exc
        event("refused by the schema")
        return
    except InvalidParameter as exc:
        assert exc.name and "allowed" in str(exc)
        event("refused by the edit's parameters")
        return
    event(f"parsed: {edit}")
    stored = params.to_dict() if params is not None else {}
    assert servable(stored), stored
    assert servable(parsed.model_dump(mode="json", by_alias=True))
    for number in _numbers(stored):
        assert math.isfinite(number)
    again = parse_params(edit, json.loads(json.dumps(stored)))  # what the worker reads back
    if params is not None:
        assert again == params


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    return []

"""The one table of limits: the same ranges wherever a request enters."""

from __future__ import annotations

import math

import pytest

from cinepatch import limits
from cinepatch.app import VideoRequest
from cinepatch.errors import InvalidParameter


@pytest.mark.parametrize("limit, inside, outside", [
    (limits.SEED, [0, 2**31 - 1], [-1, 2**31, 2**63 - 1, 1.0, True, math.inf]),
    (limits.STEPS, [1, 500], [0, 501, 1000, math.nan]),
    (limits.FPS, [1, 60], [0, 61, 2.5]),
    (limits.SECONDS, [0.01, 60], [0, -1, 60.01, math.inf, math.nan, "4"]),
    (limits.STRENGTH, [0.1, 1], [0, 1.01]),
])
def test_a_limit_accepts_its_range_and_names_itself_outside_it(limit, inside, outside):
    for value in inside:
        assert limit.check(value) == value
    for value in outside:
        with pytest.raises(InvalidParameter) as info:
            limit.check(value)
        assert info.value.name == limit.name and limit.describe() in str(info.value)


def test_the_app_and_the_api_share_the_seed_and_steps_limits():
    from cinepatch.service.schemas import CreateVideo

    VideoRequest(prompt="a kite", seed=2**31 - 1, steps=500)
    for field, value in (("seed", 2**31), ("steps", 501)):
        with pytest.raises(InvalidParameter, match=field):
            VideoRequest(prompt="a kite", **{field: value})
        with pytest.raises(ValueError, match=field):
            CreateVideo.model_validate({"prompt": "a kite", field: value})


@pytest.mark.parametrize("text, problem", [("a \ud800 kite", "surrogate"), ("a\x00kite", "NUL"), ("x" * 2001, "at most")])
def test_text_must_be_valid_unicode_without_nul(text, problem):
    with pytest.raises(InvalidParameter, match=problem):
        limits.check_text(text, name="prompt")
    with pytest.raises(InvalidParameter, match="prompt"):
        VideoRequest(prompt=text)

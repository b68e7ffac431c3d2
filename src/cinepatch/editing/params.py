"""One frozen dataclass per edit's parameters, parsed once where a request enters.

The HTTP API builds these from its typed request bodies, the CLI from its flags, and the edit
functions from the stored job's mapping (``from_mapping``), so the rules live in one place:
a value outside its range is an :class:`~cinepatch.errors.InvalidParameter` naming it, before
any job exists. Checks that need the source video (a re-cut range inside its length) stay in
the edit functions, which know the source.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cinepatch import limits
from cinepatch.errors import InvalidParameter

__all__ = [
    "ExtendParams",
    "RemixParams",
    "DEFAULT_STRENGTH",
    "PLANNED_STRENGTH",
    "RecutParams",
    "LoopParams",
    "BlendParams",
    "EditParams",
    "PARAMS",
    "parse_params",
]

# A remix's strength when none is given: with a plan (read from the source or given), the
# plan carries the tracks and timing, so the source is re-imagined fully under it (a new
# background colour survives any lower strength); without one, only the source's pixels carry
# the motion, and 0.7 keeps it.
DEFAULT_STRENGTH = 0.7
PLANNED_STRENGTH = 1.0
DEFAULT_BRIDGE = 1.0


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameter(name, value, "a finite number")
    return float(value)


def _seconds(value: object, name: str, limit: limits.Limit) -> float:
    """Seconds ``0 < value <= limit.high`` (a length of nothing is no edit)."""
    seconds = _number(value, name)
    if not 0 < seconds <= limit.high:
        raise InvalidParameter(name, value, f"seconds, more than 0 and at most {limit.high:g}")
    return seconds


def _fields(cls: type, mapping: Mapping[str, object]) -> dict[str, object]:
    names = {f.name: f.name.rstrip("_") for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(names.values()))
    if unknown:
        raise InvalidParameter("params", unknown, f"keys among {sorted(names.values())}")
    # None is "not given": the CLI passes its unset flags through as None.
    return {field: mapping[key] for field, key in names.items() if mapping.get(key) is not None}


class _Params:
    """``from_mapping`` / ``to_dict``: the stored form is the JSON object the API received."""

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object] | None) -> Any:
        return cls(**_fields(cls, mapping or {}))  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None:
                out[f.name.rstrip("_")] = [list(r) for r in value] if f.name == "ranges" else value
        return out


@dataclass(frozen=True)
class ExtendParams(_Params):
    """``seconds`` of new video (None: the request's duration) after or before the source."""

    seconds: float | None = None
    direction: Literal["forward", "backward"] = "forward"

    def __post_init__(self) -> None:
        if self.seconds is not None:
            object.__setattr__(self, "seconds", _seconds(self.seconds, "seconds", limits.SECONDS))
        if self.direction not in ("forward", "backward"):
            raise InvalidParameter("direction", self.direction, "'forward' or 'backward'")


@dataclass(frozen=True)
class RemixParams(_Params):
    strength: float | None = None  # None: PLANNED_STRENGTH with a plan, else DEFAULT_STRENGTH

    def __post_init__(self) -> None:
        if self.strength is not None:
            object.__setattr__(self, "strength", float(limits.STRENGTH.check(self.strength)))


@dataclass(frozen=True)
class RecutParams(_Params):
    """``ranges`` of the source to keep (in the order given), placed at ``at`` seconds."""

    ranges: tuple[tuple[float, float], ...]
    at: float | None = None

    def __post_init__(self) -> None:
        allowed = f"a list of 1 to 64 [start, end] pairs in seconds, 0 ≤ start < end ≤ {limits.RANGE_SECONDS.high:g}"
        if not isinstance(self.ranges, (list, tuple)) or not 1 <= len(self.ranges) <= 64:
            raise InvalidParameter("ranges", self.ranges, allowed)
        ranges = []
        for pair in self.ranges:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise InvalidParameter("ranges", pair, allowed)
            start, end = (_number(x, "ranges") for x in pair)
            if not 0 <= start < end <= limits.RANGE_SECONDS.high:
                raise InvalidParameter("ranges", list(pair), allowed)
            ranges.append((start, end))
        object.__setattr__(self, "ranges", tuple(ranges))
        if self.at is not None:
            object.__setattr__(self, "at", float(limits.RANGE_SECONDS.check(self.at, name="at")))


@dataclass(frozen=True)
class LoopParams(_Params):
    bridge: float = DEFAULT_BRIDGE  # seconds of new frames leading the end back into the start

    def __post_init__(self) -> None:
        object.__setattr__(self, "bridge", _seconds(self.bridge, "bridge", limits.EDIT_SECONDS))


@dataclass(frozen=True)
class BlendParams(_Params):
    """``join``: first video, ``transition`` s of new frames, second video. ``mix``: one scene
    holding the prompt and ``with_`` (a second prompt)."""

    mode: Literal["join", "mix"] = "join"
    transition: float = DEFAULT_BRIDGE
    with_: str | None = None
    strength: float | None = None  # a mix over a source video is a remix of it

    def __post_init__(self) -> None:
        if self.mode not in ("join", "mix"):
            raise InvalidParameter("mode", self.mode, "'join' or 'mix'")
        object.__setattr__(self, "transition", _seconds(self.transition, "transition", limits.EDIT_SECONDS))
        if self.mode == "mix" and (not isinstance(self.with_, str) or not self.with_.strip()):
            raise InvalidParameter("with", self.with_, "a second prompt to mix into the scene")
        if self.with_ is not None:
            limits.check_text(self.with_, name="with")
        if self.strength is not None:
            object.__setattr__(self, "strength", float(limits.STRENGTH.check(self.strength)))


EditParams = ExtendParams | RemixParams | RecutParams | LoopParams | BlendParams
PARAMS: dict[str, type] = {
    "extend": ExtendParams, "remix": RemixParams, "recut": RecutParams, "loop": LoopParams, "blend": BlendParams,
}


def parse_params(edit: str | None, mapping: Mapping[str, object] | None) -> EditParams | None:
    """The typed parameters of ``edit`` (None for edits whose parameters need their sources)."""
    cls = PARAMS.get(edit or "")
    return cls.from_mapping(mapping) if cls is not None else None

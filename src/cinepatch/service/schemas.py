"""Typed request bodies: every field of every endpoint, strict where the request enters.

A body arrives as JSON, urlencoded or multipart (the official clients send multipart, where
every value is text), so numbers may come as JSON numbers or as *plain* decimal text: ASCII
digits with an optional fraction — not ``1e999``, ``Infinity``, ``1_0`` or full-width digits,
which Python's ``float()`` would quietly accept. Text must be valid Unicode without NUL (a lone
surrogate could be stored but never served back). Unknown fields are refused, not ignored.

These models check form; what depends on the running service (its sizes, models, presets and
longest duration) is checked by :mod:`cinepatch.service.deps` against its config. Edit
parameters become the frozen dataclasses of :mod:`cinepatch.editing.params` here, before a
job exists.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from cinepatch import limits
from cinepatch.editing.params import BlendParams, EditParams, ExtendParams, LoopParams, RecutParams, RemixParams
from cinepatch.errors import InvalidParameter

__all__ = [
    "GenerationOptions", "CreateVideo", "RemixVideo", "EditBody", "ExtendVideo", "EditVideo", "LoopVideo",
    "RecutVideo", "BlendVideos", "StoryboardVideo", "StudioLogin", "VideoRef", "ErrorBody", "VideoObject",
    "VideoList",
    "checked_plan",
]

_PLAIN_INT = re.compile(r"[0-9]{1,19}", re.ASCII)
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,10}(\.[0-9]{1,10})?", re.ASCII)
SIZE_PATTERN = r"^[0-9]{2,4}x[0-9]{2,4}$"
VIDEO_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # an unknown but well-formed id is a 404


def _plain_number(value: object, name: str, *, integer: bool) -> float | int:
    """A JSON number, or text of plain ASCII digits (multipart sends everything as text)."""
    if isinstance(value, str):
        if not (_PLAIN_INT if integer else _PLAIN_DECIMAL).fullmatch(value):
            kind = "whole number" if integer else "plain decimal number (like 4 or 2.5)"
            raise InvalidParameter(name, value, f"a {kind} in ASCII digits")
        return int(value) if integer else float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameter(name, value, "a finite number")
    if integer and not isinstance(value, int):
        raise InvalidParameter(name, value, "a whole number")
    return value


def _limited(limit: limits.Limit, *, name: str | None = None) -> Any:
    """A number field checked against ``limit`` from the one table of limits."""
    param = name or limit.name

    def check(value: object) -> float | int:
        return limit.check(_plain_number(value, param, integer=limit.integer), name=param)

    kind = "integer" if limit.integer else "number"
    bounds: dict[str, float] = {"maximum": limit.high}
    bounds["exclusiveMinimum" if limit.open_low else "minimum"] = limit.low
    text = {"type": "string", "pattern": "^[0-9]+$" if limit.integer else r"^[0-9]+(\.[0-9]+)?$"}
    return Annotated[
        float | int, BeforeValidator(check), WithJsonSchema({"anyOf": [{"type": kind, **bounds}, text]})
    ]


def _text(name: str, max_chars: int = int(limits.PROMPT_CHARS.high)) -> Any:
    def check(value: object) -> str:
        return limits.check_text(value, name=name, max_chars=max_chars)

    return Annotated[str, BeforeValidator(check), WithJsonSchema({"type": "string", "maxLength": max_chars})]


def _json_text(value: object) -> object:
    """A list or object sent as JSON text (a multipart field); anything else is left as is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value, parse_constant=_no_constant)
        except json.JSONDecodeError:
            return value
    return value


def _no_constant(name: str) -> object:
    raise InvalidParameter("body", name, "finite numbers (JSON has no NaN or Infinity)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoRef(_Strict):
    id: Annotated[str, Field(pattern=VIDEO_ID_PATTERN)]


def _ref(value: object) -> object:
    value = _json_text(value)
    return {"id": value} if isinstance(value, str) else value


# Field types, named once: each checks its value against the table in cinepatch.limits.
Ref = Annotated[VideoRef, BeforeValidator(_ref)]
Prompt = _text("prompt")
Negative = _text("negative")
With = _text("with")
Size = Annotated[str, Field(pattern=SIZE_PATTERN)]
Seconds = _limited(limits.SECONDS)
Seed = _limited(limits.SEED)
Fps = _limited(limits.FPS)
Steps = _limited(limits.STEPS)
Guidance = _limited(limits.GUIDANCE)
Strength = _limited(limits.STRENGTH)
Bridge = _limited(limits.EDIT_SECONDS, name="bridge")
Transition = _limited(limits.EDIT_SECONDS, name="transition")
Start = _limited(limits.RANGE_SECONDS, name="start")
End = _limited(limits.RANGE_SECONDS, name="end")
At = _limited(limits.RANGE_SECONDS, name="at")
Range = Annotated[list[_limited(limits.RANGE_SECONDS)], Field(min_length=2, max_length=2)]
Name = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


def checked_plan(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A body's scene plan (docs/plans.md) read strictly; a bad field raises InvalidParameter
    naming ``plan.<field>`` (a 400 whose ``param`` is that field). Checked where the route
    reads the options rather than inside pydantic, whose error would name only ``plan``."""
    if value is None:
        return None
    from cinepatch.planning import ScenePlan

    try:
        return ScenePlan.from_dict(value).to_dict()
    except InvalidParameter as exc:
        name = exc.name if exc.name.startswith("plan") else f"plan.{exc.name}"
        raise InvalidParameter(name, exc.value, exc.allowed) from None


Plan = Annotated[
    dict[str, Any],
    BeforeValidator(_json_text),
    WithJsonSchema({"type": "object", "description": "a scene plan of the output (docs/plans.md): version, canvas, "
                    "objects with boxes or keyframes; the video follows it on a model that reads plans"}),
]


class GenerationOptions(_Strict):
    """cinepatch's own knobs beside the OpenAI fields (``extra_body`` in the SDK)."""

    model: Name | None = None
    size: Size | None = None
    seed: Seed | None = None
    fps: Fps | None = None
    steps: Steps | None = None
    guidance: Guidance | None = None
    negative: Negative | None = None
    preset: Name | None = None
    plan: Plan | None = None


class CreateVideo(GenerationOptions):
    """``POST /v1/videos``; ``input_reference`` is an uploaded image (multipart only)."""

    prompt: Prompt
    seconds: Seconds | None = None


class RemixVideo(GenerationOptions):
    prompt: Prompt
    seconds: Seconds | None = None
    strength: Strength | None = None

    def params(self) -> RemixParams | None:
        return RemixParams(strength=self.strength) if self.strength is not None else None


class EditBody(GenerationOptions):
    """An edit of one video: a reference to a completed one (``video``) or an upload."""

    video: Ref | None = None
    prompt: Prompt | None = None
    seconds: Seconds | None = None

    def params(self) -> EditParams | None:
        """The edit's parameters as their frozen dataclass (None: the edit's defaults)."""
        return None


class ExtendVideo(EditBody):
    direction: Literal["forward", "backward"] | None = None

    def params(self) -> ExtendParams:
        return ExtendParams(direction=self.direction or "forward")


class EditVideo(EditBody):
    strength: Strength | None = None

    def params(self) -> RemixParams | None:
        return RemixParams(strength=self.strength) if self.strength is not None else None


class LoopVideo(EditBody):
    bridge: Bridge | None = None

    def params(self) -> LoopParams | None:
        return LoopParams(bridge=self.bridge) if self.bridge is not None else None


class RecutVideo(EditBody):
    """One range (``start``, ``end``) or several (``ranges``), seconds of the source to keep."""

    start: Start | None = None
    end: End | None = None
    ranges: Annotated[list[Range], BeforeValidator(_json_text), Field(min_length=1, max_length=64)] | None = None
    at: At | None = None

    def params(self) -> RecutParams:
        if self.ranges is not None:
            if self.start is not None or self.end is not None:
                raise InvalidParameter("ranges", "both 'ranges' and 'start'/'end'", "one of them")
            return RecutParams(ranges=tuple((a, b) for a, b in self.ranges), at=self.at)
        if self.start is None or self.end is None or not self.end > self.start:
            raise InvalidParameter("end", self.end, "a number of seconds more than 'start' (both required)")
        return RecutParams(ranges=((self.start, self.end),), at=self.at)


class BlendVideos(GenerationOptions):
    videos: Annotated[list[Ref], BeforeValidator(_json_text), Field(min_length=2, max_length=2)]
    prompt: Prompt | None = None
    seconds: Seconds | None = None
    mode: Literal["join", "mix"] | None = None
    transition: Transition | None = None
    with_: Annotated[With | None, Field(alias="with")] = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def params(self) -> BlendParams:
        kw: dict[str, Any] = {"mode": self.mode or "join", "with_": self.with_}
        if self.transition is not None:
            kw["transition"] = self.transition
        return BlendParams(**kw)


class Card(_Strict):
    prompt: Prompt
    seconds: Seconds | None = None


class StoryboardVideo(GenerationOptions):
    cards: Annotated[list[Card], BeforeValidator(_json_text), Field(min_length=1, max_length=int(limits.CARDS.high))]
    prompt: Prompt | None = None


class StudioLogin(_Strict):
    key: Annotated[str, Field(min_length=1, max_length=256)]


# -- replies, for the OpenAPI document ----------------------------------------------------------


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, which the official clients turn into typed errors."""

    error: ErrorDetail


class VideoError(BaseModel):
    code: str
    message: str


class VideoObject(BaseModel):
    id: str
    object: Literal["video"]
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    model: str
    seconds: str
    size: str
    prompt: str
    remixed_from_video_id: str | None
    error: VideoError | None
    cinepatch: dict[str, Any]


class VideoList(BaseModel):
    object: Literal["list"]
    data: list[VideoObject]
    has_more: bool
    first_id: str | None
    last_id: str | None

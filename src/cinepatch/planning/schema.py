"""The scene plan: where each thing is on every frame — the step between a prompt and pixels.

A plan holds boxes, never masks or drawn shapes: shape, colour, texture, occlusion and the look
of motion stay the model's job. It is typed, versioned and read strictly — an unknown field, a
box off the canvas, two keyframes on one frame or too many objects is an
:class:`~cinepatch.errors.InvalidParameter` naming the field (``objects[1].keyframes[2].frame``)
and what is allowed. The format, with a full example, is in docs/plans.md.

Boxes are ``(x0, y0, x1, y1)`` normalised to the canvas: 0..1, x right, y down. An object that
enters or leaves may reach past an edge (coordinates in -0.5..1.5), but every object must touch
the canvas on some frame. Keyframed tracks are interpolated linearly (and held before the first
keyframe and after the last) into one box per frame on load, so everything downstream reads
per-frame boxes only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cinepatch.errors import InvalidParameter
from cinepatch.world.scene import BACKGROUNDS, MAX_OBJECTS

__all__ = [
    "Box",
    "Canvas",
    "PlanBackground",
    "Camera",
    "PlanObject",
    "Occluder",
    "ScenePlan",
    "VERSION",
    "MAX_OBJECTS",
    "MAX_OCCLUDERS",
    "BOX_LIMITS",
    "read_plan",
    "write_plan",
]

Box = tuple[float, float, float, float]

VERSION = 1
MAX_OCCLUDERS = 1  # the world has one pillar
BOX_LIMITS = (-0.5, 1.5)  # how far past an edge an entering or leaving object may be
TEXTURES = ("striped", "checkered")
PANS = ("left", "right")
OCCLUDER_KINDS = ("pillar",)
MAX_PHRASE_CHARS = 200
# libyaml's safe loader and dumper where PyYAML was built with it: ten times faster, same text.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_KEYFRAME_TOLERANCE = 1e-6  # a frame interpolated within this of its true box needs no keyframe
_DECIMALS = 6  # written boxes are rounded to a millionth of the canvas (< 0.001 px at 512 px)


# --- Checks --------------------------------------------------------------------------------


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InvalidParameter(where, value, f"a whole number from {low} to {high}")
    return int(value)


def _choice(value: object, where: str, allowed: Sequence[object]) -> Any:
    if value not in allowed:
        raise InvalidParameter(where, value, ", ".join("null" if a is None else str(a) for a in allowed))
    return value


def _box(value: object, where: str) -> Box:
    """A box as four finite numbers within :data:`BOX_LIMITS`, with x0 < x1 and y0 < y1."""
    lo, hi = BOX_LIMITS
    allowed = f"[x0, y0, x1, y1], numbers from {lo} to {hi}, x0 < x1 and y0 < y1"
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 4:
        raise InvalidParameter(where, value, allowed)
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v):
            raise InvalidParameter(where, list(value), allowed)
        numbers.append(float(v))
    x0, y0, x1, y1 = numbers
    if not (lo <= min(numbers) and max(numbers) <= hi and x0 < x1 and y0 < y1):
        raise InvalidParameter(where, numbers, allowed)
    return (x0, y0, x1, y1)


def _touches_canvas(box: Box) -> bool:
    x0, y0, x1, y1 = box
    return x1 > 0 and x0 < 1 and y1 > 0 and y0 < 1


def _fields(data: object, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """``data`` as a mapping with exactly these keys (the optional ones may be left out)."""
    known = required + optional
    if not isinstance(data, Mapping):
        raise InvalidParameter(where, type(data).__name__, f"a mapping with {', '.join(known)}")
    for key in data:
        if key not in known:
            raise InvalidParameter(f"{where}.{key}", data[key], f"no such field; {where} has {', '.join(known)}")
    for key in required:
        if key not in data:
            raise InvalidParameter(f"{where}.{key}", None, "a value (the field is required)")
    return dict(data)


# --- The format ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Canvas:
    """Pixels and time the plan is laid out on (the video's own size, fps and length)."""

    width: int
    height: int
    fps: int
    frames: int

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = _int(getattr(self, name), f"canvas.{name}", 16, 4096)
            if value % 16:
                raise InvalidParameter(f"canvas.{name}", value, "16 to 4096, a multiple of 16")
        _int(self.fps, "canvas.fps", 1, 60)
        _int(self.frames, "canvas.frames", 1, 60 * self.fps)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True)
class PlanBackground:
    """A world background (WORLD.md): a colour and an optional texture."""

    colour: str = "black"
    texture: str | None = None

    def __post_init__(self) -> None:
        _choice(self.colour, "background.colour", tuple(BACKGROUNDS))
        _choice(self.texture, "background.texture", (None, *TEXTURES))


@dataclass(frozen=True)
class Camera:
    pan: str | None = None  # the camera's direction; the content shifts the other way

    def __post_init__(self) -> None:
        _choice(self.pan, "camera.pan", (None, *PANS))


@dataclass(frozen=True)
class PlanObject:
    """One object: its words, its depth (0 is nearest; larger is farther) and a box per frame."""

    phrase: str
    boxes: tuple[Box, ...]
    depth: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.phrase, str) or not self.phrase.strip() or len(self.phrase) > MAX_PHRASE_CHARS:
            raise InvalidParameter("phrase", self.phrase, f"a non-empty text of at most {MAX_PHRASE_CHARS} characters")
        _int(self.depth, "depth", 0, 99)
        object.__setattr__(self, "boxes", tuple(_box(b, f"boxes[{t}]") for t, b in enumerate(self.boxes)))

    @property
    def track(self) -> np.ndarray:
        """The boxes as an array ``(T, 4)`` float64."""
        return np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)


@dataclass(frozen=True)
class Occluder:
    """Something drawn in front of every object. The world's one kind: a full-height pillar."""

    box: Box
    kind: str = "pillar"

    def __post_init__(self) -> None:
        _choice(self.kind, "kind", OCCLUDER_KINDS)
        box = _box(self.box, "box")
        if not (0 <= box[0] and box[2] <= 1 and box[1] == 0 and box[3] == 1):
            raise InvalidParameter("box", list(box), "a pillar on the canvas: 0 <= x0 < x1 <= 1, y0 = 0, y1 = 1")
        object.__setattr__(self, "box", box)


def _where(prefix: str, exc: InvalidParameter) -> InvalidParameter:
    """``exc`` with its parameter name placed under ``prefix`` (``boxes[3]`` → ``objects[0].boxes[3]``)."""
    return InvalidParameter(f"{prefix}.{exc.name}", exc.value, exc.allowed)


@dataclass(frozen=True)
class ScenePlan:
    """Boxes over time for up to :data:`MAX_OBJECTS` objects, on one canvas (see the module doc)."""

    canvas: Canvas
    objects: tuple[PlanObject, ...]
    background: PlanBackground = field(default_factory=PlanBackground)
    camera: Camera = field(default_factory=Camera)
    occluders: tuple[Occluder, ...] = ()
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise InvalidParameter("version", self.version, str(VERSION))
        objects, occluders = tuple(self.objects), tuple(self.occluders)
        object.__setattr__(self, "objects", objects)
        object.__setattr__(self, "occluders", occluders)
        if not 1 <= len(objects) <= MAX_OBJECTS:
            raise InvalidParameter("objects", f"{len(objects)} objects", f"1 to {MAX_OBJECTS} objects")
        if len(occluders) > MAX_OCCLUDERS:
            raise InvalidParameter("occluders", f"{len(occluders)} occluders", f"at most {MAX_OCCLUDERS} (one pillar)")
        for n, obj in enumerate(objects):
            if len(obj.boxes) != self.canvas.frames:
                raise InvalidParameter(
                    f"objects[{n}].boxes", f"{len(obj.boxes)} boxes", f"one per frame ({self.canvas.frames})"
                )
            if not any(_touches_canvas(box) for box in obj.boxes):
                raise InvalidParameter(
                    f"objects[{n}].boxes",
                    "off the canvas on every frame",
                    "a track that touches the canvas on some frame",
                )

    # --- Reading the plan ------------------------------------------------------------------

    @property
    def frames(self) -> int:
        return self.canvas.frames

    def at(self, frame: int) -> list[tuple[str, Box]]:
        """Every object's ``(phrase, box)`` on ``frame``, in the plan's order."""
        _int(frame, "frame", 0, self.canvas.frames - 1)
        return [(obj.phrase, obj.boxes[frame]) for obj in self.objects]

    def describe(self) -> str:
        """A caption of the plan in world words (what a text-only model is given instead)."""
        names = [f"a {obj.phrase}" for obj in self.objects]
        things = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        look = " ".join(w for w in (self.background.texture, self.background.colour) if w)
        text = f"{things} on a {look} background"
        if self.occluders:
            text += " with a pillar"
        if self.camera.pan is not None:
            text += f"; the camera pans {self.camera.pan}"
        return text

    # --- Other canvases --------------------------------------------------------------------

    def resampled(self, *, frames: int | None = None, fps: int | None = None) -> ScenePlan:
        """The same motion over ``frames`` frames at ``fps``, interpolated in normalised time.

        The first and last frames keep their boxes and the track between is stretched to fit.
        With ``fps`` alone the duration is kept (``frames`` scales with the rate).
        """
        fps = self.canvas.fps if fps is None else _int(fps, "fps", 1, 60)
        if frames is None:
            frames = max(1, round(self.canvas.frames * fps / self.canvas.fps))
        canvas = replace(self.canvas, fps=fps, frames=_int(frames, "frames", 1, 60 * fps))
        old = self.canvas.frames
        at = np.linspace(0.0, old - 1, frames) if frames > 1 else np.zeros(1)
        objects = tuple(replace(obj, boxes=_boxes(_interpolate(np.arange(old), obj.track, at))) for obj in self.objects)
        return replace(self, canvas=canvas, objects=objects)

    def resized(self, *, width: int, height: int) -> ScenePlan:
        """The same plan on a canvas of another size (boxes are normalised, so they stay)."""
        return replace(self, canvas=replace(self.canvas, width=width, height=height))

    # --- Dicts and YAML --------------------------------------------------------------------

    def to_dict(self, *, compact: bool = True) -> dict[str, Any]:
        """Plain data. ``compact``: boxes rounded to 1e-6 and a track that is piecewise linear
        written as its keyframes (the form a person edits); else one exact box per frame."""
        return {
            "version": self.version,
            "canvas": {
                "width": self.canvas.width,
                "height": self.canvas.height,
                "fps": self.canvas.fps,
                "frames": self.canvas.frames,
            },
            "background": {"colour": self.background.colour, "texture": self.background.texture},
            "camera": {"pan": self.camera.pan},
            "objects": [_object_dict(obj, compact=compact) for obj in self.objects],
            "occluders": [{"kind": o.kind, "box": _written(o.box, compact)} for o in self.occluders],
        }

    @classmethod
    def from_dict(cls, data: object) -> ScenePlan:
        """Read a plan strictly (see the module doc); keyframes become one box per frame."""
        top = _fields(data, "plan", ("version", "canvas", "objects"), ("background", "camera", "occluders"))
        _choice(top["version"], "version", (VERSION,))
        canvas = Canvas(**_fields(top["canvas"], "canvas", ("width", "height", "fps", "frames")))
        background = PlanBackground(**_fields(top.get("background", {}), "background", (), ("colour", "texture")))
        camera = Camera(**_fields(top.get("camera", {}), "camera", (), ("pan",)))
        objects = _list(top["objects"], "objects", MAX_OBJECTS)
        occluders = _list(top.get("occluders", []), "occluders", MAX_OCCLUDERS)
        return cls(
            canvas=canvas,
            background=background,
            camera=camera,
            objects=tuple(_read_object(o, f"objects[{n}]", canvas.frames) for n, o in enumerate(objects)),
            occluders=tuple(_read_occluder(o, f"occluders[{n}]") for n, o in enumerate(occluders)),
        )

    def to_yaml(self, *, compact: bool = True) -> str:
        return yaml.dump(
            self.to_dict(compact=compact), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100
        )

    @classmethod
    def from_yaml(cls, text: str) -> ScenePlan:
        """Read a plan from YAML text (JSON is YAML too)."""
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
        except yaml.YAMLError as exc:
            raise InvalidParameter("plan", "unreadable YAML", "a YAML or JSON scene plan", hint=str(exc)) from exc
        return cls.from_dict(data)


# --- Helpers of the format -------------------------------------------------------------------


def _interpolate(frames: np.ndarray, boxes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Boxes ``(len(at), 4)`` linearly between ``boxes`` at ``frames``, held beyond the ends."""
    return np.stack([np.interp(at, frames, boxes[:, k]) for k in range(4)], axis=1)


def _boxes(array: np.ndarray) -> tuple[Box, ...]:
    return tuple((float(a), float(b), float(c), float(d)) for a, b, c, d in array)


def _written(box: Box, compact: bool) -> list[float]:
    return [round(v, _DECIMALS) + 0.0 for v in box] if compact else list(box)


def _keyframe_indices(track: np.ndarray) -> list[int]:
    """Few frames whose linear interpolation reproduces ``track`` to :data:`_KEYFRAME_TOLERANCE`:
    two for a constant-velocity track, every frame for a bounce. Each segment is grown greedily
    (doubling, then bisecting), and every segment kept is checked in full."""
    last = len(track) - 1

    def straight(start: int, end: int) -> bool:
        span = np.arange(start, end + 1)
        line = _interpolate(np.array([start, end]), track[[start, end]], span)
        return bool(np.abs(line - track[span]).max() <= _KEYFRAME_TOLERANCE)

    keep, start = [0], 0
    while start < last:
        good, step = start + 1, 1  # a segment of two frames is always straight
        while good < last and straight(start, min(last, start + 2 * step)):
            good, step = min(last, start + 2 * step), 2 * step
        bad = min(last, start + 2 * step) if good < last else last + 1
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if straight(start, mid) else (good, mid)
        keep.append(good)
        start = good
    return keep


def _object_dict(obj: PlanObject, *, compact: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"phrase": obj.phrase, "depth": obj.depth}
    track = obj.track
    keys = _keyframe_indices(track) if compact else []
    if compact and len(keys) <= len(track) / 2:
        out["keyframes"] = [{"frame": k, "box": _written(obj.boxes[k], True)} for k in keys]
    else:
        out["boxes"] = [_written(box, compact) for box in obj.boxes]
    return out


def _list(value: object, where: str, most: int) -> list:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidParameter(where, type(value).__name__, f"a list of at most {most}")
    if len(value) > most:
        raise InvalidParameter(where, f"{len(value)} entries", f"at most {most}")
    return list(value)


def _read_object(data: object, where: str, frames: int) -> PlanObject:
    obj = _fields(data, where, ("phrase",), ("depth", "boxes", "keyframes"))
    if ("boxes" in obj) == ("keyframes" in obj):
        given = "both" if "boxes" in obj else "neither"
        raise InvalidParameter(f"{where}.boxes", given, "boxes or keyframes, one of them")
    if "keyframes" in obj:
        boxes = _read_keyframes(obj.pop("keyframes"), f"{where}.keyframes", frames)
    else:
        boxes = tuple(_list(obj.pop("boxes"), f"{where}.boxes", frames))
    try:
        return PlanObject(boxes=boxes, **obj)
    except InvalidParameter as exc:
        raise _where(where, exc) from None


def _read_keyframes(value: object, where: str, frames: int) -> tuple[Box, ...]:
    """``[{frame, box}, ...]`` in increasing frame order → one box per frame."""
    keyframes = _list(value, where, frames)
    if not keyframes:
        raise InvalidParameter(where, [], "at least one {frame, box}")
    indices, boxes = [], []
    for n, key in enumerate(keyframes):
        item = _fields(key, f"{where}[{n}]", ("frame", "box"))
        frame = _int(item["frame"], f"{where}[{n}].frame", 0, frames - 1)
        if indices and frame <= indices[-1]:
            raise InvalidParameter(
                f"{where}[{n}].frame",
                frame,
                f"a frame after {indices[-1]} (keyframes in increasing order, one per frame)",
            )
        indices.append(frame)
        boxes.append(_box(item["box"], f"{where}[{n}].box"))
    return _boxes(_interpolate(np.array(indices), np.array(boxes), np.arange(frames)))


def _read_occluder(data: object, where: str) -> Occluder:
    item = _fields(data, where, ("kind", "box"))
    try:
        return Occluder(**item)
    except InvalidParameter as exc:
        raise _where(where, exc) from None


def read_plan(path: str | Path) -> ScenePlan:
    """Read a plan file (YAML or JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameter("plan", str(path), "a readable YAML or JSON scene plan", hint=str(exc)) from exc
    try:
        return ScenePlan.from_yaml(text)
    except InvalidParameter as exc:
        raise InvalidParameter(exc.name, exc.value, exc.allowed, hint=f"in {path}") from None


def write_plan(plan: ScenePlan, path: str | Path) -> Path:
    """Write ``plan`` as YAML (JSON for a ``.json`` path), atomically: an earlier file stays
    whole until the new one is in place."""
    import json

    from cinepatch.io.atomic import atomic_write

    path = Path(path)
    text = json.dumps(plan.to_dict(), indent=1) + "\n" if path.suffix.lower() == ".json" else plan.to_yaml()
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

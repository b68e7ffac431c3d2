"""Reading a scene plan back from pixels: each object's phrase, box per frame and velocity.

Edits plan their output from their sources (an extension continues the tracks it reads in the
clip's last second), so they need the plan a video *shows*. For the embedded model's world this
is measurable: :mod:`cinepatch.world.pixels` — the evaluator's own measurement — labels every
pixel with its world colour, and each object colour becomes one object:

- its **box** per frame is a square as wide as the object (the plan's convention, see
  docs/plans.md), centred on the colour's bounding box; where the box is cut by the canvas edge
  or the pillar, its centre is taken from the uncut side and the object's full width;
- its **phrase** is ``"SIZE COLOUR SHAPE"``, the shape and size classified as the evaluator does;
- frames where it is hidden (behind the pillar, off the canvas) take the box interpolated
  between the frames around them, and hold the nearest one before/after (so an object read
  off the canvas is parked at its last seen place: the reader cannot know where it went);
- the background, texture, pan and pillar are read as the evaluator reads them.

One object per colour (two red circles read as one object): the world's colours name objects
(WORLD.md). Frames with nothing of the world in them give no plan and a warning, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cinepatch.planning.schema import (
    BOX_LIMITS,
    MAX_OBJECTS,
    Camera,
    Canvas,
    Occluder,
    PlanBackground,
    PlanObject,
    ScenePlan,
)
from cinepatch.world.pixels import (
    COLOURS,
    FILL,
    Measurements,
    background_of,
    classify_shape,
    classify_size,
    measure,
    pan_of,
    pillar_span,
)
from cinepatch.world.scene import SIZES

__all__ = ["PlanReading", "read_frames", "velocities"]

# An object must cover a quarter of a small triangle's area on some frame to count (smaller
# specks are H.264 ringing or anti-aliasing in an object colour).
_MIN_AREA = 0.25 * FILL["triangle"] * SIZES["small"] ** 2
_EDGE_PX = 1.0  # a box within this of the canvas edge or the pillar is cut by it


@dataclass(frozen=True)
class PlanReading:
    """The plan read from some frames (None when nothing could be read) and why not; the
    background read, also where no object is visible (None where the frames were not measured)."""

    plan: ScenePlan | None
    warnings: tuple[str, ...] = ()
    background: PlanBackground | None = None


def read_frames(frames: np.ndarray, *, fps: int) -> PlanReading:
    """The scene plan ``frames (T, H, W, 3)`` uint8 show, on their own canvas.

    Frames the world's measurement cannot read (no object colour anywhere, or a canvas the plan
    format cannot hold) give ``PlanReading(None, (reason,))``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        return PlanReading(None, (f"no plan could be read: frames of shape {frames.shape} are not (T, H, W, 3)",))
    t, h, w, _ = frames.shape
    if h % 16 or w % 16 or not (16 <= min(h, w) and max(h, w) <= 4096) or not 1 <= fps <= 60 or t > 60 * fps:
        return PlanReading(None, (f"no plan could be read: a {w}x{h} canvas of {t} frames at {fps} fps is outside the plan format",))
    meas = measure(frames.astype(np.uint8, copy=False), fps=float(fps))
    unit = meas.unit
    present = meas.area >= _MIN_AREA * unit**2  # (T, 8)
    found = [c for c in range(len(COLOURS)) if present[:, c].any()]
    colour, texture, _ = background_of(meas)
    background = PlanBackground(colour=colour, texture=None if texture == "none" else texture)
    if not found:
        return PlanReading(None, ("no plan could be read: no world object is visible in the frames",), background)
    # The largest objects first (their median area where visible), at most the format's three.
    found.sort(key=lambda c: -float(np.median(meas.area[present[:, c], c])))
    warnings: tuple[str, ...] = ()
    if len(found) > MAX_OBJECTS:
        dropped = ", ".join(COLOURS[c] for c in found[MAX_OBJECTS:])
        warnings = (f"the plan keeps the {MAX_OBJECTS} largest objects; {dropped} left out",)
        found = found[:MAX_OBJECTS]
    pillar = pillar_span(meas)
    objects = tuple(_read_object(meas, c, present[:, c], pillar, depth=i) for i, c in enumerate(found))
    pan = pan_of(meas)
    occluders = () if pillar is None else (Occluder(box=(pillar[0] / w, 0.0, pillar[1] / w, 1.0)),)
    plan = ScenePlan(
        canvas=Canvas(width=w, height=h, fps=fps, frames=t),
        background=background,
        camera=Camera(pan=None if pan in (None, "none") else pan),
        objects=objects,
        occluders=occluders,
    )
    return PlanReading(plan, warnings, background)


def _read_object(meas: Measurements, c: int, present: np.ndarray, pillar: tuple[float, float] | None, *, depth: int) -> PlanObject:
    """One colour's object: its phrase and a box per frame (see the module doc)."""
    x0, x1, y0, y1 = (getattr(meas, k)[:, c] for k in ("x0", "x1", "y0", "y1"))
    with np.errstate(invalid="ignore"):
        cut_left = x0 <= _EDGE_PX
        cut_right = x1 >= meas.width - _EDGE_PX
        if pillar is not None:  # the pillar hides the object's side that touches it
            cut_right |= np.abs(x1 - pillar[0]) <= _EDGE_PX + 1
            cut_left |= np.abs(x0 - pillar[1]) <= _EDGE_PX + 1
        cut_top, cut_bottom = y0 <= _EDGE_PX, y1 >= meas.height - _EDGE_PX
    whole = present & ~(cut_left | cut_right | cut_top | cut_bottom)
    widths = (x1 - x0)[whole if whole.any() else present]
    size = float(np.median(widths))  # the object's width in pixels, from its uncut frames
    cx = np.where(cut_left & ~cut_right, x1 - size / 2, np.where(cut_right & ~cut_left, x0 + size / 2, (x0 + x1) / 2))
    cy = np.where(cut_top & ~cut_bottom, y1 - size / 2, np.where(cut_bottom & ~cut_top, y0 + size / 2, (y0 + y1) / 2))
    at = np.arange(len(present))
    seen = np.nonzero(present)[0]
    cx = np.interp(at, seen, cx[seen])  # hidden frames: between the frames around them, held outside
    # A sideways cut leaves a slice whose height is not the object's (a triangle's left edge
    # is low): such frames take their height from the frames around them too.
    level = present & ~(cut_left | cut_right)
    seen = np.nonzero(level if level.any() else present)[0]
    cy = np.interp(at, seen, cy[seen])
    half = size / 2
    low, high = BOX_LIMITS
    boxes = np.stack([(cx - half) / meas.width, (cy - half) / meas.height, (cx + half) / meas.width, (cy + half) / meas.height], 1)
    boxes = np.clip(boxes, low, high)
    return PlanObject(phrase=f"{classify_size(size / meas.unit)} {COLOURS[c]} {_shape(meas, c)}", boxes=tuple(map(tuple, boxes.tolist())), depth=depth)


def _shape(meas: Measurements, c: int) -> str:
    """The shape of the colour's largest component on the sampled frames, as the evaluator
    classifies it (fill of its box, share of its area in the lower half and the top quarter)."""
    best = max((comp for comps in meas.components[c] for comp in comps), key=lambda comp: comp["area"], default=None)
    if best is None:
        return "circle"
    fill = best["area"] / max((best["x1"] - best["x0"]) * (best["y1"] - best["y0"]), 1.0)
    return classify_shape(fill, best["lower"], best["upper"])


def velocities(plan: ScenePlan, *, first: int, last: int) -> np.ndarray:
    """Each object's box velocity ``(N, 4)`` in canvas fractions per frame: the least-squares
    slope of its boxes over frames ``first..last`` (inclusive); zero over a single frame."""
    frames = np.arange(first, last + 1)
    out = np.zeros((len(plan.objects), 4))
    if len(frames) < 2:
        return out
    for n, obj in enumerate(plan.objects):
        out[n] = np.polyfit(frames, obj.track[first : last + 1], 1)[0]
    return out

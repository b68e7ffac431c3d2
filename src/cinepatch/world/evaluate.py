"""The evaluator: does a video show what a prompt (or scene) says? Read from pixels only.

It never sees the renderer's layout; it measures the frames the way any outside checker
could, in fractions of the canvas (so any size, any fps, after H.264 and downscaling). Steps 1
and 2 live in :mod:`cinepatch.world.pixels`, shared with the product's plan reader:

1. **Label** every pixel with its nearest reference colour, and
2. **measure** per frame and colour (see :mod:`cinepatch.world.pixels`).
3. **Check** every attribute the scene implies, each with its measured evidence.

Motion is judged on screen: an object's expected screen velocity is its own plus the pan
shift the scene claims (WORLD.md), so a wrong pan also shows up on the objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cinepatch.errors import InvalidParameter
from cinepatch.world.scene import (
    LINEAR_MOTIONS,
    PILLAR_PLACES,
    POSITIONS,
    SIZES,
    SPEEDS,
    Scene,
    SceneObject,
)
from cinepatch.world.pixels import COLOURS as _COLOURS
from cinepatch.world.pixels import FILL as _FILL
from cinepatch.world.pixels import Measurements, background_of, measure, pan_of
from cinepatch.world.pixels import classify_shape as _classify_shape
from cinepatch.world.pixels import classify_size as _classify_size
from cinepatch.world.pixels import pillar_span as _pillar

__all__ = ["Check", "EvalReport", "evaluate", "measure", "Measurements"]

_SPEED_EDGES = (math.sqrt(SPEEDS["slow"] * SPEEDS["normal"]), math.sqrt(SPEEDS["normal"] * SPEEDS["fast"]))
_STILL_SPEED = 0.06  # below this (min side per second) an object counts as not moving
_GROW_RATIO = (0.72, 1.42)  # size ratio end/start below/above which it shrank/grew


@dataclass(frozen=True)
class Check:
    """One attribute: what the scene implies, what the pixels show, and whether they agree."""

    name: str
    subject: str
    expected: str
    measured: str
    passed: bool
    evidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subject": self.subject,
            "expected": self.expected,
            "measured": self.measured,
            "passed": self.passed,
            "evidence": {k: round(float(v), 4) for k, v in self.evidence.items()},
        }


@dataclass(frozen=True)
class EvalReport:
    scene: Scene
    checks: tuple[Check, ...]
    unobservable: tuple[str, ...]  # attributes the video cannot show (motion in one frame …)
    width: int
    height: int
    frames: int
    fps: float

    @property
    def score(self) -> float:
        """Fraction of checks passed (1.0 when there is nothing to check)."""
        return sum(c.passed for c in self.checks) / len(self.checks) if self.checks else 1.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": round(self.score, 4),
            "video": {"width": self.width, "height": self.height, "frames": self.frames, "fps": self.fps},
            "scene": self.scene.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "unobservable": list(self.unobservable),
        }


# --- Measuring -------------------------------------------------------------------------------


# --- Checking --------------------------------------------------------------------------------


def _fit(t: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``v ≈ a + b t``; (a, b)."""
    if len(t) < 2 or np.ptp(t) == 0:
        return float(np.mean(v)), 0.0
    b, a = np.polyfit(t, v, 1)
    return float(a), float(b)



def _classify_speed(v: float) -> str:
    return "slow" if v < _SPEED_EDGES[0] else "normal" if v < _SPEED_EDGES[1] else "fast"



def _cut_by_border(meas: Measurements, c: int) -> np.ndarray:
    """Per frame: the colour's box touches the canvas border (so part of it may be outside)."""
    with np.errstate(invalid="ignore"):
        return (meas.x0[:, c] <= 0) | (meas.y0[:, c] <= 0) | (meas.x1[:, c] >= meas.width) | (
            meas.y1[:, c] >= meas.height
        )


def _occluded(meas: Measurements, c: int, pillar: tuple[float, float] | None, others: list[int]) -> np.ndarray:
    """Per frame: the colour's box meets the pillar or another named colour's box (so it may be hidden)."""
    with np.errstate(invalid="ignore"):
        hit = np.zeros(len(meas.area), bool)
        if pillar is not None:  # any of its pixels within 2 px of the pillar's columns
            lo, hi = max(0, int(pillar[0]) - 2), min(meas.width, int(math.ceil(pillar[1])) + 2)
            hit |= meas.columns[:, lo:hi, c].any(1)
        if others:
            hit |= meas.touching[:, c, others].any(-1)
    return hit


def _clean_components(meas: Measurements, c: int, pillar, min_area: float, occluded: np.ndarray, others: list[int]) -> list[tuple[float, dict]]:  # noqa: ANN001,E501
    """(time, component) for sampled components cut neither by the border, the pillar nor others."""
    out = []
    for s, comps in zip(meas.sampled, meas.components[c]):
        if occluded[s] and pillar is None:
            continue
        for comp in comps:
            if comp["area"] < min_area:
                continue
            cut = comp["x0"] <= 0 or comp["y0"] <= 0 or comp["x1"] >= meas.width or comp["y1"] >= meas.height
            if pillar is not None and comp["x1"] >= pillar[0] - 1 and comp["x0"] <= pillar[1] + 1:
                cut = True
            if occluded[s] and pillar is not None:
                cut = cut or _box_hits_others(meas, s, comp, c, others)
            if not cut:
                out.append((s / meas.fps, comp))
    return out


def _box_hits_others(meas: Measurements, s: int, comp: dict, c: int, others: list[int]) -> bool:
    """Whether a component's box meets the box of another colour touching this one on frame ``s``."""
    for o in others:
        if not meas.touching[s, c, o]:
            continue
        if comp["x1"] >= meas.x0[s, o] - 1 and comp["x0"] <= meas.x1[s, o] + 1 and comp["y1"] >= meas.y0[s, o] - 1 and comp["y0"] <= meas.y1[s, o] + 1:
            return True
    return False


def _object_checks(
    scene: Scene, colour: str, members: list[SceneObject], meas: Measurements, pillar, checks: list[Check], unobs: list[str]  # noqa: ANN001
) -> None:
    c = _COLOURS.index(colour)
    others = [_COLOURS.index(x) for x in scene.groups() if x != colour]
    occluded = _occluded(meas, c, pillar, others)
    cut = _cut_by_border(meas, c)
    obj = members[0]
    k = len(members)
    unit = meas.unit
    t = np.arange(len(meas.area)) / meas.fps
    name = f"{colour} {obj.shape}" + (f" ×{k}" if k > 1 else "")
    # Presence is judged against the smallest object the world has, not the claimed size (a
    # small object claimed large must fail on size, not look absent).
    smallest = SIZES["small"] * (0.5 if obj.motion == "shrink" else 1.0)
    min_area = 0.25 * 0.5 * (smallest * unit) ** 2
    area = meas.area[:, c]
    visible = area >= min_area

    # Colour: the colour is on screen (at some point, for entering/leaving objects).
    a90 = float(np.quantile(area, 0.9)) / unit**2
    present = a90 * unit**2 >= 0.3 * _FILL[obj.shape] * (smallest * unit) ** 2 * (0.5 if obj.exit != "none" else 1)
    checks.append(Check("colour", name, colour, colour if present else "absent", bool(present), {"area": a90}))
    if not present:  # one failure; nothing else about it can be seen
        unobs.append(f"{name}: count, shape, size and motion (no such object on screen)")
        return

    count, per_frame, frames_counted = _count(meas, c, pillar, min_area, others)
    comps = _clean_components(meas, c, pillar, min_area, occluded, others)
    if k > 1:  # shapes and sizes only from frames where the twins are apart
        comps = [(tc, x) for tc, x in comps if per_frame.get(int(round(tc * meas.fps))) == k]
    checks.append(Check("count", name, str(k), str(count), count == k, {"frames": frames_counted}))
    measured_shape = _shape_and_size(obj, members, comps, unit, name, checks, unobs)
    if len(t) < 2:
        unobs.append(f"{name}: motion (a single frame)")
        return
    _motion(obj, scene, meas, c, k, area, visible, occluded, cut, measured_shape, name, checks, unobs)
    _start_exit_pillar(obj, scene, meas, c, k, area, visible, pillar, others, t, name, checks, unobs)


def _count(meas: Measurements, c: int, pillar, min_area: float, others: list[int]) -> tuple[int, dict[int, int], int]:  # noqa: ANN001
    """The largest number of separate pieces seen on at least 15% of the sampled frames
    (objects of one colour may overlap for a while; a noisy frame must not add one), the pieces
    per sampled frame, and how many frames counted. Frames where another colour covers this one
    are skipped; pieces touching the pillar count in pairs (one object seen on both sides)."""
    clear, paired = [], []
    per_frame = {}
    by_others = _occluded(meas, c, None, others)
    for s, frame_comps in zip(meas.sampled, meas.components[c]):
        big = [x for x in frame_comps if x["area"] >= min_area]
        at_pillar = sum(1 for x in big if pillar is not None and x["x1"] >= pillar[0] - 1 and x["x0"] <= pillar[1] + 1)
        per_frame[s] = len(big)
        if big and not by_others[s]:
            (paired if at_pillar else clear).append(len(big) - at_pillar + math.ceil(at_pillar / 2))
    counts = clear if len(clear) >= 0.15 * len(meas.sampled) else clear + paired
    if not counts:
        counts = [n for n in per_frame.values() if n] or [0]
    values, freq = np.unique(counts, return_counts=True)
    count = int(max(v for v, f in zip(values, freq) if f >= max(1, 0.15 * len(counts))))
    return count, per_frame, len(counts)


def _shape_and_size(
    obj: SceneObject, members: list[SceneObject], comps: list, unit: float, name: str, checks: list[Check], unobs: list[str]
) -> str:
    """Shape and size checks from the object's clean views; returns the shape measured (the
    claimed one when nothing clean was seen)."""
    if not comps:
        unobs.append(f"{name}: shape and size (always cut by the border or the pillar)")
        measured_shape = obj.shape
    else:
        # Shape from the largest views only: a shrinking object ends too small to tell.
        biggest = max(x["area"] for _, x in comps)
        large = [x for _, x in comps if x["area"] >= 0.75 * biggest]
        fill = float(np.median([x["area"] / ((x["x1"] - x["x0"]) * (x["y1"] - x["y0"])) for x in large]))
        lower = float(np.median([x["lower"] for x in large]))
        upper = float(np.median([x["upper"] for x in large]))
        measured_shape = _classify_shape(fill, lower, upper)
        evidence = {"fill": fill, "lower_half": lower, "top_quarter": upper}
        checks.append(Check("shape", name, obj.shape, measured_shape, measured_shape == obj.shape, evidence))
        sizes = np.array([math.sqrt(x["area"] / _FILL[measured_shape]) / unit for _, x in comps])
        times = np.array([s for s, _ in comps])
        if obj.motion in ("grow", "shrink"):
            size0 = _fit(times, sizes)[0]  # the named size is the size at the start
        else:
            size0 = float(np.median(sizes))
        expected_sizes = sorted({o.size for o in members})
        measured_size = _classify_size(size0)
        checks.append(
            Check("size", name, "/".join(expected_sizes), measured_size, measured_size in expected_sizes, {"size": size0})
        )
    return measured_shape


def _motion(
    obj: SceneObject, scene: Scene, meas: Measurements, c: int, k: int, area: np.ndarray, visible: np.ndarray,
    occluded: np.ndarray, cut: np.ndarray, measured_shape: str, name: str, checks: list[Check], unobs: list[str],
) -> None:
    """Motion (and, for linear motions, speed) from the object's uncut, unoccluded frames."""
    unit = meas.unit
    t = np.arange(len(meas.area)) / meas.fps
    duration = t[-1]
    whole = visible & ~occluded & ~cut
    if whole.sum() < 2:
        whole = visible & ~occluded
    if whole.sum() < 2:
        unobs.append(f"{name}: motion (always touching the pillar or another object)")
        return
    # Growth: linear size (from area) at the end over the start, over uncut frames.
    tw = t[whole]
    if k == 1:  # the box's longer side: partial cover shrinks it less than it shrinks the area
        size_t = np.maximum(meas.x1[whole, c] - meas.x0[whole, c], meas.y1[whole, c] - meas.y0[whole, c]) / unit
    else:
        size_t = np.sqrt(area[whole] / k / _FILL[measured_shape]) / unit
    a0, b0 = _fit(tw, size_t)
    ratio = (a0 + b0 * duration) / a0 if a0 > 0 and len(tw) >= 2 else 1.0
    # Velocity on screen, minus the pan shift the scene claims: the object's own motion.
    ax, vx = _fit(tw, meas.cx[whole, c] / unit)
    ay, vy = _fit(tw, meas.cy[whole, c] / unit)
    vx -= scene.pan_shift
    # Bounce: went down, then came back up, with its lowest point in the lower half.
    seen = visible & ~occluded if (visible & ~occluded).sum() >= 3 else visible
    ys = meas.cy[seen, c] / unit
    bottoms = meas.y1[seen, c]
    bounced = False
    for j in range(1, len(ys) - 1):
        drop = ys[j] - ys[: j + 1].min()
        rise = ys[j] - ys[j:].min()
        if drop > 0.08 and rise > 0.03 and bottoms[j] > meas.height / 2:
            bounced = True
            break
    speed = math.hypot(vx, vy)
    if bounced:
        motion = "bounce"
    elif ratio >= _GROW_RATIO[1]:
        motion = "grow"
    elif ratio <= _GROW_RATIO[0]:
        motion = "shrink"
    elif speed < _STILL_SPEED:
        motion = "still"
    elif abs(vx) >= abs(vy):
        motion = "right" if vx > 0 else "left"
    else:
        motion = "down" if vy > 0 else "up"
    # Whatever the motion, nothing may drift sideways to it (this is how a wrong pan shows on
    # a plain background: every object drifts by the pan shift it did not get).
    drift = {"left": abs(vy), "right": abs(vy), "up": abs(vx), "down": abs(vx)}.get(obj.motion, abs(vx))
    if motion == obj.motion and drift > _STILL_SPEED * 1.5:
        motion = f"{motion}, drifting {drift:.2f}/s"
    evidence = {"vx": vx, "vy": vy, "size_ratio": ratio, "drift": drift, "frames": float(whole.sum())}
    checks.append(Check("motion", name, obj.motion, motion, motion == obj.motion, evidence))
    if obj.motion in LINEAR_MOTIONS:
        along = vx if obj.motion in ("left", "right") else vy
        along = abs(along)
        measured_speed = _classify_speed(along)
        checks.append(Check("speed", name, obj.speed, measured_speed, measured_speed == obj.speed, {"speed": along}))


def _start_exit_pillar(
    obj: SceneObject, scene: Scene, meas: Measurements, c: int, k: int, area: np.ndarray, visible: np.ndarray,
    pillar, others: list[int], t: np.ndarray, name: str, checks: list[Check], unobs: list[str],  # noqa: ANN001
) -> None:
    """Start position, entering/leaving, and reappearance behind the pillar."""
    # Start position (one object per colour only: twins share a colour and cannot be told apart).
    if obj.start is not None and k == 1:
        if visible[0]:
            col, row = POSITIONS[obj.start]
            # The box centre (a triangle's centroid sits below its box centre).
            fx = (meas.x0[0, c] + meas.x1[0, c]) / 2 / meas.width
            fy = (meas.y0[0, c] + meas.y1[0, c]) / 2 / meas.height
            tol = 0.04
            ok = (col / 3 - tol <= fx <= (col + 1) / 3 + tol) and (row / 3 - tol <= fy <= (row + 1) / 3 + tol)
            measured = f"{fx:.2f},{fy:.2f} of the canvas"
            checks.append(Check("start", name, obj.start, measured, bool(ok), {"x": fx, "y": fy}))
        else:
            unobs.append(f"{name}: start (not visible on the first frame)")

    # Entering / leaving: little of it on the first / last frame compared with its most.
    if obj.exit != "none":
        peak = max(area.max(), 1.0)
        first, last = area[0] / peak, area[-1] / peak
        if obj.exit == "enters":
            ok = first <= 0.5 and visible.any()
        else:
            ok = last <= 0.5 and visible.any()  # (it may start hidden behind the pillar)
        checks.append(Check("exit", name, obj.exit, f"first {first:.2f}, last {last:.2f} of its largest area",
                            bool(ok), {"first": first, "last": last}))  # fmt: skip

    if obj.behind_pillar and k == 1:
        others_only = _occluded(meas, c, None, others)
        checks.append(_reappearance(obj, scene, c, meas, pillar, t, visible, others_only, name))


def _reappearance(obj: SceneObject, scene: Scene, c: int, meas: Measurements, pillar, t, visible, occluded_by_others, name: str) -> Check:  # noqa: ANN001,E501
    """Hidden behind the pillar, back on the other side where its velocity predicts.

    Tracked by the object's leading edge, which the pillar does not cut once it is past it and
    which stays measurable while the trailing part is still hidden.
    """
    if pillar is None:
        return Check("pillar_crossing", name, "hidden, then reappears", "no pillar", False)
    unit = meas.unit
    v_exp = (obj.velocity[0] + scene.pan_shift) * unit  # px/s on screen
    forward = v_exp > 0
    lead = meas.x1[:, c] if forward else meas.x0[:, c]
    ok_frames = visible & ~occluded_by_others
    with np.errstate(invalid="ignore"):
        # Only the leading edge matters: the trailing side may be cut by the border it came
        # from, or still be behind the pillar.
        if forward:
            before = ok_frames & (lead < pillar[0] - 1)
            after = ok_frames & (lead > pillar[1] + 1) & (lead < meas.width - 1)
        else:
            before = ok_frames & (lead > pillar[1] + 1)
            after = ok_frames & (lead < pillar[0] - 1) & (lead > 1)
    # Inside the pillar's columns the object must never show (the pillar is in front).
    # (2 px in from its edges: H.264 and resizing bleed colour across an edge.)
    inner = meas.columns[:, int(pillar[0]) + 2 : max(int(pillar[0]) + 3, int(pillar[1]) - 2), c]
    shown = int(inner.any(1).sum())
    if not before.any() or not after.any():
        return Check("pillar_crossing", name, "visible before and after the pillar",
                     f"{int(before.sum())} frames before, {int(after.sum())} after", False,
                     {"before": float(before.sum()), "after": float(after.sum())})  # fmt: skip
    tb, xb = t[before], lead[before]
    a, b = _fit(tb, xb) if before.sum() >= 3 else (float(xb[-1] - v_exp * tb[-1]), v_exp)
    error = float(np.abs(lead[after] - (a + b * t[after])).mean()) / unit
    # Object permanence: wherever the prediction puts its leading edge clearly past the pillar
    # and still on canvas, the object must be there (and not touching another object).
    predicted = a + b * t
    half = 0.5 * SIZES[obj.size] * unit  # at least half of it out from behind the pillar
    with np.errstate(invalid="ignore"):
        due = (predicted > pillar[1] + half) & (predicted < meas.width - 2) if forward else (
            (predicted < pillar[0] - half) & (predicted > 2)
        )
    due &= ~occluded_by_others
    missing = int((due & ~visible).sum())
    ok = error <= 0.06 and shown == 0 and missing <= max(1, 0.1 * due.sum())
    return Check(
        "pillar_crossing", name, "hidden behind it, reappears where its velocity predicts",
        f"leading edge off by {error:.3f} of the short side; missing on {missing} of {int(due.sum())} frames "
        f"where it should show; seen in front of the pillar on {shown} frames", bool(ok),
        {"error": error, "before": float(before.sum()), "after": float(after.sum()), "missing": float(missing),
         "frames_in_front": float(shown)},
    )  # fmt: skip


def evaluate(
    frames: np.ndarray, *, fps: float, prompt: str | None = None, scene: Scene | None = None
) -> EvalReport:
    """Check ``frames (T, H, W, 3)`` uint8 against a prompt or a scene (exactly one)."""
    if (prompt is None) == (scene is None):
        raise InvalidParameter("prompt/scene", "both" if prompt else "neither", "exactly one of prompt and scene")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or min(frames.shape[1:3]) < 8:
        raise InvalidParameter("frames", f"{frames.dtype} {frames.shape}", "uint8 (T, H, W, 3) with H, W ≥ 8")
    if not fps > 0:
        raise InvalidParameter("fps", fps, "> 0")
    if scene is None:
        from cinepatch.world.parse import parse_prompt

        scene = parse_prompt(prompt)  # type: ignore[arg-type]
    groups = scene.groups()
    meas = measure(frames, fps=fps, components_for=tuple(groups))
    checks: list[Check] = []
    unobs: list[str] = []
    unit = meas.unit

    # Background colour and texture.
    background, texture, share = background_of(meas)
    checks.append(Check("background", "scene", scene.background.colour, background,
                        background == scene.background.colour, {"share": share}))  # fmt: skip
    checks.append(Check("texture", "scene", scene.background.texture, texture, texture == scene.background.texture,
                        {"dark_fraction": meas.dark_fraction, "stripe_score": meas.stripe_score}))  # fmt: skip

    # Camera pan: visible only on a textured background (WORLD.md); objects carry it anyway.
    pan = pan_of(meas)
    if pan is not None:
        checks.append(Check("pan", "camera", scene.pan, pan, pan == scene.pan, {"texture_speed": meas.texture_speed}))
    else:
        unobs.append("camera pan on the background (plain background or one frame)")

    # Pillar: present or not, and where.
    pillar = _pillar(meas)
    if pillar is None:
        measured = "none"
    else:
        centre = (pillar[0] + pillar[1]) / 2 / meas.width
        measured = min(PILLAR_PLACES, key=lambda p: abs(PILLAR_PLACES[p] - centre))
    expected = "none" if scene.pillar is None else scene.pillar.place
    checks.append(Check("pillar", "scene", expected, measured, measured == expected,
                        {"width": 0.0 if pillar is None else (pillar[1] - pillar[0]) / meas.width}))  # fmt: skip

    # Objects, one colour group at a time.
    for colour, idx in groups.items():
        _object_checks(scene, colour, [scene.objects[i] for i in idx], meas, pillar, checks, unobs)

    # Nothing else: no object of a colour the scene does not name.
    small = 0.5 * (SIZES["small"] * unit) ** 2
    extra = [
        colour for i, colour in enumerate(_COLOURS)
        if colour not in groups and np.quantile(meas.area[:, i], 0.5) >= 0.35 * small
    ]  # fmt: skip
    checks.append(Check("no_other_objects", "scene", "none", ", ".join(extra) or "none", not extra))
    return EvalReport(
        scene=scene,
        checks=tuple(checks),
        unobservable=tuple(unobs),
        width=meas.width,
        height=meas.height,
        frames=len(frames),
        fps=float(fps),
    )

"""The renderer: a :class:`Scene` to frames ``(T, H, W, 3)`` uint8, exactly as WORLD.md says.

Two steps. :func:`layout` turns the scene into numbers — each object's centre and size on
every frame, the pillar's columns — and is where every placement rule lives (start positions
that keep the whole motion inside, entering/leaving, pillar crossings, bounce physics).
:func:`render` then rasterises that layout with numpy, a block of frames at a time, using
coverage masks with a one-pixel anti-aliased edge. :func:`render_layout` rasterises a layout
made elsewhere — a scene plan's boxes (``cinepatch.planning``) — with the same code.

Coordinates are pixels with the origin at the top-left corner of the canvas, x right, y
down; pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cinepatch.errors import InvalidParameter
from cinepatch.world.scene import (
    BACKGROUNDS,
    OBJECT_COLOURS,
    PILLAR_COLOUR,
    PILLAR_PLACES,
    PILLAR_WIDTH,
    POSITIONS,
    SHAPES,
    SIZES,
    SKY_BOTTOM,
    SKY_TOP,
    TEXTURE_DARKEN,
    TEXTURE_PERIOD,
    Background,
    Scene,
    SceneObject,
)

__all__ = [
    "Track",
    "Layout",
    "layout",
    "render",
    "render_layout",
    "render_with_mask",
    "check_canvas",
    "background_rows",
]

# Bounce physics. Gravity is not fixed by the contract; we pick it per clip so the first
# impact comes at 35% of the clip (between 0.3 s and 1.5 s), which makes a bounce visible in
# every clip and always "within 3 seconds". Each bounce keeps 85% of the speed (≤ 20% loss).
BOUNCE_RESTITUTION = 0.85
BOUNCE_FIRST_IMPACT = (0.35, 0.3, 1.5)  # fraction of the clip, min seconds, max seconds
_BLOCK_PIXELS = 1 << 22  # frames are rasterised in blocks of about this many pixels


@dataclass(frozen=True)
class Track:
    """One object's path: centre and bounding-box width, in pixels, per frame ``(T,)``."""

    cx: np.ndarray
    cy: np.ndarray
    size: np.ndarray


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    fps: float
    frames: int
    tracks: tuple[Track, ...]
    pillar: tuple[float, float] | None  # (left, right) columns in pixels
    texture_shift: np.ndarray  # (T,) horizontal shift of the background texture, pixels

    @property
    def unit(self) -> float:
        """min(width, height): the unit of every size and speed in WORLD.md."""
        return float(min(self.width, self.height))

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.frames) / self.fps


def check_canvas(*, width: int, height: int, fps: float, frames: int) -> None:
    """Raise :class:`InvalidParameter` unless the canvas is one WORLD.md allows."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or not 32 <= value <= 512 or value % 16:
            raise InvalidParameter(name, value, "32 to 512, a multiple of 16")
    if not 4 <= fps <= 30:
        raise InvalidParameter("fps", fps, "4 to 30")
    if not isinstance(frames, (int, np.integer)) or not 1 <= frames <= round(60 * fps):
        raise InvalidParameter("frames", frames, f"1 to {round(60 * fps)} (60 s at {fps:g} fps)")


# --- Layout ----------------------------------------------------------------------------------


def _region(index: int, length: float, r: float) -> tuple[float, float]:
    """The centre interval of a third of an axis, keeping the object inside at the start."""
    return max(r, index * length / 3), min(length - r, (index + 1) * length / 3)


def _place(
    rng: np.random.Generator,
    *,
    length: float,
    r_start: float,
    r_max: float,
    disp: np.ndarray,
    region: tuple[float, float] | None,
) -> float:
    """A start centre on one axis so the whole path ``c0 + disp`` stays inside if it can.

    A named region wins over staying inside (the caption said where it starts). When the path
    is longer than the canvas the object starts at the entry side, fully inside, and leaves.
    """
    lo, hi = r_max - disp.min(), length - r_max - disp.max()
    if lo <= hi:
        if region is None:
            return float(rng.uniform(lo, hi))
        a, b = max(lo, region[0]), min(hi, region[1])
        if a <= b:
            return float(rng.uniform(a, b))
        return float(np.clip((lo + hi) / 2, *sorted(region)))
    c0 = r_start if disp[-1] >= 0 else length - r_start
    return float(np.clip(c0, *sorted(region))) if region is not None else c0


def _bounce_y(t: np.ndarray, *, y0: float, floor: float, duration: float) -> np.ndarray:
    """Centre height of a ball dropped from rest at ``y0`` onto ``floor`` (y down)."""
    drop = max(floor - y0, 0.0)
    if drop == 0.0:
        return np.full_like(t, floor)
    frac, lo, hi = BOUNCE_FIRST_IMPACT
    t1 = float(np.clip(frac * duration, lo, hi))
    g = 2 * drop / t1**2
    speed = g * t1  # impact speed
    # Impact times: t1, then each flight lasts 2·u_k/g with u_k = e^k·speed.
    ks = np.arange(1, 80)
    flights = 2 * speed * BOUNCE_RESTITUTION**ks / g
    impacts = np.concatenate([[t1], t1 + np.cumsum(flights)])
    y = np.empty_like(t)
    before = t < t1
    y[before] = y0 + 0.5 * g * t[before] ** 2
    k = np.searchsorted(impacts, t[~before], side="right") - 1  # last impact at or before t
    k = np.minimum(k, len(flights) - 1)
    tau = t[~before] - impacts[k]
    u = speed * BOUNCE_RESTITUTION ** (k + 1)
    y[~before] = floor - np.maximum(u * tau - 0.5 * g * tau**2, 0.0)
    return y


def _sizes(obj: SceneObject, unit: float, t: np.ndarray, duration: float) -> np.ndarray:
    s0 = SIZES[obj.size] * unit
    progress = t / duration if duration > 0 else np.zeros_like(t)
    if obj.motion == "grow":
        return s0 * (1 + progress)  # ×2 over the clip
    if obj.motion == "shrink":
        return s0 * (1 - 0.5 * progress)  # ×½ over the clip
    return np.full_like(t, s0)


def _track(
    obj: SceneObject,
    scene: Scene,
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    t: np.ndarray,
    duration: float,
    pillar_x: float | None,
) -> Track:
    unit = float(min(width, height))
    size = _sizes(obj, unit, t, duration)
    r0, rmax = size[0] / 2, size.max() / 2
    vx = (obj.velocity[0] + scene.pan_shift) * unit
    vy = obj.velocity[1] * unit
    dx, dy = vx * t, vy * t
    col, row = POSITIONS[obj.start] if obj.start is not None else (None, None)
    xregion = _region(col, width, r0) if col is not None else None
    yregion = _region(row, height, r0) if row is not None else None

    if obj.motion == "bounce":
        # Falls from rest from the upper half (a named row is intersected with it).
        top = yregion if yregion is not None else (r0, height / 3)
        y0 = float(rng.uniform(top[0], max(top[0], min(top[1], height / 2))))
        cy = _bounce_y(t, y0=y0, floor=height - r0, duration=duration)
        cx = _place(rng, length=width, r_start=r0, r_max=rmax, disp=dx, region=xregion) + dx
        return Track(cx=cx, cy=cy, size=size)

    cx0 = _place(rng, length=width, r_start=r0, r_max=rmax, disp=dx, region=xregion)
    cy0 = _place(rng, length=height, r_start=r0, r_max=rmax, disp=dy, region=yregion)
    if obj.behind_pillar and pillar_x is not None:
        # The centre crosses the pillar's centre mid-clip, unless that would start it off-canvas.
        cx0 = float(np.clip(pillar_x - dx[-1] / 2, r0, width - r0))
    if obj.exit != "none":
        horizontal = obj.motion in ("left", "right")
        length, disp, v = (width, dx, vx) if horizontal else (height, dy, vy)
        forward = v > 0 if v != 0 else obj.motion in ("right", "down")
        if obj.exit == "enters" and len(t) == 1:
            c0 = r0 if forward else length - r0  # a still image shows it just inside the entry edge
        elif obj.exit == "enters":
            c0 = -r0 if forward else length + r0  # just off the entry edge, touching it
        else:
            # Fully off the exit edge on the last frame; never starting outside.
            c0 = (length + r0 if forward else -r0) - disp[-1]
            c0 = float(np.clip(c0, r0, length - r0))
        if horizontal:
            cx0 = c0
        else:
            cy0 = c0
    return Track(cx=cx0 + dx, cy=cy0 + dy, size=size)


def _overlap(a: Track, b: Track, *, margin: float) -> float:
    """Largest bounding-box overlap of two tracks over the clip, as a fraction of the smaller.

    Boxes are grown by ``margin`` pixels so objects that merely touch count as overlapping.
    """
    ra, rb = a.size / 2 + margin, b.size / 2 + margin
    ox = np.minimum(a.cx + ra, b.cx + rb) - np.maximum(a.cx - ra, b.cx - rb)
    oy = np.minimum(a.cy + ra, b.cy + rb) - np.maximum(a.cy - ra, b.cy - rb)
    area = np.clip(ox, 0, None) * np.clip(oy, 0, None)
    return float((area / np.minimum(a.size, b.size) ** 2).max())


def _pillar_overlap(a: Track, pillar: tuple[float, float], *, margin: float) -> float:
    """Mean fraction of the clip during which ``a`` overlaps the pillar's columns."""
    r = a.size / 2 + margin
    return float(((a.cx + r > pillar[0]) & (a.cx - r < pillar[1])).mean())


def layout(
    scene: Scene, *, width: int, height: int, fps: float, frames: int, seed: int | None = None
) -> Layout:
    """Every object's centre and size on every frame; the pillar's columns; the texture shift.

    Start positions the scene leaves open come from ``numpy.random.default_rng(seed)`` (seed
    ``None`` means 0), so a (scene, seed) pair always lays out, and renders, the same way.
    """
    check_canvas(width=width, height=height, fps=fps, frames=frames)
    rng = np.random.default_rng(0 if seed is None else seed)
    t = np.arange(frames, dtype=np.float64) / fps
    duration = (frames - 1) / fps
    unit = float(min(width, height))
    pillar = None
    pillar_x = None
    if scene.pillar is not None:
        pillar_x = PILLAR_PLACES[scene.pillar.place] * width
        half = PILLAR_WIDTH * width / 2
        pillar = (pillar_x - half, pillar_x + half)
    tracks: list[Track] = []
    margin = 0.03 * unit + 1
    for obj in scene.objects:
        # Where the rng chooses, try a few starts and keep the one overlapping the objects
        # already placed (and, unless it crosses it, the pillar) least, so every object stays
        # countable and visible (twins in parallel lanes).
        best, best_overlap = None, math.inf
        for _ in range(12):
            track = _track(obj, scene, rng, width=width, height=height, t=t, duration=duration, pillar_x=pillar_x)
            worst = max((_overlap(track, other, margin=margin) for other in tracks), default=0.0)
            if pillar is not None and not obj.behind_pillar:
                worst += _pillar_overlap(track, pillar, margin=margin)
            if worst < best_overlap:
                best, best_overlap = track, worst
            if worst == 0.0:
                break
        assert best is not None
        tracks.append(best)
    return Layout(
        width=width,
        height=height,
        fps=float(fps),
        frames=frames,
        tracks=tuple(tracks),
        pillar=pillar,
        texture_shift=scene.pan_shift * unit * t,
    )


# --- Rasterising -----------------------------------------------------------------------------


def background_rows(colour: str, height: int) -> np.ndarray:
    """The background's base colour on every row, ``(H, 3)`` float (sky is a gradient)."""
    if colour == "sky":
        a = np.linspace(0.0, 1.0, height)[:, None]
        return (1 - a) * np.array(SKY_TOP, float) + a * np.array(SKY_BOTTOM, float)
    return np.broadcast_to(np.array(BACKGROUNDS[colour], float), (height, 3)).copy()


def _square_wave(u: np.ndarray, period: float) -> np.ndarray:
    """Coverage of the dark half ``[period/2, period)`` of a square wave, anti-aliased."""
    u = np.mod(u, period)
    half = period / 2
    inside = np.minimum(u - half, period - u)
    outside = -np.minimum(np.abs(half - u), np.minimum(u, period - u))
    signed = np.where(u >= half, inside, outside)
    return np.clip(signed + 0.5, 0.0, 1.0)


def _band(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.minimum(x - lo, hi - x) + 0.5, 0.0, 1.0)


def _coverage(shape: str, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Coverage ``(B, S, S)`` of a shape with half-width ``r (B,)``.

    ``dx (B, 1, S)`` and ``dy (B, S, 1)`` are pixel centres relative to the shape's centre.
    """
    rr = r[:, None, None]
    if shape == "square":
        return np.clip(rr - np.abs(dx) + 0.5, 0, 1) * np.clip(rr - np.abs(dy) + 0.5, 0, 1)
    if shape == "circle":
        return np.clip(rr - np.sqrt(dx * dx + dy * dy) + 0.5, 0, 1)
    # Isosceles triangle, apex up, as wide as it is tall: half-width (dy + r)/2 at height dy.
    side = ((dy + rr) / 2 - np.abs(dx)) / math.sqrt(1.25)
    return np.clip(side + 0.5, 0, 1) * np.clip(rr - dy + 0.5, 0, 1) * np.clip(dy + rr + 0.5, 0, 1)


def render(
    scene: Scene, *, width: int, height: int, fps: float, frames: int, seed: int | None = None
) -> np.ndarray:
    """Render ``scene`` to ``(frames, height, width, 3)`` uint8 RGB frames (see :func:`layout`).

    Objects are drawn in a window around each one, on a canvas padded by the largest window,
    so the cost of an object scales with its size, not the canvas.
    """
    return _render(scene, width=width, height=height, fps=fps, frames=frames, seed=seed, with_mask=False)[0]


def render_with_mask(
    scene: Scene, *, width: int, height: int, fps: float, frames: int, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render`, plus where the objects are: ``(frames, height, width)`` float32 coverage
    in 0..1 (the largest over the objects; the pillar does not hide it). Training weights its
    loss with it, so small objects count for more than their share of the pixels."""
    frames_, mask = _render(scene, width=width, height=height, fps=fps, frames=frames, seed=seed, with_mask=True)
    assert mask is not None
    return frames_, mask


def _render(
    scene: Scene, *, width: int, height: int, fps: float, frames: int, seed: int | None, with_mask: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    plan = layout(scene, width=width, height=height, fps=fps, frames=frames, seed=seed)
    looks = [(obj.colour, obj.shape) for obj in scene.objects]
    return _draw(plan, looks, scene.background, with_mask=with_mask)


def render_layout(plan: Layout, looks: Sequence[tuple[str, str]], background: Background) -> np.ndarray:
    """Rasterise a :class:`Layout` that did not come from :func:`layout` (a scene plan's boxes).

    ``looks`` gives each track's ``(colour, shape)``, drawn in order (later ones in front); the
    pixels are exactly what :func:`render` draws for the same layout.
    """
    if len(looks) != len(plan.tracks) or not looks:
        raise InvalidParameter("looks", len(looks), f"one (colour, shape) per track ({len(plan.tracks)})")
    for colour, shape in looks:
        if colour not in OBJECT_COLOURS:
            raise InvalidParameter("colour", colour, ", ".join(OBJECT_COLOURS))
        if shape not in SHAPES:
            raise InvalidParameter("shape", shape, ", ".join(SHAPES))
    check_canvas(width=plan.width, height=plan.height, fps=plan.fps, frames=plan.frames)
    return _draw(plan, list(looks), background, with_mask=False)[0]


def _draw(
    plan: Layout, looks: list[tuple[str, str]], background: Background, *, with_mask: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    width, height, frames = plan.width, plan.height, plan.frames
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    base = background_rows(background.colour, height).astype(np.float32)  # (H, 3)
    dark = np.clip(base - TEXTURE_DARKEN, 0, 255)
    period = TEXTURE_PERIOD * width
    texture = background.texture
    windows = [int(math.ceil(track.size.max())) + 3 for track in plan.tracks]
    pad = max(windows)
    out = np.empty((frames, height, width, 3), np.uint8)
    mask = np.zeros((frames, height + 2 * pad, width + 2 * pad), np.float32) if with_mask else None
    block = max(1, _BLOCK_PIXELS // (width * height))
    for start in range(0, frames, block):
        sl = slice(start, min(frames, start + block))
        n = sl.stop - sl.start
        canvas = np.zeros((n, height + 2 * pad, width + 2 * pad, 3), np.float32)
        inner = canvas[:, pad : pad + height, pad : pad + width]
        # Background and texture; the texture moves with the content when the camera pans.
        if texture == "none":
            inner[:] = base[None, :, None, :]
        else:
            shift = plan.texture_shift[sl].astype(np.float32)
            cols = _square_wave(xs[None, :] - shift[:, None], period)[:, None, :]  # (n, 1, W)
            if texture == "striped":
                amount = cols
            else:
                rows = _square_wave(ys, period)[None, :, None]  # (1, H, 1)
                amount = cols + rows - 2 * cols * rows  # soft XOR: checks
            np.multiply((dark - base)[None, :, None, :], amount[..., None], out=inner)
            inner += base[None, :, None, :]
        # Objects in scene order (later ones in front), then the pillar in front of all.
        frame_idx = np.arange(n)[:, None, None]
        for (colour, shape), track, size in zip(looks, plan.tracks, windows):
            cx, cy = track.cx[sl].astype(np.float32), track.cy[sl].astype(np.float32)
            # Window origin per frame, kept within the padded canvas (a window wholly off the
            # canvas then simply covers nothing: coverage is computed from true coordinates).
            ox = np.clip(np.floor(cx - size / 2), -pad, width).astype(np.int64)
            oy = np.clip(np.floor(cy - size / 2), -pad, height).astype(np.int64)
            wx = ox[:, None] + np.arange(size)  # (n, S) canvas columns
            wy = oy[:, None] + np.arange(size)
            dx = (wx + 0.5 - cx[:, None])[:, None, :].astype(np.float32)
            dy = (wy + 0.5 - cy[:, None])[:, :, None].astype(np.float32)
            cov = _coverage(shape, dx, dy, (track.size[sl] / 2).astype(np.float32))[..., None]
            iy, ix = (wy + pad)[:, :, None], (wx + pad)[:, None, :]
            patch = canvas[frame_idx, iy, ix]  # (n, S, S, 3)
            patch += cov * (np.array(OBJECT_COLOURS[colour], np.float32) - patch)
            canvas[frame_idx, iy, ix] = patch
            if mask is not None:
                mask_idx = frame_idx + sl.start
                mask[mask_idx, iy, ix] = np.maximum(mask[mask_idx, iy, ix], cov[..., 0])
        if plan.pillar is not None:
            lo, hi = int(math.floor(plan.pillar[0])), int(math.ceil(plan.pillar[1])) + 1
            lo, hi = max(lo, 0), min(hi, width)
            cov = _band(xs[lo:hi], *plan.pillar)[None, None, :, None]
            band = inner[:, :, lo:hi]
            band += cov * (np.array(PILLAR_COLOUR, np.float32) - band)
        out[sl] = np.clip(inner + 0.5, 0, 255).astype(np.uint8)
    return out, (mask[:, pad : pad + height, pad : pad + width] if mask is not None else None)

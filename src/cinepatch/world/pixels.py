"""The world's pixels read back: which world colour each pixel is, and where each colour lies.

This is the half of the evaluator that only *measures* — shared by the evaluator (which checks a
scene against the measurements) and the product (which reads a scene plan back from a video, see
:mod:`cinepatch.editing.reading`), so both see a frame the same way:

1. **Label** every pixel with its nearest reference colour — the 8 object colours, the
   pillar, and every background's base and textured (25 darker) colour per row (the sky is a
   gradient). Nearest-colour labelling splits anti-aliased edges at about half coverage, so
   areas and extents come out unbiased. A 3×3 opening removes the one-pixel rings that
   blended edges (and H.264 ringing) leave in other colours.
2. **Measure** per frame and colour: area, centroid, bounding box; the pillar's columns;
   the background's colour, texture and (from the texture's phase) its horizontal motion.
   On a few sampled frames, connected components give counts, shapes and sizes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from cinepatch.world.render import background_rows
from cinepatch.world.scene import BACKGROUNDS, OBJECT_COLOURS, PAN_SPEED, PILLAR_COLOUR, SIZES, TEXTURE_DARKEN, TEXTURE_PERIOD

__all__ = [
    "COLOURS",
    "BACKGROUND_NAMES",
    "FILL",
    "Measurements",
    "measure",
    "classify_shape",
    "classify_size",
    "pillar_span",
    "background_of",
    "pan_of",
]

COLOURS = list(OBJECT_COLOURS)
BACKGROUND_NAMES = list(BACKGROUNDS)
_PILLAR = len(COLOURS)  # label of the pillar; backgrounds follow: base b at 9+2b, dark at 10+2b
FILL = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}  # area / bounding box
_SAMPLED_FRAMES = 12  # frames that get connected components (counts, shapes, sizes)
# Decision boundaries between the contract's classes (about the geometric means).
_SIZE_EDGES = (math.sqrt(SIZES["small"] * SIZES["medium"]), math.sqrt(SIZES["medium"] * SIZES["large"]))


@dataclass(frozen=True)
class Measurements:
    """Per-frame, per-colour measurements ``(T, 8)`` in pixels, and the scene-level ones."""

    width: int
    height: int
    fps: float
    area: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    columns: np.ndarray  # (T, W, 8) bool: the colour occupies that column
    touching: np.ndarray  # (T, 8, 8) bool: colour i lies within 2 px of colour j
    pillar_columns: np.ndarray  # (W,) fraction of pillar-coloured pixels per column
    background_votes: np.ndarray  # (6,) pixels per background
    dark_fraction: float  # of background pixels, how many are the textured colour
    stripe_score: float  # 1 = dark runs whole columns (stripes), ~0 = alternates (checks)
    texture_speed: float | None  # texture motion, min side per second (x right)
    sampled: np.ndarray  # indices of frames with components
    components: list[list[list[dict[str, float]]]]  # [colour][sample] -> components

    @property
    def unit(self) -> float:
        return float(min(self.width, self.height))


def _references(height: int) -> np.ndarray:
    """Reference colours per row ``(H, R, 3)``: objects, pillar, then each background's pair."""
    refs = [np.broadcast_to(np.array(OBJECT_COLOURS[c], np.float32), (height, 3)) for c in COLOURS]
    refs.append(np.broadcast_to(np.array(PILLAR_COLOUR, np.float32), (height, 3)))
    for name in BACKGROUND_NAMES:
        base = background_rows(name, height).astype(np.float32)
        refs += [base, np.clip(base - TEXTURE_DARKEN, 0, 255)]
    return np.stack(refs, axis=1)


_SKY = 9 + 2 * BACKGROUND_NAMES.index("sky")  # the two labels whose colour changes with the row


@functools.lru_cache(maxsize=1)
def _lookup() -> tuple[np.ndarray, np.ndarray]:
    """Nearest row-independent reference for every colour on a 64³ grid, and the references."""
    refs = _references(1)[0]  # (R, 3); the sky's entries are replaced per row in _label
    fixed = np.delete(np.arange(len(refs)), [_SKY, _SKY + 1])
    grid = (np.arange(64, dtype=np.float32) * 4 + 1.5)
    rgb = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    d = ((rgb[:, None, :] - refs[None, fixed, :]) ** 2).sum(-1)
    return fixed[d.argmin(-1)].astype(np.int8), refs


def _label(frames: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Nearest reference per pixel ``(n, H, W)`` int8.

    A 64³ lookup table finds the nearest of the fixed colours; only the sky's two gradient
    colours, which change with the row, are compared per pixel.
    """
    table, flat_refs = _lookup()
    q = frames >> 2
    idx = (q[..., 0].astype(np.int32) << 12) | (q[..., 1].astype(np.int32) << 6) | q[..., 2]
    labels = table[idx]
    channels = [frames[..., i].astype(np.float32) for i in range(3)]
    nearest = flat_refs[labels]

    def dist(ref: np.ndarray) -> np.ndarray:  # ref broadcastable to (n, H, W, 3)
        return sum((channels[i] - ref[..., i]) ** 2 for i in range(3))

    d_fixed = dist(nearest)
    sky = refs[:, _SKY : _SKY + 2]  # (H, 2, 3)
    d_base = dist(sky[None, :, None, 0])
    d_dark = dist(sky[None, :, None, 1])
    labels = np.where(d_base < d_fixed, np.int8(_SKY), labels)
    labels = np.where((d_dark < d_fixed) & (d_dark < d_base), np.int8(_SKY + 1), labels)
    return labels


def _shift_and(mask: np.ndarray, reduce) -> np.ndarray:  # noqa: ANN001 - np.logical_and / or
    """3×3 erosion (logical_and) or dilation (logical_or) over axes 1, 2; edges replicate."""
    padded = np.pad(mask, [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (mask.ndim - 3), mode="edge")
    h, w = mask.shape[1], mask.shape[2]
    out = padded[:, 1 : 1 + h, 1 : 1 + w].copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            reduce(out, padded[:, dy : dy + h, dx : dx + w], out=out)
    return out


def _clean(mask: np.ndarray) -> np.ndarray:
    """Drop thin slivers, keep shapes whole: the pixels within 2 px of the mask's 3×3 opening.

    A plain opening would also shave the acute corners of small triangles, biasing shape and
    size; taking back the original pixels next to the opened core restores them.
    """
    core = _shift_and(_shift_and(mask, np.logical_and), np.logical_or)
    return mask & _shift_and(_shift_and(core, np.logical_or), np.logical_or)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (4-neighbour) of a boolean stack ``(n, H, W)``; labels 0..k-1, −1 off.

    Min-label propagation with pointer jumping, in numpy (no scipy dependency).
    """
    n, h, w = mask.shape
    big = np.iinfo(np.int64).max
    idx = np.arange(n * h * w, dtype=np.int64).reshape(n, h, w)
    lab = np.where(mask, idx, big)
    while True:
        new = lab.copy()
        np.minimum(new[:, 1:], lab[:, :-1], out=new[:, 1:])
        np.minimum(new[:, :-1], lab[:, 1:], out=new[:, :-1])
        np.minimum(new[:, :, 1:], lab[:, :, :-1], out=new[:, :, 1:])
        np.minimum(new[:, :, :-1], lab[:, :, 1:], out=new[:, :, :-1])
        new = np.where(mask, new, big)
        flat = new.ravel()
        on = flat != big
        for _ in range(4):  # pointer jumping: follow each label to its own label
            flat[on] = flat[flat[on]]
        if np.array_equal(new, lab):
            break
        lab = new
    roots, inverse = np.unique(lab[mask], return_inverse=True)
    out = np.full(mask.shape, -1, np.int64)
    out[mask] = inverse
    return out, len(roots)


def _component_stats(mask: np.ndarray) -> list[list[dict[str, float]]]:
    """Per frame of ``mask (n, H, W)``, its components: area, centroid, box, lower-half share."""
    labels, k = _components(mask)
    result: list[list[dict[str, float]]] = [[] for _ in range(mask.shape[0])]
    if k == 0:
        return result
    fi, yi, xi = np.nonzero(labels >= 0)
    lab = labels[fi, yi, xi]
    area = np.bincount(lab, minlength=k).astype(float)
    frame = np.zeros(k, np.int64)
    frame[lab] = fi
    x0 = np.full(k, np.inf)
    x1 = np.full(k, -np.inf)
    y0 = np.full(k, np.inf)
    y1 = np.full(k, -np.inf)
    np.minimum.at(x0, lab, xi)
    np.maximum.at(x1, lab, xi)
    np.minimum.at(y0, lab, yi)
    np.maximum.at(y1, lab, yi)
    cx = np.bincount(lab, xi + 0.5, k) / area
    cy = np.bincount(lab, yi + 0.5, k) / area
    mid = (y0 + y1 + 1) / 2
    lower = np.bincount(lab, (yi + 0.5 > mid[lab]).astype(float), k) / area
    quarter = y0 + (y1 + 1 - y0) / 4
    upper = np.bincount(lab, (yi + 0.5 < quarter[lab]).astype(float), k) / area
    for j in range(k):
        result[frame[j]].append(
            {"area": area[j], "cx": cx[j], "cy": cy[j], "x0": x0[j], "x1": x1[j] + 1,
             "y0": y0[j], "y1": y1[j] + 1, "lower": lower[j], "upper": upper[j]}  # fmt: skip
        )
    return result


def _texture_phase(lum: np.ndarray, bg: np.ndarray, period: float) -> np.ndarray:
    """Per frame and row, the complex amplitude of the texture's horizontal period ``(n, H)``."""
    w = lum.shape[-1]
    angle = 2 * np.pi * (np.arange(w) + 0.5) / period
    basis = np.stack([np.cos(angle), -np.sin(angle)], axis=1).astype(np.float32)  # (W, 2)
    weight = bg.astype(np.float32)
    count = weight.sum(-1, keepdims=True)
    mean = (lum * weight).sum(-1, keepdims=True) / np.maximum(count, 1)
    re_im = ((lum - mean) * weight) @ basis  # (n, H, 2)
    return re_im[..., 0] + 1j * re_im[..., 1]


def measure(frames: np.ndarray, *, fps: float, components_for: tuple[str, ...] = tuple(COLOURS)) -> Measurements:
    """Measure ``frames (T, H, W, 3)`` uint8; components only for the colours listed."""
    t, h, w, _ = frames.shape
    refs = _references(h)
    n_obj = len(COLOURS)
    n_labels = refs.shape[1]
    area = np.zeros((t, n_obj))
    cx = np.full((t, n_obj), np.nan)
    cy = np.full((t, n_obj), np.nan)
    x0, x1, y0, y1 = (np.full((t, n_obj), np.nan) for _ in range(4))
    pillar_cols = np.zeros(w)
    columns = np.zeros((t, w, n_obj), bool)
    touching = np.zeros((t, n_obj, n_obj), bool)
    bg_votes = np.zeros(len(BACKGROUND_NAMES))
    base_dark = np.zeros((len(BACKGROUND_NAMES), 2))
    stripe = np.zeros((len(BACKGROUND_NAMES), 2))  # Σ over frames of the stripe score, and of weights
    phases: list[np.ndarray] = []
    masks_sampled: dict[str, list[np.ndarray]] = {c: [] for c in components_for}
    sampled = np.unique(np.linspace(0, t - 1, min(t, _SAMPLED_FRAMES)).round().astype(int))
    xs = np.arange(w) + 0.5
    ys = np.arange(h) + 0.5
    chunk = max(1, (1 << 20) // (h * w))
    period = TEXTURE_PERIOD * w
    lum_weights = np.array([0.299, 0.587, 0.114], np.float32)
    bg_masks: list[np.ndarray] = []
    lums: list[np.ndarray] = []
    for start in range(0, t, chunk):
        stop = min(t, start + chunk)
        labels = _label(frames[start:stop], refs)
        onehot = labels[..., None] == np.arange(n_obj)  # (n, H, W, 8)
        onehot = _clean(onehot)
        # Which colours touch which (an object next to another may be partly covered by it).
        near = _shift_and(_shift_and(onehot, np.logical_or), np.logical_or).reshape(len(onehot), -1, n_obj)
        flat = onehot.reshape(len(onehot), -1, n_obj).astype(np.float32)
        touching[start:stop] = (near.transpose(0, 2, 1).astype(np.float32) @ flat) > 0
        col_counts = onehot.sum(1, dtype=np.int32)  # (n, W, 8)
        row_counts = onehot.sum(2, dtype=np.int32)  # (n, H, 8)
        a = col_counts.sum(1)
        area[start:stop] = a
        with np.errstate(invalid="ignore", divide="ignore"):
            cx[start:stop] = (col_counts * xs[None, :, None]).sum(1) / a
            cy[start:stop] = (row_counts * ys[None, :, None]).sum(1) / a
        cols = col_counts > 0
        columns[start:stop] = cols
        rows = row_counts > 0
        present = a > 0
        x0[start:stop] = np.where(present, cols.argmax(1), np.nan)
        x1[start:stop] = np.where(present, w - cols[:, ::-1].argmax(1), np.nan)
        y0[start:stop] = np.where(present, rows.argmax(1), np.nan)
        y1[start:stop] = np.where(present, h - rows[:, ::-1].argmax(1), np.nan)
        # Pixels per (frame, label, column) in one pass.
        n = stop - start
        key = (np.arange(n)[:, None, None] * n_labels + labels.astype(np.int64)) * w + np.arange(w)
        per_col = np.bincount(key.ravel(), minlength=n * n_labels * w).reshape(n, n_labels, w)
        pillar_cols += per_col[:, _PILLAR].sum(0) / h
        for b in range(len(BACKGROUND_NAMES)):
            base, dark = per_col[:, 9 + 2 * b], per_col[:, 10 + 2 * b]  # (n, W)
            bg_votes[b] += base.sum() + dark.sum()
            base_dark[b] += (base.sum(), dark.sum())
            # Per frame (a pan moves the stripes): do dark pixels fill whole columns?
            total = base + dark
            frac = dark / np.maximum(total, 1)
            stripe[b] += ((np.abs(2 * frac - 1) * total).sum(), total.sum())
        bg_masks.append(labels >= 9)
        lums.append(frames[start:stop].astype(np.float32) @ lum_weights)
        for c in components_for:
            pick = sampled[(sampled >= start) & (sampled < stop)] - start
            if len(pick):
                masks_sampled[c].append(onehot[pick, :, :, COLOURS.index(c)])
    best = int(np.argmax(bg_votes))
    base_n, dark_n = base_dark[best]
    dark_fraction = float(dark_n / max(base_n + dark_n, 1))
    stripe_score = float(stripe[best, 0] / max(stripe[best, 1], 1))
    texture_speed = None
    if t >= 2:
        # Only the chosen background's pixels carry the texture; others are zero-weighted.
        for lum, bgm in zip(lums, bg_masks):
            phases.append(_texture_phase(lum, bgm, period))
        z = np.concatenate(phases)  # (T, H)
        step = (z[1:] * np.conj(z[:-1])).sum(-1)  # per frame pair, summed over rows
        shift = -np.angle(step) * period / (2 * np.pi)  # pixels per frame
        texture_speed = float(np.median(shift) * fps / min(h, w))
    components = [
        _component_stats(np.concatenate(masks_sampled[c])) if c in masks_sampled else [] for c in COLOURS
    ]
    return Measurements(
        width=w, height=h, fps=fps, columns=columns, touching=touching, area=area, cx=cx, cy=cy, x0=x0, x1=x1, y0=y0, y1=y1,
        pillar_columns=pillar_cols / t, background_votes=bg_votes, dark_fraction=dark_fraction,
        stripe_score=stripe_score, texture_speed=texture_speed, sampled=sampled, components=components,
    )  # fmt: skip


def classify_shape(fill: float, lower: float, upper: float) -> str:
    """Fill of the box (circle .79, square 1, triangle .5), share of the area in the lower half
    (.5, .5, .75) and in the top quarter (.20, .25, .06): the apex is what tells a small
    triangle, whose fill pixelation pushes towards a circle's."""
    # Fitted on 240 renders, half of them downscaled 50%; a tiny pixelated circle can lose its
    # top rows too, but keeps its fill.
    if lower > 0.62 or (lower - upper > 0.407 and fill < 0.77):
        return "triangle"
    return "square" if fill > 0.895 else "circle"


def classify_size(s: float) -> str:
    return "small" if s < _SIZE_EDGES[0] else "medium" if s < _SIZE_EDGES[1] else "large"



def pillar_span(meas: Measurements) -> tuple[float, float] | None:
    """The pillar's (left, right) columns, if pillar colour fills most of some columns."""
    cols = np.nonzero(meas.pillar_columns > 0.6)[0]
    if len(cols) < max(2, 0.05 * meas.width):
        return None
    return float(cols.min()), float(cols.max() + 1)


def background_of(meas: Measurements) -> tuple[str, str, float]:
    """The background's ``(colour, texture, share)``: the most voted background, and its
    texture from how much of it is the darker colour and whether that fills whole columns;
    ``share`` is its fraction of the background-coloured pixels."""
    votes = meas.background_votes / max(meas.background_votes.sum(), 1)
    colour = BACKGROUND_NAMES[int(np.argmax(votes))]
    if meas.dark_fraction < 0.15:
        texture = "none"
    else:
        texture = "striped" if meas.stripe_score > 0.6 else "checkered"
    return colour, texture, float(votes.max())


def pan_of(meas: Measurements) -> str | None:
    """The camera's pan from the texture's motion (``"none"``), or None when it cannot show:
    a pan is visible only on a textured background, over two frames or more (WORLD.md)."""
    if background_of(meas)[1] == "none" or meas.texture_speed is None:
        return None
    v = meas.texture_speed
    return "none" if abs(v) < PAN_SPEED / 2 else ("right" if v < 0 else "left")

"""A scene plan as maps on a grid — what a layout-grounded model reads (pure numpy).

For each object ``n`` and frame ``t``, on an ``h × w`` grid over the canvas (cell ``(i, j)``
spans ``[j/w, (j+1)/w] × [i/h, (i+1)/h]`` in normalised coordinates):

- ``occupancy[n, t, i, j]``: the fraction of the cell the object's box covers, 0..1 (exact
  area, so a box edge inside a cell gives a fractional value);
- ``uv[n, :, t, i, j]``: where the cell's centre lies inside the box, ``(u, v)`` in 0..1 from
  its left/top edge, clipped — so a model can tell the parts of an object apart.

Occluders follow the objects as entries of their own (phrase ``"a pillar"``), and since an
occluder stands in front of every object, an object's occupancy counts only the part of its box
no occluder covers: a model sees where the pillar is drawn and that the object is behind it,
while its ``uv`` still spans the whole box. Objects overlap each other freely (which of two is
in front is the model's job). A box is separable in x and y, so each map is an outer product
of two 1-D profiles per (entry, frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cinepatch.errors import InvalidParameter
from cinepatch.planning.schema import ScenePlan

__all__ = ["LayoutMaps", "rasterize"]


@dataclass(frozen=True)
class LayoutMaps:
    occupancy: np.ndarray  # (N, T, h, w) float32, 0..1
    uv: np.ndarray  # (N, 2, T, h, w) float32, 0..1: u (x) then v (y)
    phrases: tuple[str, ...]  # (N,): the objects' phrases in the plan's order, then the occluders'


def _profile(lo: np.ndarray, hi: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage ``(N, T, cells)`` of ``[lo, hi]`` in each cell of ``[0, 1]``, and the cell
    centres' position inside the interval, clipped to 0..1."""
    edges = np.arange(cells + 1, dtype=np.float64) / cells
    left, right = edges[:-1], edges[1:]
    cover = np.minimum(hi[..., None], right) - np.maximum(lo[..., None], left)
    cover = np.clip(cover * cells, 0.0, 1.0)
    centres = (left + right) / 2
    inside = np.clip((centres - lo[..., None]) / np.maximum(hi - lo, 1e-9)[..., None], 0.0, 1.0)
    return cover, inside


def rasterize(plan: ScenePlan, *, grid: tuple[int, int]) -> LayoutMaps:
    """The plan's :class:`LayoutMaps` on a ``grid = (h, w)`` grid, for every frame of the plan."""
    if (
        not isinstance(grid, tuple)
        or len(grid) != 2
        or not all(isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= 4096 for g in grid)
    ):
        raise InvalidParameter("grid", grid, "(h, w), two whole numbers from 1 to 4096")
    h, w = grid
    frames = plan.canvas.frames
    objects = np.stack([obj.track for obj in plan.objects])  # (n, T, 4)
    screens = np.zeros((len(plan.occluders), frames, 4))  # (m, T, 4): an occluder stands still
    screens[:] = np.asarray([o.box for o in plan.occluders]).reshape(-1, 1, 4)
    boxes = np.concatenate([objects, screens])  # (N, T, 4): objects, then occluders
    cover_x, u = _profile(boxes[..., 0], boxes[..., 2], w)  # (N, T, w)
    cover_y, v = _profile(boxes[..., 1], boxes[..., 3], h)  # (N, T, h)
    occupancy = cover_y[..., :, None] * cover_x[..., None, :]  # (N, T, h, w)
    for screen in screens:  # in front of every object: only the part no occluder covers shows
        top_left, bottom_right = np.maximum(objects[..., :2], screen[:, :2]), np.minimum(objects[..., 2:], screen[:, 2:])
        overlap = np.concatenate([top_left, bottom_right], -1)  # (n, T, 4), empty where they miss
        occupancy[: len(objects)] -= _cover(overlap, h, w)
    occupancy = np.clip(occupancy, 0.0, 1.0)
    n, t = boxes.shape[:2]
    uv = np.empty((n, 2, t, h, w), np.float32)
    uv[:, 0] = u[..., None, :]  # u varies along x, the same on every row
    uv[:, 1] = v[..., :, None]
    return LayoutMaps(
        occupancy=occupancy.astype(np.float32),
        uv=uv,
        phrases=tuple(obj.phrase for obj in plan.objects) + tuple(f"a {o.kind}" for o in plan.occluders),
    )


def _cover(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """The share of each cell of an ``h × w`` grid that each box ``(..., 4)`` covers (an empty
    box — an overlap that is none, ``x1 <= x0`` or ``y1 <= y0`` — covers nothing): ``(..., h, w)``."""
    cover_x, _ = _profile(boxes[..., 0], np.maximum(boxes[..., 2], boxes[..., 0]), w)
    cover_y, _ = _profile(boxes[..., 1], np.maximum(boxes[..., 3], boxes[..., 1]), h)
    return cover_y[..., :, None] * cover_x[..., None, :]

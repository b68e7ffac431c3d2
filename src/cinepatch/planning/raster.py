"""A scene plan as maps on a grid — what a layout-grounded model reads (pure numpy).

For each object ``n`` and frame ``t``, on an ``h × w`` grid over the canvas (cell ``(i, j)``
spans ``[j/w, (j+1)/w] × [i/h, (i+1)/h]`` in normalised coordinates):

- ``occupancy[n, t, i, j]``: the fraction of the cell the object's box covers, 0..1 (exact
  area, so a box edge inside a cell gives a fractional value);
- ``uv[n, :, t, i, j]``: where the cell's centre lies inside the box, ``(u, v)`` in 0..1 from
  its left/top edge, clipped — so a model can tell the parts of an object apart.

Boxes overlap freely: occlusion, like shape and colour, is the model's job. A box is separable
in x and y, so each map is an outer product of two 1-D profiles per (object, frame).
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
    phrases: tuple[str, ...]  # (N,), the objects' phrases in the plan's order


def _profile(lo: np.ndarray, hi: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage ``(N, T, cells)`` of ``[lo, hi]`` in each cell of ``[0, 1]``, and the cell
    centres' position inside the interval, clipped to 0..1."""
    edges = np.arange(cells + 1, dtype=np.float64) / cells
    left, right = edges[:-1], edges[1:]
    cover = np.minimum(hi[..., None], right) - np.maximum(lo[..., None], left)
    cover = np.clip(cover * cells, 0.0, 1.0)
    centres = (left + right) / 2
    inside = np.clip((centres - lo[..., None]) / (hi - lo)[..., None], 0.0, 1.0)
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
    boxes = np.stack([obj.track for obj in plan.objects])  # (N, T, 4)
    cover_x, u = _profile(boxes[..., 0], boxes[..., 2], w)  # (N, T, w)
    cover_y, v = _profile(boxes[..., 1], boxes[..., 3], h)  # (N, T, h)
    occupancy = cover_y[..., :, None] * cover_x[..., None, :]  # (N, T, h, w)
    n, t = boxes.shape[:2]
    uv = np.empty((n, 2, t, h, w), np.float32)
    uv[:, 0] = u[..., None, :]  # u varies along x, the same on every row
    uv[:, 1] = v[..., :, None]
    return LayoutMaps(
        occupancy=occupancy.astype(np.float32),
        uv=uv,
        phrases=tuple(obj.phrase for obj in plan.objects),
    )

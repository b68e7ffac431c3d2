"""Boxes over time → the spatially aligned maps a layout-grounded DiT reads.

A :class:`BoxLayout` is what a scene plan tells the renderer: for each object its phrase and
one box per frame, ``[x0, y0, x1, y1]`` normalised to the canvas (x right, y down). The DiT
does not see boxes; it sees, on its latent grid, how much of each cell every object's box
covers and where inside the box the cell lies (:func:`box_maps`). Pure numpy: it runs in the
data loader and before sampling, never inside the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cinepatch.errors import InvalidParameter

__all__ = ["BoxLayout", "box_maps", "latent_maps", "scene_layout", "phrase_of"]


@dataclass(frozen=True)
class BoxLayout:
    """Objects' ``phrases`` (N,) and their ``boxes (N, T, 4)`` float32, normalised x0, y0, x1, y1."""

    phrases: tuple[str, ...]
    boxes: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32)
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or len(boxes) != len(self.phrases):
            raise InvalidParameter(
                "layout.boxes", tuple(boxes.shape), f"(N, T, 4) with N = {len(self.phrases)} phrases"
            )
        object.__setattr__(self, "boxes", boxes)

    @property
    def frames(self) -> int:
        return int(self.boxes.shape[1])

    def at_frames(self, indices: np.ndarray | list[int]) -> BoxLayout:
        """The boxes on the given frames only (e.g. the pixel frame of each latent frame)."""
        return BoxLayout(self.phrases, self.boxes[:, np.asarray(indices, dtype=np.int64)])


def box_maps(boxes: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy ``(N, T, h, w)`` and in-box position ``uv (N, 2, T, h, w)`` on a ``grid (h, w)``.

    Occupancy is the fraction of each cell's area the box covers (0..1, exact for
    axis-aligned boxes); ``uv`` is the cell centre's position inside the box (0 at the box's
    left/top edge, 1 at its right/bottom), clipped to 0..1, so a token knows which part of its
    object it holds: the top of a triangle differs from its base.
    """
    boxes = np.asarray(boxes, dtype=np.float32)  # (N, T, 4)
    h, w = grid
    x0, y0, x1, y1 = (boxes[..., i, None] for i in range(4))  # (N, T, 1) each
    lo_x, lo_y = np.arange(w, dtype=np.float32) / w, np.arange(h, dtype=np.float32) / h
    cover_x = np.clip(np.minimum(x1, lo_x + 1 / w) - np.maximum(x0, lo_x), 0, None) * w  # (N, T, w)
    cover_y = np.clip(np.minimum(y1, lo_y + 1 / h) - np.maximum(y0, lo_y), 0, None) * h  # (N, T, h)
    occupancy = cover_y[..., :, None] * cover_x[..., None, :]  # (N, T, h, w)
    u = np.clip((lo_x + 0.5 / w - x0) / np.maximum(x1 - x0, 1e-6), 0, 1)  # (N, T, w)
    v = np.clip((lo_y + 0.5 / h - y0) / np.maximum(y1 - y0, 1e-6), 0, 1)  # (N, T, h)
    shape = occupancy.shape
    uv = np.stack([np.broadcast_to(u[..., None, :], shape), np.broadcast_to(v[..., :, None], shape)], axis=1)
    return occupancy.astype(np.float32), uv.astype(np.float32)  # (N, T, h, w), (N, 2, T, h, w)


def phrase_of(obj) -> str:  # obj: cinepatch.world.SceneObject
    """The words a plan names a world object by: size, colour, shape ("small red circle")."""
    return f"{obj.size} {obj.colour} {obj.shape}"


def scene_layout(scene, *, width: int, height: int, fps: float, frames: int, seed: int | None) -> BoxLayout:
    """Each object's box on every frame, exactly where the oracle draws it for ``(scene, seed)``.

    Uses the renderer's own :func:`cinepatch.world.render.layout`, so a render and its layout
    of the same ``(scene, seed)`` always agree.
    """
    from cinepatch.world.render import layout

    lay = layout(scene, width=width, height=height, fps=fps, frames=frames, seed=seed)
    scale = np.array([width, height, width, height], dtype=np.float32)
    boxes = [
        np.stack([tr.cx - tr.size / 2, tr.cy - tr.size / 2, tr.cx + tr.size / 2, tr.cy + tr.size / 2], axis=-1) / scale
        for tr in lay.tracks
    ]
    return BoxLayout(
        tuple(phrase_of(obj) for obj in scene.objects),
        np.stack(boxes).astype(np.float32) if boxes else np.zeros((0, frames, 4), np.float32),
    )


def latent_maps(
    layout: BoxLayout, *, latent: tuple[int, int, int], frame_step: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`box_maps` on a latent grid ``(t, h, w)``: latent frame ``j`` reads the boxes of
    pixel frame ``j · frame_step`` (the frame a causal VAE's latent frame ends on)."""
    t, h, w = latent
    frames = np.minimum(np.arange(t) * frame_step, layout.frames - 1)
    return box_maps(layout.at_frames(frames).boxes, (h, w))

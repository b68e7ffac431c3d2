"""Bringing inputs to the output's size and frame rate, with the choice stated."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cinepatch.io.video import Video

__all__ = ["fit_frames", "resample_fps", "conform"]


def fit_frames(frames: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """Scale frames to cover ``width``×``height`` (Lanczos) and centre-crop the overflow.

    Covering keeps the subject's proportions; letterboxing would add bars the model never saw.
    """
    t, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    left, top = (new_w - width) // 2, (new_h - height) // 2
    out = np.empty((t, height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        image = Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.LANCZOS)
        out[i] = np.asarray(image)[top : top + height, left : left + width]
    return out


def resample_fps(frames: np.ndarray, *, src_fps: float, fps: float) -> np.ndarray:
    """Nearest-frame resampling to ``fps``, keeping the duration (frames are dropped or held)."""
    if abs(src_fps - fps) < 1e-6 or len(frames) == 1:
        return frames
    n = max(1, round(len(frames) * fps / src_fps))
    picks = np.minimum(np.round(np.arange(n) * src_fps / fps).astype(int), len(frames) - 1)
    return frames[picks]


def conform(video: Video, *, width: int, height: int, fps: float, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """``video`` at the output's size and fps, plus a note for each change made to it."""
    notes = []
    w, h = video.size
    frames = video.frames
    if (w, h) != (width, height):
        frames = fit_frames(frames, width=width, height=height)
        notes.append(f"{name} is {w}x{h}; it was scaled to cover {width}x{height} and centre-cropped")
    if len(frames) > 1 and abs(video.fps - fps) > 1e-6:
        frames = resample_fps(frames, src_fps=video.fps, fps=fps)
        notes.append(f"{name} is {video.fps:g} fps; frames were dropped or repeated to make {fps:g} fps")
    return frames, tuple(notes)

"""A temporal denoiser: FFmpeg's ``atadenoise`` through PyAV's filter graph.

The embedded DiT draws each frame's tokens a little differently, so still content flickers by a
few levels from frame to frame, and the first new frame of an edit differs from the pinned ones
by that much. ``atadenoise`` averages each pixel with its neighbours in time (up to ``window``
frames) while they stay within ``threshold`` of it, so flicker is averaged away and real changes
— an edge moving past, a cut — are left alone.

The defaults are the recipe measured in docs/default_model.md: on the default model's still
objects, 8.0 → 2.7 levels of change per frame inside the object, 0.8 → 0.1 on the background;
on the world's own clean renders (nothing to remove) the output keeps ≥ 42 dB.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from cinepatch.errors import InvalidParameter

__all__ = ["temporal_denoise"]


def temporal_denoise(
    frames: np.ndarray, *, threshold: float = 0.08, window: int = 9, cyclic: bool = False
) -> np.ndarray:
    """``frames`` ``(T, H, W, 3)`` uint8 RGB, denoised in time; same shape and dtype.

    ``threshold``: the largest change (a fraction of the 0–255 range) a neighbouring frame's pixel
    may differ by and still be averaged in; twice it bounds the summed differences. ``window``:
    frames averaged at most (odd, 5 to 129; at the clip's ends FFmpeg fills it by repeating the
    frames there). ``cyclic``: the clip plays round (a loop), so its ends are averaged with each
    other like any neighbours — otherwise the frames on either side of the loop's joint are
    smoothed apart and the joint shows.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InvalidParameter("frames", f"{frames.shape} {frames.dtype}", "(T, H, W, 3) uint8")
    if not 0 < threshold <= 0.15:
        raise InvalidParameter("threshold", threshold, "more than 0, at most 0.15")
    if not (5 <= window <= 129 and window % 2):
        raise InvalidParameter("window", window, "an odd count from 5 to 129")
    if len(frames) < 2:
        return frames.copy()
    if cyclic:  # the last frames before the first, the first after the last; cropped after
        pad = window // 2
        around = np.take(frames, np.arange(-pad, len(frames) + pad), axis=0, mode="wrap")
        return temporal_denoise(around, threshold=threshold, window=window)[pad:-pad]
    height, width = frames.shape[1:3]
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=Fraction(1, 25))
    a, b = threshold, 2 * threshold
    planes = ":".join(f"{p}a={a}:{p}b={b}" for p in range(3))
    chain = [
        source,
        graph.add("format", "gbrp"),  # planar RGB: every channel filtered alike
        graph.add("atadenoise", f"{planes}:s={window}"),
        graph.add("format", "rgb24"),
        graph.add("buffersink"),
    ]
    for upstream, downstream in zip(chain, chain[1:]):
        upstream.link_to(downstream)
    graph.configure()

    out = np.empty_like(frames)  # filled in place: a long video is not held twice more
    made = 0

    def drain() -> None:
        nonlocal made
        while True:
            try:
                out[made] = graph.pull().to_ndarray(format="rgb24")
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            made += 1

    for index, array in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
        frame.pts = index
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    if made != len(out):  # FFmpeg returns one frame for each; never pass on a shorter video
        raise RuntimeError(f"atadenoise returned {made} frames for {len(out)}")
    return out

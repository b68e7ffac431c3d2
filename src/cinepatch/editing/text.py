"""Text-to-video of any length: one pass, or sliding windows past the backend's limit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cinepatch.backends.base import Backend, GenerationSpec, Progress
from cinepatch.editing.plan import Plan, context_length, continue_video, placeholder, window_length
from cinepatch.editing.scenes import Planning
from cinepatch.editing.scenes import window as window_of

__all__ = ["text_to_video"]


def text_to_video(
    spec: GenerationSpec,
    *,
    window: int | None,
    latent_step: int,
    warnings: tuple[str, ...] = (),
    planning: Planning | None = None,
) -> Plan:
    """One pass when it fits the backend; else a first window and continuations of it.

    Keyframes of ``spec`` must then fall in the first window (image-to-video at the start);
    a minute-long video holds its scene because every window sees the last second made.
    ``spec.plan`` (the app's plan of the whole video) is cut into each window's part, so each
    window continues the tracks the last one drew.
    """
    if window is None or spec.frames <= window:
        return Plan(specs=(spec,), runner=lambda backend, progress: backend.generate(spec, progress=progress),
                    warnings=warnings, scene=spec.plan)
    length = window_length(window, spec.fps, latent_step)
    context = context_length(spec.fps, length, latent_step)
    scene = spec.plan
    first = replace(spec, frames=length, plan=window_of(scene, 0, length))
    if spec.keyframes is not None and max(spec.keyframes.indices) >= length:
        from cinepatch.errors import InvalidParameter

        raise InvalidParameter("keyframe time", max(spec.keyframes.indices) / spec.fps,
                               f"within the first {length / spec.fps:g} s of a long video")
    later = placeholder(replace(spec, keyframes=None, frames=length, plan=window_of(scene, length - context, length)),
                        context, list(range(context)))

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        share = length / spec.frames
        head = backend.generate(first, progress=lambda f: progress(share * f))
        rest = continue_video(backend, replace(spec, keyframes=None), head, spec.frames - length,
                              window=length, progress=lambda f: progress(share + (1 - share) * f), scene=scene).new
        return np.concatenate([head, rest])

    note = (f"{spec.frames / spec.fps:g} s is longer than one {length / spec.fps:g} s pass; made in "
            f"overlapping windows, each continuing the last {context / spec.fps:g} s",)
    return Plan(specs=(first, later), runner=run, warnings=warnings + note, scene=scene)

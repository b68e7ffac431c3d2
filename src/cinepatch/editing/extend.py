"""Extend: continue a video forwards or backwards by N seconds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from cinepatch.backends.base import Backend, GenerationSpec, Progress
from cinepatch.editing.conform import conform
from cinepatch.editing.plan import (
    Plan,
    check_length,
    context_length,
    continue_video,
    placeholder,
    whole_groups,
    window_length,
)
from cinepatch.editing.params import ExtendParams
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

__all__ = ["extend"]


def extend(
    spec: GenerationSpec, inputs: list[Video], params: Mapping[str, object], *, window: int | None, latent_step: int
) -> Plan:
    """The source with ``seconds`` of new video after it (``direction='forward'``) or before it.

    Backwards is forwards on the time-reversed source, reversed back: the model continues the
    reversed clip, which for the world's motions is the same physics run backwards.
    """
    if len(inputs) != 1 or len(inputs[0].frames) < 2:
        raise InvalidParameter("sources", len(inputs), "exactly one video (two frames or more) to extend")
    parsed = ExtendParams.from_mapping(params)
    seconds = parsed.seconds if parsed.seconds is not None else spec.seconds
    direction = parsed.direction
    source, notes = conform(inputs[0], width=spec.width, height=spec.height, fps=spec.fps, name="the video")
    new = max(1, round(seconds * spec.fps))
    check_length(len(source) + new, spec.fps)
    length = window_length(window, spec.fps, latent_step)
    context = min(context_length(spec.fps, length, latent_step), whole_groups(len(source), latent_step))
    check = placeholder(replace(spec, frames=min(length, context + new)), context, list(range(context)))

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        base = source if direction == "forward" else source[::-1]
        made = continue_video(backend, spec, base, new, window=length, progress=progress)
        return np.concatenate([source, made]) if direction == "forward" else np.concatenate([made[::-1], source])

    return Plan(specs=(check,), runner=run, warnings=notes)

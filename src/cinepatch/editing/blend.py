"""Blend: join two videos with a generated transition, or mix two prompts into one scene."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from cinepatch.backends.base import Backend, GenerationSpec, Progress
from cinepatch.editing.conform import conform
from cinepatch.editing.plan import (
    Plan,
    check_length,
    context_length,
    continue_video,
    latent_aligned,
    placeholder,
    window_length,
)
from cinepatch.editing.remix import remix
from cinepatch.editing.text import text_to_video
from cinepatch.editing.params import BlendParams
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

__all__ = ["blend"]


def blend(
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    latent_step: int,
    prompt: str,
    expand: Callable[[str], str],
) -> Plan:
    """``mode='join'`` (default): first video, a ``transition`` of new frames, second video.

    ``mode='mix'``: one scene holding both the prompt and ``params['with']`` (a second prompt);
    with one source video, its layout and motion are kept (a remix under the mixed prompt).
    """
    parsed = BlendParams.from_mapping(params)
    if parsed.mode == "mix":
        assert parsed.with_ is not None  # BlendParams requires it for a mix
        mixed = replace(spec, prompt=expand(f"{prompt.rstrip(' .')} and {parsed.with_.strip()}"))
        if len(inputs) > 1:
            raise InvalidParameter("sources", len(inputs), "none or one video for a mix")
        return (
            remix(mixed, inputs, params, window=window) if inputs
            else text_to_video(mixed, window=window, latent_step=latent_step)
        )
    if len(inputs) != 2:
        raise InvalidParameter("sources", len(inputs), "two videos to join")
    first, notes_a = conform(inputs[0], width=spec.width, height=spec.height, fps=spec.fps, name="the first video")
    second, notes_b = conform(inputs[1], width=spec.width, height=spec.height, fps=spec.fps, name="the second video")
    length = window_length(window, spec.fps, latent_step)
    context = context_length(spec.fps, length, latent_step, sides=2)
    for name, clip in (("first video", first), ("second video", second)):
        if len(clip) < 2:
            raise InvalidParameter(name, f"{len(clip)} frame(s)", "a clip of two frames or more")
    seconds = parsed.transition
    bridge = latent_aligned(round(seconds * spec.fps), latent_step)  # the tail then starts a latent group
    if 2 * context + bridge > length:
        raise InvalidParameter("transition", seconds, f"at most {(length - 2 * context) / spec.fps:g} s for this model")
    check_length(len(first) + bridge + len(second), spec.fps)
    shape = placeholder(replace(spec, frames=2 * context + bridge), 2 * context,
                        list(range(context)) + list(range(context + bridge, 2 * context + bridge)))

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        made = continue_video(backend, spec, first, bridge, window=length, tail=second[:context], progress=progress)
        return np.concatenate([first, made, second])

    return Plan(specs=(shape,), runner=run, warnings=notes_a + notes_b)

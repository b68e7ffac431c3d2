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
from cinepatch.editing.scenes import Planning, fitted, joined, read
from cinepatch.editing.scenes import window as window_of
from cinepatch.planning.schema import ScenePlan
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
    planning: Planning | None = None,
) -> Plan:
    """``mode='join'`` (default): first video, a ``transition`` of new frames, second video.

    ``mode='mix'``: one scene holding both the prompt and ``params['with']`` (a second prompt);
    with one source video, its layout and motion are kept (a remix under the mixed prompt).

    With ``planning``: a join's bridge carries each object from its end in the first video to
    its start in the second (see :func:`.scenes.joined`); a mix plans both prompts' objects in
    one plan.
    """
    parsed = BlendParams.from_mapping(params)
    if parsed.mode == "mix":
        assert parsed.with_ is not None  # BlendParams requires it for a mix
        words = f"{prompt.rstrip(' .')} and {parsed.with_.strip()}"
        mixed = replace(spec, prompt=expand(words))
        if len(inputs) > 1:
            raise InvalidParameter("sources", len(inputs), "none or one video for a mix")
        if planning is not None and planning.user is None:
            planning = replace(planning, prompt=planning.plan_text(words, spec.frames))
        if inputs:
            return remix(mixed, inputs, params, window=window, planning=planning)
        if planning is not None:
            mixed = replace(mixed, plan=planning.prompt if planning.user is None else fitted(planning.user, spec.frames))
        return text_to_video(mixed, window=window, latent_step=latent_step)
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
    scene, plan_notes = _scene(first, second, bridge, spec.fps, planning)
    shape = placeholder(replace(spec, frames=2 * context + bridge, plan=window_of(scene, len(first) - context, 2 * context + bridge)), 2 * context,
                        list(range(context)) + list(range(context + bridge, 2 * context + bridge)))

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        made = continue_video(backend, spec, first, bridge, window=length, tail=second[:context], progress=progress,
                              scene=scene, release=True)
        # The first video hands over to the bridge, the bridge to the second, each across a second.
        return np.concatenate([made.after(first), made.opening, second[len(made.opening) :]])

    return Plan(specs=(shape,), runner=run, warnings=notes_a + notes_b + plan_notes, scene=scene)


def _scene(
    first: np.ndarray, second: np.ndarray, bridge: int, fps: int, planning: Planning | None
) -> tuple[ScenePlan | None, tuple[str, ...]]:
    """A join's plan: the person's (fitted), else both clips' tracks joined across the bridge."""
    if planning is None:
        return None, ()
    if planning.user is not None:
        return fitted(planning.user, len(first) + bridge + len(second)), ()
    (a, notes_a), (b, notes_b) = read(first, fps), read(second, fps)
    if a is None or b is None:
        return None, notes_a + notes_b
    return joined(a, b, bridge), ()

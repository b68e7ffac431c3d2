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
from cinepatch.editing.scenes import Planning, fitted, joined, read, reversed_plan
from cinepatch.editing.scenes import window as window_of
from cinepatch.planning.schema import PlanBackground, ScenePlan
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
    its start in the second (see :func:`.scenes.joined`), and between two backgrounds dissolves
    from the first's to the second's; a mix plans both prompts' objects in one plan.
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
    scene, start, plan_notes = _scene(first, second, bridge, spec.fps, planning)
    shape = placeholder(replace(spec, frames=2 * context + bridge, plan=window_of(scene, len(first) - context, 2 * context + bridge)), 2 * context,
                        list(range(context)) + list(range(context + bridge, 2 * context + bridge)))
    # Between two backgrounds the bridge is made from both ends — on from the first video, and
    # back from the second run backwards — each run told its own background in words (the model
    # draws the background its text names; the plan places the objects), and the two dissolve
    # into each other across it: a model pinned to one clip keeps its background until it meets
    # the other, then changes it within a frame or two.
    # Both clips must hold a whole context, so that both runs pin as much and make one length of bridge.
    dissolve = (scene is not None and start is not None and start != scene.background
                and min(len(first), len(second)) >= context)
    scene_a = replace(scene, background=start) if dissolve else scene
    spec_a, spec_b = (replace(spec, prompt=scene_a.describe()), replace(spec, prompt=scene.describe())) if dissolve else (spec, spec)

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        # The first video hands over to the bridge, the bridge to the second, each across a second.
        share = 0.5 if dissolve else 1.0
        made = continue_video(backend, spec_a, first, bridge, window=length, tail=second[:context], release=True,
                              progress=lambda f: progress(share * f), scene=scene_a)  # fmt: skip
        on = np.concatenate([made.after(first), made.opening, second[len(made.opening) :]])
        if not dissolve:
            return on
        made = continue_video(backend, spec_b, second[::-1], bridge, window=length, tail=first[::-1][:context],
                              release=True, progress=lambda f: progress(0.5 + f / 2), scene=reversed_plan(scene))  # fmt: skip
        back = np.concatenate([made.after(second[::-1]), made.opening, first[::-1][len(made.opening) :]])[::-1]
        return _dissolved(on, back, len(first), len(on) - len(first) - len(second))

    return Plan(specs=(shape, shape) if dissolve else (shape,), runner=run, warnings=notes_a + notes_b + plan_notes, scene=scene)


def _dissolved(a: np.ndarray, b: np.ndarray, start: int, frames: int) -> np.ndarray:
    """``a`` until frame ``start``, ``b`` after the ``frames`` that follow, and those frames
    mixed from one to the other in even steps."""
    w = np.clip((np.arange(len(a)) - start + 1) / (frames + 1), 0.0, 1.0).astype(np.float32)[:, None, None, None]
    return np.rint((1 - w) * a.astype(np.float32) + w * b.astype(np.float32)).astype(np.uint8)


def _scene(
    first: np.ndarray, second: np.ndarray, bridge: int, fps: int, planning: Planning | None
) -> tuple[ScenePlan | None, PlanBackground | None, tuple[str, ...]]:
    """A join's plan: the person's (fitted), else both clips' tracks joined across the bridge;
    and the first clip's background, where both clips were read."""
    if planning is None:
        return None, None, ()
    if planning.user is not None:
        return fitted(planning.user, len(first) + bridge + len(second)), None, ()
    (a, notes_a), (b, notes_b) = read(first, fps), read(second, fps)
    if a is None or b is None:
        return None, None, notes_a + notes_b
    return joined(a, b, bridge), a.background, ()

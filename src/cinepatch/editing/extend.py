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
from cinepatch.editing.reading import read_frames
from cinepatch.editing.scenes import Planning, continued, entered, fitted, reversed_plan
from cinepatch.editing.scenes import window as window_of
from cinepatch.planning.schema import ScenePlan
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

__all__ = ["extend"]


def extend(
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    latent_step: int,
    planning: Planning | None = None,
) -> Plan:
    """The source with ``seconds`` of new video after it (``direction='forward'``) or before it.

    The clip hands over to the new frames across its last (first) second: the model redraws
    those frames, more freely the nearer the joint, and each is mixed with the clip's frame in
    the same proportion (:func:`.plan.continue_video` ``release``), so no one frame jumps.

    Backwards is forwards on the time-reversed source, reversed back: the model continues the
    reversed clip, which for the world's motions is the same physics run backwards.
    With ``planning``, the new frames continue the tracks read in the clip's last (first) second.
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
    base = source if direction == "forward" else source[::-1]
    scene, plan_notes = _scene(base, new, spec.fps, planning, backward=direction == "backward")
    check = placeholder(
        replace(spec, frames=min(length, context + new), plan=window_of(scene, len(base) - context, min(length, context + new))),
        context, list(range(context)),
    )  # fmt: skip

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        made = continue_video(backend, spec, base, new, window=length, progress=progress, scene=scene, release=True)
        whole = made.after(base)
        return whole if direction == "forward" else whole[::-1]

    output = scene if direction == "forward" else reversed_plan(scene)
    return Plan(specs=(check,), runner=run, warnings=notes + plan_notes, scene=output)


def _scene(
    base: np.ndarray, new: int, fps: int, planning: Planning | None, *, backward: bool
) -> tuple[ScenePlan | None, tuple[str, ...]]:
    """The plan of ``base`` then its ``new`` frames, in ``base``'s time (reversed when extending
    backwards): the person's plan of the output (fitted), else ``base``'s tracks continued; a
    clip that shows no object, on a background that can be read, is followed by the prompt's
    plan on that background, its objects coming in (:func:`.scenes.entered`)."""
    if planning is None:
        return None, ()
    if planning.user is not None:
        output = fitted(planning.user, len(base) + new)
        return (reversed_plan(output) if backward else output), ()
    reading = read_frames(base, fps=fps)
    if reading.plan is not None:
        return continued(reading.plan, new, backwards=backward), reading.warnings
    if planning.prompt is None or reading.background is None:
        return None, tuple(f"{note}; the edit follows its sources alone" for note in reading.warnings)
    prompted = fitted(planning.prompt, new)
    prompted = replace(reversed_plan(prompted) if backward else prompted, background=reading.background)
    return entered(prompted, len(base)), tuple(f"{note}; the new part follows the prompt's plan" for note in reading.warnings)

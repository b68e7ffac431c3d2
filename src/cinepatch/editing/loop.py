"""Loop: a clip whose last frame leads seamlessly back into its first.

From a prompt: a first pass makes the clip; a second pass remakes its end so it runs into the
clip's own opening frames. From a video: a generated bridge runs from the video's end into its
start, and the result is the video followed by the bridge.
"""

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
    latent_aligned,
    placeholder,
    window_length,
)
from cinepatch.editing.params import LoopParams
from cinepatch.editing.scenes import Planning, cycled, fitted, looped, read
from cinepatch.editing.scenes import window as window_of
from cinepatch.planning.schema import ScenePlan
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

__all__ = ["loop"]


def loop(
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    latent_step: int,
    planning: Planning | None = None,
) -> Plan:
    """The video (or a first pass from the prompt) and a bridge back into its opening; with
    ``planning``, the bridge's tracks run every object from its last box back to its first."""
    if len(inputs) > 1:
        raise InvalidParameter("sources", len(inputs), "none (loop from the prompt) or one video")
    length = window_length(window, spec.fps, latent_step)
    context = context_length(spec.fps, length, latent_step, sides=2)
    bridge_seconds = LoopParams.from_mapping(params).bridge
    bridge = latent_aligned(round(bridge_seconds * spec.fps), latent_step)  # the tail then starts a latent group
    if 2 * context + bridge > length:
        raise InvalidParameter("bridge", bridge_seconds, f"at most {(length - 2 * context) / spec.fps:g} s for this model")
    notes: tuple[str, ...] = ()
    if inputs:
        source, notes = conform(inputs[0], width=spec.width, height=spec.height, fps=spec.fps, name="the video")
        if len(source) < 2 * context:
            raise InvalidParameter("source length", len(source), f"at least {2 * context} frames to loop")
        check_length(len(source) + bridge, spec.fps)
        first = None
    else:
        if spec.frames < 2 * context + bridge:
            raise InvalidParameter("seconds", spec.seconds, f"at least {(2 * context + bridge) / spec.fps:g} for a loop")
        source = None
        first = replace(spec, frames=spec.frames - bridge)
    scene, plan_notes = _scene(spec, source, bridge, planning)
    notes += plan_notes
    if first is not None:
        first = replace(first, plan=window_of(scene, 0, first.frames))
    shape = placeholder(replace(spec, frames=2 * context + bridge), 2 * context,
                        list(range(context)) + list(range(context + bridge, 2 * context + bridge)))

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        video = source
        if video is None:
            video = backend.generate(first, progress=lambda f: progress(0.6 * f))
        tail = video[:context]  # the opening the bridge must lead into, and its plan after the bridge's
        made = continue_video(backend, spec, video, bridge, window=length, tail=tail, scene=cycled(scene, context),
                              release=True, progress=lambda f: progress(0.6 + 0.4 * f) if source is None else progress(f))
        # The video's end hands over to the bridge and the bridge to the video's opening, each
        # across a second: the loop starts with the redrawn opening and ends with the bridge.
        whole = made.after(video)
        return np.concatenate([made.opening, whole[len(made.opening) :]])

    specs = (shape,) if first is None else (first, shape)
    return Plan(specs=specs, runner=run, warnings=notes, scene=scene, cyclic=True)


def _scene(
    spec: GenerationSpec, source: np.ndarray | None, bridge: int, planning: Planning | None
) -> tuple[ScenePlan | None, tuple[str, ...]]:
    """The loop's plan: the person's (fitted), else the source's (or the prompt's plan of the
    first pass) followed by a bridge back to where every track started."""
    if planning is None:
        return None, ()
    frames = spec.frames if source is None else len(source) + bridge
    if planning.user is not None:
        return fitted(planning.user, frames), ()
    if source is None:
        head, notes = (None if planning.prompt is None else fitted(planning.prompt, frames - bridge)), ()
    else:
        head, notes = read(source, spec.fps)
    return (None if head is None else looped(head, bridge)), notes

"""Remix: re-generate a video with a new prompt, keeping its layout and motion.

The source is noised to ``strength`` and denoised under the new prompt: at low strength only
detail changes, at 1.0 the source is forgotten. What survives the noise — coarse layout and
where things move — is what the result keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from cinepatch.backends.base import GenerationSpec
from cinepatch.editing.conform import conform
from cinepatch.editing.plan import Plan
from cinepatch.editing.scenes import Planning, fitted, read, remixed
from cinepatch.editing.params import DEFAULT_STRENGTH, PLANNED_STRENGTH, RemixParams
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

__all__ = ["remix"]


def remix(
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    planning: Planning | None = None,
) -> Plan:
    """The source re-noised to ``strength`` under the new prompt; with ``planning``, its plan
    keeps the source's tracks and timing in the new prompt's words (the strength still decides
    how much of the source's pixels survive; unset, it is ``PLANNED_STRENGTH`` when there is a
    plan that holds the source's motion, else ``DEFAULT_STRENGTH``)."""
    if len(inputs) != 1:
        raise InvalidParameter("sources", len(inputs), "exactly one video to remix")
    # a blend's mix hands over its own parameters, so only the strength is read here
    strength = RemixParams(strength=params.get("strength")).strength
    source, notes = conform(inputs[0], width=spec.width, height=spec.height, fps=spec.fps, name="the video")
    frames = len(source)
    if window is not None and frames > window:
        raise InvalidParameter("source length", f"{frames / spec.fps:g} s",
                               f"at most {window / spec.fps:g} s for this model's remix")
    scene = None
    keeps_motion = False  # the plan holds the source's motion (read from it, or the person's)
    if planning is not None:
        if planning.user is not None:
            scene, keeps_motion = fitted(planning.user, frames), True
        else:
            read_plan, read_notes = read(source, spec.fps)
            notes += read_notes
            prompt = None if planning.prompt is None else fitted(planning.prompt, frames)
            scene = prompt if read_plan is None else remixed(read_plan, prompt)
            keeps_motion = read_plan is not None
    if strength is None:
        strength = PLANNED_STRENGTH if keeps_motion else DEFAULT_STRENGTH
    step = replace(spec, frames=frames, source=np.ascontiguousarray(source), strength=float(strength), plan=scene)
    return Plan(specs=(step,), runner=lambda backend, progress: backend.generate(step, progress=progress),
                warnings=notes, scene=scene)

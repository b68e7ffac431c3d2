"""Image-to-video: animate a still, placed at the start, the end, or any time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cinepatch.backends.base import GenerationSpec
from cinepatch.editing.conform import conform
from cinepatch.editing.plan import Plan, pinned
from cinepatch.editing.scenes import Planning, animated, fitted, read
from cinepatch.editing.text import text_to_video
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

__all__ = ["image_to_video"]


def image_to_video(
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    latent_step: int,
    planning: Planning | None = None,
) -> Plan:
    """The image pinned at ``at``; with ``planning``, the plan starts from the objects read in
    the image and moves them as the prompt's plan moves the same objects."""
    if len(inputs) != 1 or len(inputs[0].frames) != 1:
        raise InvalidParameter("sources", len(inputs), "exactly one image for image-to-video")
    at = params.get("at", "start")
    last = spec.frames - 1
    if at == "start":
        index = 0
    elif at == "end":
        index = last
    elif isinstance(at, (int, float)) and not isinstance(at, bool) and 0 <= at * spec.fps <= last:
        index = round(float(at) * spec.fps)
    else:
        raise InvalidParameter("at", at, f"'start', 'end', or 0 to {last / spec.fps:g} seconds")
    image, notes = conform(inputs[0], width=spec.width, height=spec.height, fps=spec.fps, name="the image")
    scene = spec.plan
    if planning is not None:
        if planning.user is not None:
            scene = fitted(planning.user, spec.frames)
        else:
            still, read_notes = read(image, spec.fps)
            notes += read_notes
            scene = planning.prompt if still is None else animated(still, planning.prompt, index, frames=spec.frames)
    spec = replace(pinned(spec, image, [index]), plan=scene)
    return text_to_video(spec, window=window, latent_step=latent_step, warnings=notes)

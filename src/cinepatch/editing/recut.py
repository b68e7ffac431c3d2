"""Re-cut: keep chosen time ranges of a video (reordered as given) and regenerate around them.

The kept footage is placed at ``at`` seconds of a video of the requested duration; the model
makes the lead-in before it and the lead-out after it, each pass seeing the kept frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from cinepatch.backends.base import Backend, GenerationSpec, Progress
from cinepatch.editing.conform import conform
from cinepatch.editing.plan import Plan, continue_video, placeholder, window_length, context_length
from cinepatch.editing.params import RecutParams
from cinepatch.editing.scenes import Planning, continued, fitted, read, reversed_plan
from cinepatch.editing.scenes import window as window_of
from cinepatch.planning.schema import ScenePlan
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import Video

__all__ = ["recut", "parse_ranges"]


def parse_ranges(value: object, duration: float) -> list[tuple[float, float]]:
    """``[[start, end], …]`` in seconds of the source, each inside it and not empty."""
    allowed = f"a list of [start, end] pairs in seconds, 0 ≤ start < end ≤ {duration:g}"
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidParameter("ranges", value, allowed)
    ranges = []
    for item in value:
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in item)
                or not 0 <= item[0] < item[1] <= duration + 1e-9):
            raise InvalidParameter("ranges", item, allowed)
        ranges.append((float(item[0]), float(item[1])))
    return ranges


def recut(
    spec: GenerationSpec,
    inputs: list[Video],
    params: Mapping[str, object],
    *,
    window: int | None,
    latent_step: int,
    planning: Planning | None = None,
) -> Plan:
    """The kept footage at ``at`` with a lead-in and lead-out made around it; with ``planning``,
    the kept footage keeps the tracks read in it and the made parts continue them (backwards
    for the lead-in)."""
    if len(inputs) != 1:
        raise InvalidParameter("sources", len(inputs), "exactly one video to re-cut")
    source, notes = conform(inputs[0], width=spec.width, height=spec.height, fps=spec.fps, name="the video")
    parsed = RecutParams.from_mapping(params)
    ranges = parse_ranges(parsed.ranges, len(source) / spec.fps)
    kept = np.concatenate([source[round(a * spec.fps) : max(round(a * spec.fps) + 1, round(b * spec.fps))] for a, b in ranges])
    if len(kept) > spec.frames:
        raise InvalidParameter("seconds", spec.seconds, f"at least {len(kept) / spec.fps:g} (the kept footage)")
    at = parsed.at if parsed.at is not None else 0.0
    start = round(at * spec.fps)
    if not 0 <= start <= spec.frames - len(kept):
        raise InvalidParameter("at", at, f"0 to {(spec.frames - len(kept)) / spec.fps:g} seconds")
    lead_in, lead_out = start, spec.frames - start - len(kept)
    length = window_length(window, spec.fps, latent_step)
    context = context_length(spec.fps, length, latent_step)
    shape = placeholder(replace(spec, frames=min(length, context + max(lead_in, lead_out, 1))), context, list(range(context)))

    scene, plan_notes = _scene(kept, lead_in, lead_out, spec, planning)
    notes += plan_notes

    def run(backend: Backend, progress: Progress) -> np.ndarray:
        parts = [kept]
        share = lead_in / max(1, lead_in + lead_out)
        if lead_in:  # the lead-in is the kept footage's past: continue it backwards in time
            before = continue_video(backend, spec, kept[::-1], lead_in, window=length, scene=reversed_plan(window_of(scene, 0, start + len(kept))),
                                    progress=lambda f: progress(share * f)).new
            parts.insert(0, before[::-1])
        if lead_out:
            after = continue_video(backend, spec, kept, lead_out, window=length, scene=window_of(scene, start, spec.frames - start),
                                   progress=lambda f: progress(share + (1 - share) * f)).new
            parts.append(after)
        return np.concatenate(parts)

    return Plan(specs=(shape,), runner=run, warnings=notes, scene=scene)


def _scene(
    kept: np.ndarray, lead_in: int, lead_out: int, spec: GenerationSpec, planning: Planning | None
) -> tuple[ScenePlan | None, tuple[str, ...]]:
    """The output's plan: the person's (fitted), else the kept footage's tracks, continued
    backwards over the lead-in and forwards over the lead-out."""
    if planning is None:
        return None, ()
    if planning.user is not None:
        return fitted(planning.user, spec.frames), ()
    middle, notes = read(kept, spec.fps)
    if middle is None:
        return None, notes
    if lead_in:
        middle = reversed_plan(continued(reversed_plan(middle), lead_in, backwards=True))
    return (continued(middle, lead_out) if lead_out else middle), notes

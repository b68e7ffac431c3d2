"""The world oracle as a backend: renders a prompt's ground truth with the procedural renderer.

It is what `cinepatch world render` draws, behind the same request path as the models (so the
service, moderation and provenance can be exercised at full speed), and it refuses prompts that
name nothing in the world. It has no generative freedom: pinned keyframes are pasted over the
rendered frames, and a remix source is ignored — the new prompt is rendered afresh.
"""

from __future__ import annotations

import numpy as np

from cinepatch.backends.base import GenerationSpec, Progress
from cinepatch.errors import InvalidParameter

__all__ = ["WorldOracle"]


class WorldOracle:
    name = "cinepatch-world-oracle"
    max_frames = None
    frame_step = 1  # any count: it renders frame by frame
    latent_step = 1
    default_size = (128, 128)
    default_fps = 16
    takes_plan = True  # the app plans every prompt with the world planner: the same pixels
    flickers = False  # a renderer: still content is exactly still

    def check(self, spec: GenerationSpec) -> None:
        from cinepatch.planning.world import look_of
        from cinepatch.world import parse_prompt

        for side, value in (("width", spec.width), ("height", spec.height)):
            if not (32 <= value <= 512 and value % 16 == 0):
                raise InvalidParameter(side, value, "32 to 512, a multiple of 16")
        if not 4 <= spec.fps <= 30:
            raise InvalidParameter("fps", spec.fps, "4 to 30")
        if not 1 <= spec.frames <= 60 * spec.fps:
            raise InvalidParameter("frames", spec.frames, f"1 to {60 * spec.fps} (60 s)")
        if spec.plan is None:
            parse_prompt(spec.prompt)  # raises UnknownPrompt listing what the world knows
            return
        canvas = spec.plan.canvas
        if (canvas.width, canvas.height, canvas.fps, canvas.frames) != (spec.width, spec.height, spec.fps, spec.frames):
            raise InvalidParameter(
                "plan.canvas", f"{canvas.width}x{canvas.height}, {canvas.frames} frames at {canvas.fps} fps",
                f"the video's canvas: {spec.width}x{spec.height}, {spec.frames} frames at {spec.fps} fps",
            )
        for n, obj in enumerate(spec.plan.objects):
            look_of(obj.phrase, where=f"plan.objects[{n}].phrase")

    def generate(self, spec: GenerationSpec, *, progress: Progress | None = None) -> np.ndarray:
        from cinepatch.planning.world import render_plan
        from cinepatch.world import parse_prompt, render

        self.check(spec)
        if spec.plan is not None:
            frames = render_plan(spec.plan)
        else:
            frames = render(
                parse_prompt(spec.prompt),
                width=spec.width, height=spec.height, fps=spec.fps, frames=spec.frames, seed=spec.seed,
            )
        if spec.keyframes is not None:
            frames = frames.copy()
            for image, index in zip(spec.keyframes.frames, spec.keyframes.indices, strict=True):
                frames[index] = image
        if progress is not None:
            progress(1.0)
        return frames

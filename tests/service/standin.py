"""A tiny, fast stand-in for cinepatch's Studio: the service must not care what it drives.

It takes the same kind of request (fields of ``cinepatch.app.VideoRequest``), reports
progress, refuses prompts containing "forbidden", and writes a real H.264 file through
``cinepatch.io.video``. ``generator_options``: ``step_seconds`` (sleep per step, default 0.02),
``steps`` (default 10; a request's own ``steps`` wins), ``burn`` (spin the CPU during each step instead of sleeping, as a real
model would; default false).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cinepatch.app import VideoRequest, VideoResult
from cinepatch.errors import InvalidParameter, Refused

BLOCKED_WORD = "forbidden"


# The real request and result types: the stand-in differs from Studio only in how it makes frames.
Request = VideoRequest
Result = VideoResult


def check_prompt(prompt: str) -> None:
    if BLOCKED_WORD in prompt.lower():
        raise Refused("violence", f"the prompt was refused: it contains {BLOCKED_WORD!r}")


class TinyStudio:
    request_type = Request

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.step_seconds = float(options.get("step_seconds", 0.02))
        self.steps = int(options.get("steps", 10))
        self.burn = bool(options.get("burn", False))

    def create(self, request: Request, *, out: Path, progress: Callable[[float], None] | None = None) -> Result:
        from cinepatch.io.video import read_video, write_video

        check_prompt(request.prompt)
        fps = request.fps or 8
        frames_n = max(1, round((request.seconds or 1) * fps))
        seed = request.seed if request.seed is not None else 1234
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 255, size=3)
        t = np.arange(frames_n)[:, None, None, None]
        x = np.arange(request.width)[None, None, :, None]
        y = np.arange(request.height)[None, :, None, None]
        frames = ((base + 3 * t + x + y) % 256).astype(np.uint8)
        frames = np.broadcast_to(frames, (frames_n, request.height, request.width, 3)).copy()
        for source in request.sources:
            video = read_video(source)  # edits read their sources like the real one does
            if request.edit == "extend":
                head = video.frames[:, : request.height, : request.width]
                frames = np.concatenate([head, frames[: max(1, frames_n)]])
        if request.params.get("explode"):
            raise InvalidParameter("explode", True, "false")
        steps = request.steps or self.steps
        for step in range(steps):
            if self.burn:
                end = time.perf_counter() + self.step_seconds
                while time.perf_counter() < end:
                    np.linalg.svd(np.random.default_rng(step).standard_normal((96, 96)))
            else:
                time.sleep(self.step_seconds)
            if progress is not None:
                progress((step + 1) / steps)
        write_video(out, frames, fps=fps)
        return Result(
            path=out, width=request.width, height=request.height, fps=fps, frames=len(frames),
            seconds=len(frames) / fps, prompt=request.prompt, expanded_prompt=f"{request.prompt}, in tiny colours",
            model=ALIASES.get(request.model, request.model), seed=seed, payload="00ff" * 4,
        )


# Like the real Studio, the stand-in resolves an alias to the model that draws the video.
ALIASES = {"sora-2": "tiny-standin", "sora-2-pro": "tiny-standin", "default": "tiny-standin"}


def make(config: Any) -> TinyStudio:
    return TinyStudio(config.generator_options)

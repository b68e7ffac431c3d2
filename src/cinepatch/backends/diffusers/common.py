"""What every diffusers family shares: the checks, the call, progress and the output frames.

A family subclass says which pipelines its folder can drive (text-to-video, image-to-video,
first/last frame, frame-indexed conditions, remix), its size and frame-count rules, and how a
:class:`~cinepatch.backends.base.GenerationSpec` becomes the arguments of one pipeline call.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cinepatch.backends.base import GenerationSpec, Progress
from cinepatch.backends.diffusers.settings import DiffusersSettings
from cinepatch.errors import InvalidParameter, ModelError

__all__ = ["DiffusersBackend", "Call", "WHO_CAN"]

# Which folders can do what, named in every "this model cannot" error.
EDIT_NAMES = {
    "text": "text-to-video",
    "image": "image-to-video",
    "keyframes": "frames pinned at other indices",
    "remix": "remix",
}
WHO_CAN = {
    "text": "Wan text-to-video (WanPipeline, WanVideoToVideoPipeline folders), any LTX folder, "
    "CogVideoX text-to-video (CogVideoXPipeline, CogVideoXVideoToVideoPipeline folders)",
    "image": "Wan image-to-video (WanImageToVideoPipeline) and Wan 2.2 TI2V-5B, any LTX folder, "
    "CogVideoX image-to-video (CogVideoXImageToVideoPipeline)",
    "keyframes": "LTX (any LTX folder: frames at any index, so extend, loop, blend and storyboard); "
    "Wan first/last-frame weights (FLF2V) pin the first and the last frame",
    "remix": "Wan text-to-video with one expert (Wan 2.1, Wan 2.2 TI2V-5B), any LTX folder, "
    "CogVideoX text-to-video",
}


@dataclass(frozen=True)
class Call:
    """One pipeline call: the pipeline to use and its family-specific keyword arguments."""

    pipe: Any
    kwargs: dict[str, Any]


def neighbours(value: int, *, step: int, offset: int = 0, low: int | None = None) -> str:
    """``'61 or 65'``: the valid values either side of ``value`` on the grid ``offset + k·step``."""
    low = offset if low is None else low
    below = offset + (value - offset) // step * step
    above = below + step
    return " or ".join(str(v) for v in (below, above) if v >= max(low, 1))


class DiffusersBackend:
    """A diffusers pipeline folder behind cinepatch's :class:`~cinepatch.backends.base.Backend`."""

    family: ClassVar[str] = ""  # "wan" | "ltx" | "cogvideox"
    label: ClassVar[str] = ""  # "Wan", "LTX-Video", "CogVideoX" in messages
    default_steps: ClassVar[int] = 50
    default_guidance: ClassVar[float] = 5.0
    default_size: ClassVar[tuple[int, int]] = (832, 480)  # (width, height) when a request leaves it open
    default_fps: ClassVar[int] = 16
    max_frames: ClassVar[int | None] = None  # no stated limit: a request is made in one pass
    takes_plan: ClassVar[bool] = False  # they read no box layouts: a user's plan is ignored, with a warning
    flickers: ClassVar[bool] = False  # their frames go out as the pipeline made them

    def __init__(self, pipe: Any, *, folder: Path, class_name: str, settings: DiffusersSettings) -> None:
        self.pipe = pipe
        self.folder = folder
        self.class_name = class_name
        self.settings = settings
        self.name = f"{folder.name} (diffusers {class_name}{self._variant_note()})"
        self._derived: dict[type, Any] = {type(pipe): pipe}

    # -- what the family says ------------------------------------------------------------------

    def _variant_note(self) -> str:
        return ""

    @property
    def size_step(self) -> int:
        raise NotImplementedError

    @property
    def frame_step(self) -> int:
        raise NotImplementedError

    @property
    def latent_step(self) -> int:
        """Pixel frames per latent frame: these families' frame grid is their VAE's."""
        return self.frame_step

    def _check_shape(self, spec: GenerationSpec) -> None:
        """Sizes on the family's grid and ``1 + k·frame_step`` frames (override to add rules)."""
        for side, value in (("width", spec.width), ("height", spec.height)):
            if value % self.size_step:
                raise InvalidParameter(
                    side, value, f"a multiple of {self.size_step} for {self.label}: "
                    f"{neighbours(value, step=self.size_step, low=self.size_step)}",
                )
        if (spec.frames - 1) % self.frame_step:
            raise InvalidParameter(
                "frames", spec.frames, f"{self.frame_step}n+1 frames for {self.label}: "
                f"{neighbours(spec.frames, step=self.frame_step, offset=1)}",
            )

    def _check_edit(self, spec: GenerationSpec) -> None:
        raise NotImplementedError

    def _call(self, spec: GenerationSpec) -> Call:
        raise NotImplementedError

    # -- the interface -------------------------------------------------------------------------

    def check(self, spec: GenerationSpec) -> None:
        if spec.frames < 1:
            raise InvalidParameter("frames", spec.frames, "1 or more")
        if spec.source is not None:
            if spec.source.ndim != 4 or spec.source.shape[-1] != 3 or len(spec.source) == 0:
                raise InvalidParameter("source", spec.source.shape, "frames (T, H, W, 3)")
            if not 0 < spec.strength <= 1:
                raise InvalidParameter("strength", spec.strength, "more than 0, at most 1")
        if spec.keyframes is not None:
            for index in spec.keyframes.indices:
                if not 0 <= index < spec.frames:
                    raise InvalidParameter("keyframe index", index, f"0 to {spec.frames - 1}")
        self._check_shape(spec)
        self._check_edit(spec)

    def generate(self, spec: GenerationSpec, *, progress: Progress | None = None) -> np.ndarray:
        import torch

        self.check(spec)
        call = self._call(spec)
        steps = spec.steps or self.default_steps

        def on_step_end(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if progress is not None:
                progress(min(1.0, (index + 1) / max(1, pipe.num_timesteps)))
            return tensors

        kwargs = dict(
            prompt=spec.prompt,
            negative_prompt=spec.negative or None,
            height=spec.height,
            width=spec.width,
            num_inference_steps=steps,
            guidance_scale=self.default_guidance if spec.guidance is None else spec.guidance,
            # A CPU generator gives the same noise on every device for a seed.
            generator=torch.Generator("cpu").manual_seed(spec.seed),
            output_type="np",
            callback_on_step_end=on_step_end,
        )
        kwargs.update(call.kwargs)
        with torch.inference_mode(), self.settings.around_call(call.pipe, steps=steps):
            output = call.pipe(**kwargs)
        video = np.asarray(output.frames[0])  # (T, H, W, 3) float 0..1
        if video.shape != (spec.frames, spec.height, spec.width, 3):
            raise ModelError(
                f"{self.name} made frames of shape {video.shape}, expected "
                f"{(spec.frames, spec.height, spec.width, 3)}"
            )
        return (np.clip(video, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    # -- helpers for families ------------------------------------------------------------------

    def derived(self, cls: type) -> Any:
        """The loaded pipeline's components behind another pipeline class of the family (cached).

        Built from the constructor, not ``cls.from_pipe``: from_pipe ends with
        ``pipeline.to(dtype=float32)`` and so silently casts the shared bf16 transformer and
        text encoder to float32 (twice the memory), also in the pipeline already loaded.
        """
        if cls not in self._derived:
            accepted = inspect.signature(cls.__init__).parameters
            components = self.pipe.components
            kwargs = {name: module for name, module in components.items() if name in accepted}
            kwargs.update(
                (key, value) for key, value in self.pipe.config.items()
                if key in accepted and key not in components and not key.startswith("_")
            )  # registered options such as boundary_ratio and expand_timesteps
            pipe = cls(**kwargs)
            pipe.set_progress_bar_config(disable=True)
            self._derived[cls] = pipe
        return self._derived[cls]

    def cannot(self, name: str, value: object, *, allowed: str, edit: str) -> InvalidParameter:
        """The error for an edit this folder cannot make, naming the folders that can."""
        return InvalidParameter(
            name, value, f"{allowed} with {self.name}", hint=f"{EDIT_NAMES[edit]}: {WHO_CAN[edit]}"
        )


def to_images(frames: np.ndarray) -> list[Any]:
    """``(T, H, W, 3)`` uint8 → PIL images, the input type every diffusers video pipeline takes."""
    from PIL import Image

    return [Image.fromarray(np.ascontiguousarray(frame)) for frame in frames]


def fit_length(frames: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` frames, holding the last one when the source is shorter."""
    frames = frames[:length]
    if len(frames) < length:
        frames = np.concatenate([frames, np.repeat(frames[-1:], length - len(frames), axis=0)])
    return frames

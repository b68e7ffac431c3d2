"""LTX-Video folders: text-to-video, image-to-video, and frames pinned at any index.

Every LTX folder (``LTXPipeline``, ``LTXImageToVideoPipeline``, ``LTXConditionPipeline``) holds
the same components, so each request picks the pipeline that makes it:

- no keyframes, no source → ``LTXPipeline`` (or the condition pipeline when that is the folder);
- one keyframe at frame 0 → ``LTXImageToVideoPipeline`` (condition pipeline for its own folder);
- anything else → ``LTXConditionPipeline``: each run of consecutive keyframes becomes one
  condition at its first frame (a video of ``temporal·k + 1`` frames, the longest that fits;
  a single frame is an image), which is how extend, loop, blend and storyboard reach LTX;
  a remix source is encoded by the VAE and re-noised to ``strength`` (``denoise_strength``).

Frame-indexed conditions were trained from LTX-Video 0.9.5 on; older weights accept them but
follow them loosely (see docs/diffusers.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cinepatch.backends.base import GenerationSpec
from cinepatch.backends.diffusers.common import Call, DiffusersBackend, fit_length, to_images

__all__ = ["LTXBackend"]


class LTXBackend(DiffusersBackend):
    family = "ltx"
    label = "LTX-Video"
    default_size = (704, 480)
    default_fps = 24
    default_steps = 50
    default_guidance = 3.0

    @property
    def size_step(self) -> int:
        return self.pipe.vae_spatial_compression_ratio * self.pipe.transformer_spatial_patch_size

    @property
    def frame_step(self) -> int:
        return self.pipe.vae_temporal_compression_ratio * self.pipe.transformer_temporal_patch_size

    def _check_edit(self, spec: GenerationSpec) -> None:
        return  # text, any keyframes, remix, and remix with keyframes: all made by some LTX pipeline

    def _common(self, spec: GenerationSpec) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"num_frames": spec.frames, "frame_rate": spec.fps}
        if self.pipe.vae.config.get("timestep_conditioning", False):
            # LTX 0.9.1+ VAEs denoise while decoding; these are the values Lightricks recommends.
            kwargs.update(decode_timestep=0.05, decode_noise_scale=0.025)
        return kwargs

    def _call(self, spec: GenerationSpec) -> Call:
        from diffusers import LTXConditionPipeline, LTXImageToVideoPipeline, LTXPipeline

        kwargs = self._common(spec)
        own_conditions = self.class_name == "LTXConditionPipeline"
        if spec.source is None and spec.keyframes is None:
            return Call(self.derived(LTXConditionPipeline if own_conditions else LTXPipeline), kwargs)
        if spec.source is None and spec.keyframes.indices == (0,) and not own_conditions:
            [image] = to_images(spec.keyframes.frames)
            return Call(self.derived(LTXImageToVideoPipeline), {**kwargs, "image": image})

        pipe = self.derived(LTXConditionPipeline)
        if spec.keyframes is not None:
            kwargs["conditions"] = self._conditions(spec)
        if spec.source is not None:
            kwargs["latents"] = self._encode(pipe, fit_length(spec.source, spec.frames), spec)
            kwargs["denoise_strength"] = spec.strength
        return Call(pipe, kwargs)

    def _conditions(self, spec: GenerationSpec) -> list[Any]:
        """Runs of consecutive keyframes → one LTX condition each, at the run's first frame."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        assert spec.keyframes is not None
        order = np.argsort(spec.keyframes.indices)
        indices = [spec.keyframes.indices[i] for i in order]
        frames = spec.keyframes.frames[order]
        conditions = []
        start = 0
        for end in range(1, len(indices) + 1):
            if end < len(indices) and indices[end] == indices[end - 1] + 1:
                continue
            run = frames[start:end]
            # A video condition has temporal·k + 1 frames: keep the longest prefix of that length.
            length = 1 + (len(run) - 1) // self.frame_step * self.frame_step
            images = to_images(run[:length])
            if length == 1:
                conditions.append(LTXVideoCondition(image=images[0], frame_index=indices[start]))
            else:
                conditions.append(LTXVideoCondition(video=images, frame_index=indices[start]))
            start = end
        return conditions

    def _encode(self, pipe: Any, frames: np.ndarray, spec: GenerationSpec) -> Any:
        """The source video as normalised latents ``(1, C, t, h, w)`` (the VAE's mean, no sampling)."""
        import torch

        video = pipe.video_processor.preprocess_video(to_images(frames), spec.height, spec.width)
        device = pipe._execution_device
        with torch.inference_mode():
            latents = pipe.vae.encode(video.to(device, pipe.vae.dtype)).latent_dist.mode()
        latents = pipe._normalize_latents(latents, pipe.vae.latents_mean, pipe.vae.latents_std)
        return latents.float()

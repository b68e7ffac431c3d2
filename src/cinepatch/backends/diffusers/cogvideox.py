"""CogVideoX folders: text-to-video, image-to-video (its own weights), remix.

| folder (``_class_name``) | text | image at frame 0 | remix |
|---|---|---|---|
| ``CogVideoXPipeline`` (2b, 5b, 1.5-5b) | yes | — | yes |
| ``CogVideoXVideoToVideoPipeline`` (text weights) | yes | — | yes |
| ``CogVideoXImageToVideoPipeline`` (5b-I2V, 1.5-5b-I2V) | — | yes | — |

Rules: sides a multiple of ``8 × patch_size`` (16), ``4k + 1`` frames; weights with learned
positional embeddings (CogVideoX-5b-I2V) make only their trained size (720×480); CogVideoX 1.5
remixes need a source whose latent frame count is a multiple of its temporal patch (2).
The text encoder's sequence length is fixed by the transformer (``max_text_seq_length``).
"""

from __future__ import annotations

from typing import Any

from cinepatch.backends.base import GenerationSpec
from cinepatch.backends.diffusers.common import Call, DiffusersBackend, fit_length, neighbours, to_images
from cinepatch.errors import InvalidParameter

__all__ = ["CogVideoXBackend"]


class CogVideoXBackend(DiffusersBackend):
    family = "cogvideox"
    label = "CogVideoX"
    default_size = (720, 480)
    default_fps = 8
    default_steps = 50
    default_guidance = 6.0

    @property
    def size_step(self) -> int:
        return self.pipe.vae_scale_factor_spatial * self.pipe.transformer.config.patch_size

    @property
    def frame_step(self) -> int:
        return self.pipe.vae_scale_factor_temporal

    def _check_shape(self, spec: GenerationSpec) -> None:
        config = self.pipe.transformer.config
        if config.get("use_learned_positional_embeddings", False):
            width = config.sample_width * self.pipe.vae_scale_factor_spatial
            height = config.sample_height * self.pipe.vae_scale_factor_spatial
            if (spec.width, spec.height) != (width, height):
                raise InvalidParameter(
                    "size", f"{spec.width}x{spec.height}",
                    f"{width}x{height} only (these weights have learned positional embeddings)",
                )
        super()._check_shape(spec)
        patch_t = config.get("patch_size_t")
        if spec.source is not None and patch_t:
            latent = (spec.frames - 1) // self.frame_step + 1
            if latent % patch_t:
                step = self.frame_step * patch_t
                raise InvalidParameter(
                    "frames", spec.frames, f"{step}n+1 frames to remix with CogVideoX 1.5: "
                    f"{neighbours(spec.frames, step=step, offset=1)}",
                )

    @property
    def makes_text(self) -> bool:
        return self.class_name in ("CogVideoXPipeline", "CogVideoXVideoToVideoPipeline")

    def _check_edit(self, spec: GenerationSpec) -> None:
        if spec.source is not None:
            if not self.makes_text:
                raise self.cannot(
                    "source", "a video to remix", allowed="no remix (an image-to-video model)", edit="remix"
                )
            if spec.keyframes is not None:
                raise self.cannot(
                    "keyframes", spec.keyframes.indices, allowed="no pinned frames during a remix",
                    edit="keyframes",
                )
            return
        if spec.keyframes is None:
            if not self.makes_text:
                raise self.cannot(
                    "keyframes", None, allowed="a start image (edit 'image'); this model needs one", edit="text"
                )
            return
        if self.makes_text:
            raise self.cannot("keyframes", spec.keyframes.indices, allowed="no keyframes", edit="image")
        if spec.keyframes.indices != (0,):
            raise self.cannot(
                "keyframes", spec.keyframes.indices, allowed="the first frame only", edit="keyframes"
            )

    def _call(self, spec: GenerationSpec) -> Call:
        from diffusers import CogVideoXImageToVideoPipeline, CogVideoXPipeline, CogVideoXVideoToVideoPipeline

        kwargs: dict[str, Any] = {"max_sequence_length": self.pipe.transformer.config.max_text_seq_length}
        if spec.source is not None:
            video = to_images(fit_length(spec.source, spec.frames))
            kwargs.update(video=video, strength=spec.strength)
            return Call(self.derived(CogVideoXVideoToVideoPipeline), kwargs)
        kwargs["num_frames"] = spec.frames
        if spec.keyframes is None:
            return Call(self.derived(CogVideoXPipeline), kwargs)
        [image] = to_images(spec.keyframes.frames)
        return Call(self.derived(CogVideoXImageToVideoPipeline), {**kwargs, "image": image})

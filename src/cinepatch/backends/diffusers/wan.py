"""Wan 2.1 / 2.2 folders: text-to-video, image-to-video, first/last frame, remix.

| folder (``_class_name``) | text | image at frame 0 | first + last frame | remix |
|---|---|---|---|---|
| ``WanPipeline`` (2.1, 2.2 two-expert A14B) | yes | — | — | one expert only |
| ``WanPipeline`` with ``expand_timesteps`` (2.2 TI2V-5B) | yes | yes | — | yes |
| ``WanImageToVideoPipeline`` (2.1 I2V, 2.2 I2V A14B) | — | yes | — | — |
| ``WanImageToVideoPipeline`` (2.1 FLF2V) | — | — | yes (both ends required) | — |
| ``WanVideoToVideoPipeline`` (2.1 T2V weights) | yes | — | — | yes |

Remix is ``WanVideoToVideoPipeline`` over the text-to-video weights (the source is noised to
``strength`` and denoised under the prompt); it has no second expert, so the two-expert 2.2
A14B text model cannot remix. First/last frame needs weights trained for it: the FLF2V
transformer carries a positional embedding for two image embeddings (``pos_embed_seq_len``).
"""

from __future__ import annotations

from typing import Any

from cinepatch.backends.base import GenerationSpec
from cinepatch.backends.diffusers.common import Call, DiffusersBackend, fit_length, to_images

__all__ = ["WanBackend"]


class WanBackend(DiffusersBackend):
    family = "wan"
    label = "Wan"
    default_steps = 50
    default_guidance = 5.0

    @property
    def _transformer(self) -> Any:
        return self.pipe.transformer if self.pipe.transformer is not None else self.pipe.transformer_2

    @property
    def two_expert(self) -> bool:
        has_second = getattr(self.pipe, "transformer_2", None) is not None
        return has_second and self.pipe.config.get("boundary_ratio") is not None

    def _variant_note(self) -> str:
        return ", two experts" if self.two_expert else ""

    @property
    def size_step(self) -> int:
        # Frames are patchified after the VAE: 8 × 2 = 16 for Wan 2.1, 16 × 2 = 32 for TI2V-5B.
        return self.pipe.vae_scale_factor_spatial * self._transformer.config.patch_size[1]

    @property
    def frame_step(self) -> int:
        return self.pipe.vae_scale_factor_temporal

    # -- what this folder can do -----------------------------------------------------------------

    @property
    def makes_text(self) -> bool:
        return self.class_name in ("WanPipeline", "WanVideoToVideoPipeline")

    @property
    def makes_image(self) -> bool:
        return self.class_name == "WanImageToVideoPipeline" or (
            self.class_name == "WanPipeline" and bool(self.pipe.config.get("expand_timesteps", False))
        )

    @property
    def makes_first_last(self) -> bool:
        config = self._transformer.config
        return self.class_name == "WanImageToVideoPipeline" and config.get("pos_embed_seq_len") is not None

    @property
    def makes_remix(self) -> bool:
        return self.makes_text and not self.two_expert

    def _check_edit(self, spec: GenerationSpec) -> None:
        if spec.source is not None:
            if not self.makes_remix:
                reason = "a two-expert model" if self.two_expert else "an image-to-video model"
                raise self.cannot("source", "a video to remix", allowed=f"no remix ({reason})", edit="remix")
            if spec.keyframes is not None:
                raise self.cannot(
                    "keyframes", spec.keyframes.indices, allowed="no pinned frames during a remix",
                    edit="keyframes",
                )
            return
        if spec.keyframes is None:
            if not self.makes_text:
                raise self.cannot(
                    "keyframes", None, allowed="a start image (edit 'image'); this model needs one",
                    edit="text",
                )
            return
        indices = set(spec.keyframes.indices)
        if not self.makes_image:
            raise self.cannot("keyframes", spec.keyframes.indices, allowed="no keyframes", edit="image")
        last = spec.frames - 1
        if self.makes_first_last:
            # FLF2V weights embed two images side by side: they need both ends, and only those.
            if indices == {0, last} and last > 0:
                return
            raise self.cannot(
                "keyframes", spec.keyframes.indices,
                allowed=f"the first and the last frame together (0 and {last}; first/last-frame weights)",
                edit="keyframes",
            )
        if indices == {0}:
            return
        raise self.cannot(
            "keyframes", spec.keyframes.indices,
            allowed="the first frame only (these weights were not trained on other frames)",
            edit="keyframes",
        )

    # -- the call --------------------------------------------------------------------------------

    def _call(self, spec: GenerationSpec) -> Call:
        from diffusers import WanImageToVideoPipeline, WanPipeline, WanVideoToVideoPipeline

        if spec.source is not None:
            video = to_images(fit_length(spec.source, spec.frames))
            return Call(self.derived(WanVideoToVideoPipeline), {"video": video, "strength": spec.strength})
        if spec.keyframes is None:
            return Call(self.derived(WanPipeline), {"num_frames": spec.frames})
        images = dict(zip(spec.keyframes.indices, to_images(spec.keyframes.frames), strict=True))
        kwargs: dict[str, Any] = {"num_frames": spec.frames, "image": images[0]}
        if len(images) == 2:
            kwargs["last_image"] = images[spec.frames - 1]
        return Call(self.derived(WanImageToVideoPipeline), kwargs)

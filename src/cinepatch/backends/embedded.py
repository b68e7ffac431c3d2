"""The embedded model family — cinepatch's own DiT + causal VAE — behind the backend interface.

The default model ships inside the package (``cinepatch/weights/default``); any folder written
by ``Pipeline.save_pretrained`` (for instance by ``cinepatch train``) loads the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cinepatch.backends.base import GenerationSpec, Progress
from cinepatch.errors import InvalidParameter

if TYPE_CHECKING:
    from cinepatch.pipeline import Pipeline

__all__ = ["EmbeddedBackend", "shipped_model_dir", "SHIPPED_MODEL"]

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "weights" / "default"


def shipped_model_dir() -> Path | None:
    """The default model's folder, or None when this installation carries no weights."""
    return SHIPPED_MODEL if (SHIPPED_MODEL / "config.json").exists() else None


class EmbeddedBackend:
    """A model folder behind the backend interface; what it serves is its ``serving`` section."""

    frame_step = 1  # any count: the model makes the next 1 + k·latent_step frames and trims
    flickers = True  # still content changes by ~8 levels a frame; the app denoises it in time

    def __init__(self, pipeline: Pipeline) -> None:
        if pipeline.serving is None:
            raise InvalidParameter("pipeline.serving", None, "a ServingConfig (a loaded model folder has one)")
        self.pipeline = pipeline
        serving = pipeline.serving
        self.name = serving.name
        self.max_frames: int | None = serving.max_frames
        self.default_size = serving.default_size
        self.default_fps = serving.default_fps
        self.latent_step = serving.latent_step
        # A layout-grounded DiT draws the scene plan the app gives it; a text-only one is given none.
        self.takes_plan = pipeline.dit.config.layout_dim > 0

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> EmbeddedBackend:
        from cinepatch.pipeline import Pipeline

        return cls(Pipeline.from_pretrained(folder))

    def _model_frames(self, frames: int) -> int:
        """The model makes ``1 + k·latent_step`` frames; a request for others is made one size up and trimmed."""
        step = self.latent_step
        return 1 + step * -(-(frames - 1) // step)

    def check(self, spec: GenerationSpec) -> None:
        self.pipeline.check_shape(
            frames=self._model_frames(spec.frames), width=spec.width, height=spec.height
        )
        if spec.source is not None and not 0 < spec.strength <= 1:
            raise InvalidParameter("strength", spec.strength, "more than 0, at most 1")
        if spec.keyframes is not None:
            for index in spec.keyframes.indices:
                if not 0 <= index < spec.frames:
                    raise InvalidParameter("keyframe index", index, f"0 to {spec.frames - 1}")

    def _conditioning(self, spec: GenerationSpec, frames: int):
        """Keyframes → the latent mask and reference latents, made as in training.

        Training conditions on slices of the *whole* clip's latents, so here too the whole
        clip is encoded once: known frames in place, every other frame holding the nearest
        known one. A latent frame is given when its group of pixel frames holds a keyframe
        (a lone image is held over its group — a freeze of at most ``latent_step − 1`` frames).
        A released keyframe (``Keyframes.release``) releases its latent frame instead, at the
        lowest release of the frames in its group.
        """
        import torch

        from cinepatch.pipeline import Conditioning, latent_index

        assert spec.keyframes is not None
        indices = np.asarray(spec.keyframes.indices)
        nearest = np.abs(np.arange(frames)[:, None] - indices[None, :]).argmin(axis=1)
        clip = spec.keyframes.frames[nearest]  # (frames, H, W, 3)
        latents = self.pipeline.encode_frames(clip)  # (C, t, h, w)
        mask = torch.zeros(latents.shape[1])
        release = torch.ones(latents.shape[1])
        levels = spec.keyframes.release or (0.0,) * len(indices)
        for index, level in zip(indices, levels, strict=True):
            at = latent_index(int(index), self.latent_step)
            release[at] = min(float(release[at]), level)
        mask[release == 0] = 1.0
        if not bool((release < 1).logical_and(release > 0).any()):
            return Conditioning(mask=mask, latents=latents * mask[None, :, None, None])
        return Conditioning(mask=mask, latents=latents, release=torch.where(mask > 0, 1.0, release))

    def generate(self, spec: GenerationSpec, *, progress: Progress | None = None) -> np.ndarray:
        self.check(spec)
        frames = self._model_frames(spec.frames)
        cond = None if spec.keyframes is None else self._conditioning(spec, frames)
        init = None
        if spec.source is not None:
            source = spec.source[:frames]
            if len(source) < frames:  # hold the last frame to the model's length
                source = np.concatenate([source, np.repeat(source[-1:], frames - len(source), 0)])
            init = source
        report = None if progress is None else (lambda done, total: progress(done / total))
        [video] = self.pipeline.generate(
            [spec.prompt],
            frames=frames,
            width=spec.width,
            height=spec.height,
            fps=spec.fps,
            seed=spec.seed,
            steps=spec.steps,
            guidance=spec.guidance,
            negative=spec.negative or None,
            cond=cond,
            plans=[spec.plan if self.takes_plan else None],
            init=init,
            noise_strength=spec.strength if init is not None else 1.0,
            progress=report if report is not None else False,
        )
        return video[: spec.frames]

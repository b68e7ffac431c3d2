"""The interface every model family implements, and the request it receives.

A backend turns a :class:`GenerationSpec` into frames. The spec is backend-neutral: edits are
expressed in *pixels* — keyframes placed at output frame indices, and optionally a whole source
video to re-noise (remix) — and each backend maps that onto its own mechanism (the embedded
model's latent mask + reference latents, LTX's frame conditions, Wan's first/last frame …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from cinepatch.errors import InvalidParameter

if TYPE_CHECKING:
    from cinepatch.planning import ScenePlan

__all__ = ["Backend", "GenerationSpec", "Keyframes", "Progress", "EDITS"]

Progress = Callable[[float], None]
"""Called with the fraction done, 0.0 to 1.0."""

EDITS = ("image", "extend", "remix", "recut", "loop", "blend", "storyboard")


@dataclass(frozen=True)
class Keyframes:
    """Known frames ``(K, H, W, 3)`` uint8 pinned at output frame ``indices`` (one per frame).

    ``release`` (one per frame, 0..1; default all 0) lets a backend redraw a known frame in
    part: the sampler follows it noised down to that level and is free below (0: pinned
    exactly). A backend that cannot release frames gradually pins them."""

    frames: np.ndarray
    indices: tuple[int, ...]
    release: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or len(self.frames) != len(self.indices):
            raise InvalidParameter(
                "keyframes", f"{self.frames.shape} with {len(self.indices)} indices",
                "frames (K, H, W, 3) and K indices",
            )
        if len(set(self.indices)) != len(self.indices):
            raise InvalidParameter("keyframes.indices", self.indices, "distinct frame indices")
        if self.release is not None and (
            len(self.release) != len(self.indices) or not all(0 <= r < 1 for r in self.release)
        ):
            raise InvalidParameter("keyframes.release", self.release, "one value per frame, from 0 to below 1")


@dataclass(frozen=True)
class GenerationSpec:
    """One video to make. ``prompt`` is the text the model encodes (already expanded)."""

    prompt: str
    frames: int
    width: int
    height: int
    fps: int
    seed: int
    negative: str = ""
    steps: int | None = None  # None: the backend's default
    guidance: float | None = None  # None: the backend's default
    keyframes: Keyframes | None = None
    source: np.ndarray | None = field(default=None, repr=False)  # (T, H, W, 3): remix input
    strength: float = 1.0  # remix: 0 keeps the source, 1 re-imagines it fully
    # Where each object is on every frame, on this spec's canvas; None: from the text alone.
    # Only backends with ``takes_plan = True`` are given one (see docs/plans.md).
    plan: ScenePlan | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


class Backend(Protocol):
    """A model family behind cinepatch's commands."""

    name: str
    """Identifies the model in outputs, credentials and the ledger."""

    max_frames: int | None
    """Most frames one pass makes; longer videos are made in overlapping windows. None: no limit."""

    frame_step: int
    """A pass makes ``1 + k·frame_step`` frames and ``check`` refuses other counts. 1: any count."""

    latent_step: int
    """Pixel frames per latent frame after the first (the VAE's compression in time): edits pin
    frames and cut windows in whole groups of it, so every given latent frame is wholly known.
    1: each frame is its own latent frame."""

    takes_plan: bool
    """Whether ``generate`` draws ``spec.plan`` (a scene plan); the app plans only for these."""

    flickers: bool
    """Whether its frames flicker by a few levels from frame to frame (a DiT drawing each frame's
    tokens a little differently); the app runs the temporal denoiser over such a model's
    finished video, before review and provenance (:func:`cinepatch.io.denoise.temporal_denoise`)."""

    default_size: tuple[int, int]
    """(width, height) made when a request leaves the size open."""

    default_fps: int
    """Frame rate used when a request (and its preset) leaves it open."""

    def check(self, spec: GenerationSpec) -> None:
        """Raise :class:`InvalidParameter` for a spec this model cannot make, before any compute."""
        ...

    def generate(self, spec: GenerationSpec, *, progress: Progress | None = None) -> np.ndarray:
        """Make the video: frames ``(spec.frames, spec.height, spec.width, 3)`` uint8."""
        ...

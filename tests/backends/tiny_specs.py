"""Small helpers shared by the diffusers backend tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from cinepatch.backends.base import GenerationSpec, Keyframes


def spec(*, width: int, height: int, frames: int, **changes) -> GenerationSpec:
    base = GenerationSpec(prompt="a red ball rolls on the grass", frames=frames, width=width, height=height,
                          fps=8, seed=7, steps=2, guidance=4.0)
    return dataclasses.replace(base, **changes)


def images(count: int, *, width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def keyframes(indices: tuple[int, ...], *, width: int, height: int) -> Keyframes:
    return Keyframes(frames=images(len(indices), width=width, height=height), indices=indices)


def assert_video(frames: np.ndarray, s: GenerationSpec) -> None:
    assert frames.dtype == np.uint8
    assert frames.shape == (s.frames, s.height, s.width, 3)

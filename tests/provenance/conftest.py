"""Small clips for the provenance tests: 128×128, 16 frames at 8 fps (2 s)."""

from __future__ import annotations

import numpy as np
import pytest

from cinepatch.provenance import c2pa_sign


def moving_shapes(seed: int, *, frames: int = 16, size: int = 128) -> np.ndarray:
    """A flat background with a moving disc and a moving bar: the world renderer's kind of clip."""
    rng = np.random.default_rng(seed)
    out = np.empty((frames, size, size, 3), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    background, disc, bar = (rng.integers(20, 236, 3) for _ in range(3))
    x0, y0, r = rng.integers(20, size - 20), rng.integers(20, size - 20), rng.integers(8, size // 4)
    vx, vy = rng.integers(-4, 5, 2)
    for t in range(frames):
        out[t] = background
        out[t][(xx - x0 - vx * t) ** 2 + (yy - y0 - vy * t) ** 2 < r * r] = disc
        out[t][(yy // 6) % 7 == (t // 2) % 7] = bar
    return out


@pytest.fixture(scope="session")
def make_clip():
    return moving_shapes


@pytest.fixture(scope="session")
def clip() -> np.ndarray:
    return moving_shapes(2)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> c2pa_sign.SigningKeys:
    return c2pa_sign.ensure_keys(tmp_path_factory.mktemp("config") / "c2pa")

"""The temporal denoiser (FFmpeg's atadenoise through PyAV) on frames with known content."""

from __future__ import annotations

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter
from cinepatch.io.denoise import temporal_denoise


def _change(frames: np.ndarray) -> float:
    """Mean absolute change per frame, 0–255 levels."""
    return float(np.abs(np.diff(frames.astype(np.float32), axis=0)).mean())


def _moving_square(frames: int = 16) -> np.ndarray:
    video = np.full((frames, 48, 96, 3), (30, 40, 120), dtype=np.uint8)
    for t in range(frames):
        video[t, 16:32, 4 + 4 * t : 20 + 4 * t] = (220, 200, 40)
    return video


def test_flicker_in_still_content_is_averaged_away() -> None:
    rng = np.random.default_rng(0)
    still = np.full((16, 48, 64, 3), 110.0)
    still[:, 12:36, 16:48] = (200, 60, 60)
    flicker = rng.normal(0, 4, still.shape)  # a few levels, redrawn every frame, as the DiT does
    video = np.clip(np.rint(still + flicker), 0, 255).astype(np.uint8)
    out = temporal_denoise(video)
    assert out.shape == video.shape and out.dtype == np.uint8
    assert _change(out) < _change(video) / 3
    assert np.abs(out.astype(float) - still).mean() < np.abs(video.astype(float) - still).mean() / 2


def test_a_loops_joint_is_smoothed_like_its_other_frames() -> None:
    rng = np.random.default_rng(1)
    video = np.clip(np.rint(110 + rng.normal(0, 4, (24, 32, 32, 3))), 0, 255).astype(np.uint8)

    def joint_over_median(out: np.ndarray) -> float:
        change = np.abs(np.diff(np.concatenate([out, out[:1]]).astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
        return float(change[-1] / np.median(change[:-1]))  # last → first against the rest

    assert joint_over_median(temporal_denoise(video)) > 3  # the two ends smoothed apart: the loop jumps
    assert joint_over_median(temporal_denoise(video, cyclic=True)) < 1.3


def test_a_moving_edge_is_not_smeared() -> None:
    video = _moving_square()
    out = temporal_denoise(video)
    # contrast far above the threshold: no neighbour is averaged in, the frames come back as they were
    assert np.abs(out.astype(int) - video).max() <= 1


def test_a_cut_stays_a_cut() -> None:
    a = np.full((8, 32, 32, 3), 60, dtype=np.uint8)
    b = np.full((8, 32, 32, 3), 180, dtype=np.uint8)
    out = temporal_denoise(np.concatenate([a, b]))
    assert np.array_equal(out[:8], a) and np.array_equal(out[8:], b)


@pytest.mark.parametrize("cyclic", [False, True])
@pytest.mark.parametrize("frames", [2, 3, 5])
def test_clips_shorter_than_the_window(frames: int, cyclic: bool) -> None:
    rng = np.random.default_rng(frames)
    video = np.clip(np.rint(110 + rng.normal(0, 4, (frames, 16, 24, 3))), 0, 255).astype(np.uint8)
    out = temporal_denoise(video, cyclic=cyclic)
    assert out.shape == video.shape and out.dtype == np.uint8
    assert np.abs(out.astype(float) - 110).mean() < np.abs(video.astype(float) - 110).mean()  # still averaged


def test_a_single_frame_comes_back_as_it_was() -> None:
    video = _moving_square(1)
    assert np.array_equal(temporal_denoise(video), video)
    assert np.array_equal(temporal_denoise(video, cyclic=True), video)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"threshold": 0.0}, "threshold"), ({"threshold": 0.3}, "threshold"), ({"window": 4}, "window"), ({"window": 3}, "window")],
)
def test_bad_settings_name_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(InvalidParameter, match=name):
        temporal_denoise(_moving_square(4), **kwargs)


def test_bad_frames_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="frames"):
        temporal_denoise(np.zeros((4, 8, 8, 3), dtype=np.float32))

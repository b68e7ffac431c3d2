"""Wan folders (2.1 T2V, I2V, first/last frame, remix; 2.2 two experts) through the real loader."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_specs import assert_video, images, keyframes, spec

from cinepatch.backends.diffusers import load_diffusers_backend
from cinepatch.errors import InvalidParameter

W = H = 16
F = 5  # 4n + 1


@pytest.fixture(scope="module")
def wan(tiny_folders):
    return load_diffusers_backend(tiny_folders["wan_t2v"])


@pytest.fixture(scope="module")
def made(wan):
    """One text-to-video generation (seed 7) with its progress reports, shared by the tests."""
    seen: list[float] = []
    return wan.generate(spec(width=W, height=H, frames=F), progress=seen.append), seen


def test_text_to_video_shape_progress_and_name(wan, made, tiny_folders):
    frames, seen = made
    assert_video(frames, spec(width=W, height=H, frames=F))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 2
    assert wan.name == f"{tiny_folders['wan_t2v'].name} (diffusers WanPipeline)"


def test_reload_gives_identical_frames_for_a_seed(made, tiny_folders, no_network):
    again = load_diffusers_backend(tiny_folders["wan_t2v"]).generate(spec(width=W, height=H, frames=F))
    np.testing.assert_array_equal(made[0], again)
    other = load_diffusers_backend(tiny_folders["wan_t2v"]).generate(spec(width=W, height=H, frames=F, seed=8))
    assert not np.array_equal(made[0], other)


def test_remix_uses_video_to_video(wan):
    s = spec(width=W, height=H, frames=F, source=images(3, width=W, height=H), strength=0.5)
    frames = wan.generate(s)
    assert_video(frames, s)
    assert "WanVideoToVideoPipeline" in {cls.__name__ for cls in wan._derived}


@pytest.mark.parametrize(
    ("changes", "name", "neighbours"),
    [
        (dict(frames=6), "frames", "5 or 9"),
        (dict(frames=16), "frames", "13 or 17"),
        (dict(width=24), "width", "16 or 32"),
        (dict(height=40), "height", "32 or 48"),
    ],
)
def test_bad_sizes_are_rejected_with_neighbours(wan, changes, name, neighbours):
    with pytest.raises(InvalidParameter) as error:
        wan.check(spec(**{"width": W, "height": H, "frames": F, **changes}))
    assert error.value.name == name
    assert neighbours in str(error.value)


def test_text_model_refuses_keyframes_naming_who_can(wan):
    with pytest.raises(InvalidParameter, match="LTX") as error:
        wan.check(spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H)))
    assert "WanImageToVideoPipeline" in str(error.value)


def test_image_to_video(tiny_folders):
    backend = load_diffusers_backend(tiny_folders["wan_i2v"])
    s = spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H))
    assert_video(backend.generate(s), s)
    with pytest.raises(InvalidParameter, match="start image"):
        backend.check(spec(width=W, height=H, frames=F))
    with pytest.raises(InvalidParameter, match="first frame only"):
        backend.check(spec(width=W, height=H, frames=F, keyframes=keyframes((0, F - 1), width=W, height=H)))
    with pytest.raises(InvalidParameter, match="remix"):
        backend.check(spec(width=W, height=H, frames=F, source=images(F, width=W, height=H), strength=0.5))


def test_first_last_frame_weights(tiny_folders):
    backend = load_diffusers_backend(tiny_folders["wan_flf2v"])
    s = spec(width=W, height=H, frames=F, keyframes=keyframes((0, F - 1), width=W, height=H))
    assert_video(backend.generate(s), s)
    with pytest.raises(InvalidParameter, match="first and the last frame together"):
        backend.check(spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H)))
    with pytest.raises(InvalidParameter, match="LTX"):
        backend.check(spec(width=W, height=H, frames=F, keyframes=keyframes((0, 2), width=W, height=H)))


def test_two_experts(tiny_folders):
    backend = load_diffusers_backend(tiny_folders["wan_two_expert"])
    assert backend.two_expert and "two experts" in backend.name
    calls = {"transformer": 0, "transformer_2": 0}
    for name in calls:
        getattr(backend.pipe, name).register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    s = spec(width=W, height=H, frames=F, steps=4)
    assert_video(backend.generate(s), s)
    assert calls["transformer"] > 0 and calls["transformer_2"] > 0  # high-noise, then low-noise expert
    with pytest.raises(InvalidParameter, match="two-expert"):
        backend.check(spec(width=W, height=H, frames=F, source=images(F, width=W, height=H), strength=0.5))


def test_text_and_image_model_ti2v(tiny_folders):
    backend = load_diffusers_backend(tiny_folders["wan_ti2v"])
    assert backend.makes_text and backend.makes_image and backend.makes_remix and not backend.makes_first_last
    s = spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H))
    assert_video(backend.generate(s), s)
    assert "WanImageToVideoPipeline" in {cls.__name__ for cls in backend._derived}

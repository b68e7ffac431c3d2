"""LTX-Video folders: text, image at frame 0, frames pinned at any index, remix."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_specs import assert_video, images, keyframes, spec

from cinepatch.backends.base import Keyframes
from cinepatch.backends.diffusers import load_diffusers_backend
from cinepatch.errors import InvalidParameter

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers + numpy 2

W = H = 32  # the tiny VAE compresses like the real one: 32× in space, 8× in time
F = 9


@pytest.fixture(scope="module")
def ltx(tiny_folders):
    return load_diffusers_backend(tiny_folders["ltx"])


def pipes_used(backend) -> set[str]:
    return {cls.__name__ for cls in backend._derived}


def test_rules_come_from_the_weights(ltx):
    assert (ltx.size_step, ltx.frame_step) == (32, 8)


def test_text_to_video_and_reload(ltx, tiny_folders, no_network):
    s = spec(width=W, height=H, frames=F, seed=3)
    frames = ltx.generate(s)
    assert_video(frames, s)
    np.testing.assert_array_equal(frames, load_diffusers_backend(tiny_folders["ltx"]).generate(s))


def test_image_at_frame_zero_uses_image_to_video(ltx):
    s = spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H))
    assert_video(ltx.generate(s), s)
    assert "LTXImageToVideoPipeline" in pipes_used(ltx)


def test_frames_at_any_index_use_conditions(ltx):
    # An extend-like request: a run of 9 known frames at the start, and one more at the end.
    known = images(10, width=W, height=H)
    s = spec(width=W, height=H, frames=2 * F - 1, keyframes=Keyframes(known, tuple(range(9)) + (16,)))
    conditions = ltx._conditions(s)
    assert [(c.frame_index, c.video is not None) for c in conditions] == [(0, True), (16, False)]
    assert_video(ltx.generate(s), s)
    assert "LTXConditionPipeline" in pipes_used(ltx)


def test_remix_with_strength(ltx):
    s = spec(width=W, height=H, frames=F, source=images(F, width=W, height=H), strength=0.4)
    assert_video(ltx.generate(s), s)


@pytest.mark.parametrize(
    ("changes", "name", "neighbours"),
    [
        (dict(frames=16), "frames", "9 or 17"),
        (dict(frames=13), "frames", "9 or 17"),
        (dict(width=48), "width", "32 or 64"),
        (dict(height=80), "height", "64 or 96"),
    ],
)
def test_bad_sizes_are_rejected_with_neighbours(ltx, changes, name, neighbours):
    with pytest.raises(InvalidParameter) as error:
        ltx.check(spec(**{"width": W, "height": H, "frames": F, **changes}))
    assert error.value.name == name
    assert neighbours in str(error.value)


def test_condition_folder_makes_everything_with_its_own_pipeline(tiny_folders):
    backend = load_diffusers_backend(tiny_folders["ltx_condition"])
    s = spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H))
    assert_video(backend.generate(s), s)
    assert pipes_used(backend) == {"LTXConditionPipeline"}

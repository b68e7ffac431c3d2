"""CogVideoX folders: text-to-video, remix, and the edits they cannot make."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_specs import assert_video, images, keyframes, spec

from cinepatch.backends.diffusers import load_diffusers_backend
from cinepatch.errors import InvalidParameter

W = H = 16
F = 9


@pytest.fixture(scope="module")
def cog(tiny_folders):
    return load_diffusers_backend(tiny_folders["cogvideox"])


def test_text_to_video_and_reload(cog, tiny_folders, no_network):
    s = spec(width=W, height=H, frames=F)
    frames = cog.generate(s)
    assert_video(frames, s)
    np.testing.assert_array_equal(frames, load_diffusers_backend(tiny_folders["cogvideox"]).generate(s))


def test_remix(cog):
    s = spec(width=W, height=H, frames=F, source=images(F, width=W, height=H), strength=0.5)
    assert_video(cog.generate(s), s)


def test_edits_it_cannot_make_name_who_can(cog):
    with pytest.raises(InvalidParameter, match="CogVideoXImageToVideoPipeline"):
        cog.check(spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H)))
    with pytest.raises(InvalidParameter, match="4n\\+1 frames for CogVideoX: 5 or 9"):
        cog.check(spec(width=W, height=H, frames=8))
    with pytest.raises(InvalidParameter, match="multiple of 16 for CogVideoX: 16 or 32"):
        cog.check(spec(width=24, height=H, frames=F))


def test_image_to_video_weights(tiny_folders):
    backend = load_diffusers_backend(tiny_folders["cogvideox_i2v"])
    s = spec(width=W, height=H, frames=F, keyframes=keyframes((0,), width=W, height=H))
    assert_video(backend.generate(s), s)
    with pytest.raises(InvalidParameter, match="16x16 only"):  # learned positional embeddings
        backend.check(spec(width=32, height=32, frames=F, keyframes=keyframes((0,), width=32, height=32)))
    with pytest.raises(InvalidParameter, match="start image"):
        backend.check(spec(width=W, height=H, frames=F))
    with pytest.raises(InvalidParameter, match="first frame only"):
        backend.check(spec(width=W, height=H, frames=F, keyframes=keyframes((0, 4), width=W, height=H)))

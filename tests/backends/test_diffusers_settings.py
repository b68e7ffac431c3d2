"""DiffusersSettings: validation, memory options, step caches, and the attention backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_specs import assert_video, images, spec

from cinepatch.backends.diffusers import DiffusersSettings, load_diffusers_backend
from cinepatch.errors import InvalidParameter, ModelError

W = H = 16
F = 5


def test_unknown_and_bad_values_are_rejected():
    with pytest.raises(InvalidParameter, match="diffusers.tiling"):
        DiffusersSettings.from_dict({"tiling": True})
    with pytest.raises(InvalidParameter, match="diffusers.cache"):
        DiffusersSettings(cache="faster")  # FasterCache fails on Wan (cond and uncond in separate passes)
    with pytest.raises(InvalidParameter, match="mag_ratios"):
        DiffusersSettings(cache="magcache")
    with pytest.raises(InvalidParameter, match="download kernels"):
        DiffusersSettings(attention_backend="flash_hub")
    settings = DiffusersSettings.from_dict({"vae_tiling": True, "mag_ratios": [1, 0.9], "cache": "magcache"})
    assert settings.vae_tiling and settings.mag_ratios == (1.0, 0.9)


def test_model_offload_needs_an_accelerator(tiny_folders):
    with pytest.raises(ModelError, match="has none; use offload='group'"):
        load_diffusers_backend(tiny_folders["wan_t2v"], settings=DiffusersSettings(device="cpu", offload="model"))


def test_dtypes_bf16_transformer_fp32_vae_for_wan(tiny_folders):
    backend = load_diffusers_backend(tiny_folders["wan_t2v"], settings=DiffusersSettings(dtype="bfloat16"))
    s = spec(width=W, height=H, frames=F, source=images(F, width=W, height=H), strength=0.6)
    assert_video(backend.generate(s), s)  # the remix pipeline shares the loaded modules …
    for pipe in backend._derived.values():  # … and keeps their dtypes (from_pipe would cast to fp32)
        assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
        assert pipe.vae.dtype == torch.float32


@pytest.fixture(scope="module")
def reference(tiny_folders):
    return load_diffusers_backend(tiny_folders["wan_t2v"]).generate(spec(width=W, height=H, frames=F, steps=4))


def test_group_offload_and_vae_options_keep_the_frames(tiny_folders, reference, tmp_path):
    settings = DiffusersSettings(offload="group", group_offload_disk=tmp_path, vae_tiling=True, vae_slicing=True)
    backend = load_diffusers_backend(tiny_folders["wan_t2v"], settings=settings)
    assert backend.pipe.vae.use_tiling and backend.pipe.vae.use_slicing
    frames = backend.generate(spec(width=W, height=H, frames=F, steps=4))
    assert np.abs(frames.astype(int) - reference).max() <= 1


@pytest.mark.parametrize(
    "settings",
    [
        DiffusersSettings(cache="first_block", cache_threshold=0.2),
        DiffusersSettings(cache="pab"),
        DiffusersSettings(cache="magcache", mag_ratios=(1.0, 1.0, 0.98, 0.95)),
    ],
    ids=["first_block", "pab", "magcache"],
)
def test_step_caches_run_and_are_removed_afterwards(tiny_folders, settings, reference):
    backend = load_diffusers_backend(tiny_folders["wan_t2v"], settings=settings)
    s = spec(width=W, height=H, frames=F, steps=4)
    frames = backend.generate(s)
    assert_video(frames, s)
    assert not backend.pipe.transformer.is_cache_enabled
    assert np.array_equal(backend.generate(s), frames)  # no state carried between calls


def test_attention_backend_is_restored_after_each_call(tiny_folders):
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    before = _AttentionBackendRegistry._active_backend
    backend = load_diffusers_backend(tiny_folders["wan_t2v"], settings=DiffusersSettings(attention_backend="_native_math"))
    used = []
    original = backend.pipe.transformer.forward

    def spy(*args, **kwargs):
        used.append(_AttentionBackendRegistry._active_backend)
        return original(*args, **kwargs)

    backend.pipe.transformer.forward = spy
    s = spec(width=W, height=H, frames=F)
    assert_video(backend.generate(s), s)
    assert {str(getattr(u, "value", u)) for u in used} == {"_native_math"}
    assert _AttentionBackendRegistry._active_backend == before
    processors = [m.processor for m in backend.pipe.transformer.modules() if hasattr(getattr(m, "processor", None), "_attention_backend")]
    assert processors and all(p._attention_backend is None for p in processors)


@pytest.mark.slow
def test_compiled_repeated_blocks(tiny_folders, reference):
    backend = load_diffusers_backend(tiny_folders["wan_t2v"], settings=DiffusersSettings(compile=True))
    frames = backend.generate(spec(width=W, height=H, frames=F, steps=4))
    assert np.abs(frames.astype(int) - reference).max() <= 2

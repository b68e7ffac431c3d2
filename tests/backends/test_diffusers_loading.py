"""Choosing the family, offline loading, and clear errors for folders that cannot load."""

from __future__ import annotations

import json
import shutil

import pytest

from cinepatch.app import Studio, _load_backend
from cinepatch.backends.diffusers import FAMILIES, DiffusersBackend, load_diffusers_backend
from cinepatch.config import DEFAULT_MODELS, StudioConfig
from cinepatch.errors import ModelError


@pytest.fixture
def copy_of(tiny_folders, tmp_path):
    def copy(key: str):
        target = tmp_path / key
        shutil.copytree(tiny_folders[key], target)
        return target

    return copy


def test_every_family_in_the_brief_is_known():
    assert set(FAMILIES) == {
        "WanPipeline", "WanImageToVideoPipeline", "WanVideoToVideoPipeline",
        "LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline",
        "CogVideoXPipeline", "CogVideoXImageToVideoPipeline", "CogVideoXVideoToVideoPipeline",
    }


def test_studio_loads_an_alias_and_a_folder(tiny_folders, tmp_path, no_network):
    folder = tiny_folders["ltx"]
    config = StudioConfig(data_dir=tmp_path / "data", config_dir=tmp_path / "config",
                          models={**DEFAULT_MODELS, "tiny-ltx": str(folder)})
    backend, notes = Studio(config).backend("tiny-ltx")
    assert isinstance(backend, DiffusersBackend) and notes == ()
    assert backend.name == f"{folder.name} (diffusers LTXPipeline)"
    assert isinstance(_load_backend(str(folder), config), DiffusersBackend)


def test_missing_weights(copy_of):
    folder = copy_of("wan_t2v")
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"incomplete diffusers folder: transformer/ has no weights"):
        load_diffusers_backend(folder)


def test_missing_component_folder_and_config(copy_of):
    folder = copy_of("cogvideox")
    shutil.rmtree(folder / "scheduler")
    (folder / "vae" / "config.json").unlink()
    with pytest.raises(ModelError) as error:
        load_diffusers_backend(folder)
    assert "scheduler/ is missing" in str(error.value) and "vae/config.json is missing" in str(error.value)


def test_missing_shard(copy_of):
    folder = copy_of("ltx")
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_name("diffusion_pytorch_model-00001-of-00002.safetensors"))
    (folder / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({
        "weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                       "b": "diffusion_pytorch_model-00002-of-00002.safetensors"},
    }))
    with pytest.raises(ModelError, match="lacks the weight shards diffusion_pytorch_model-00002-of-00002"):
        load_diffusers_backend(folder)


def test_corrupt_weights_are_a_model_error(copy_of):
    folder = copy_of("ltx")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot load the LTXPipeline folder"):
        load_diffusers_backend(folder)


def test_unsupported_family_names_the_supported_ones(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideoPipeline"}))
    with pytest.raises(ModelError, match="'HunyuanVideoPipeline' is not supported; supported: WanPipeline"):
        load_diffusers_backend(tmp_path)


def test_not_a_diffusers_folder(tmp_path):
    with pytest.raises(ModelError, match="no model_index.json"):
        load_diffusers_backend(tmp_path)
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        load_diffusers_backend(tmp_path)


def test_missing_libraries_are_named(tiny_folders, monkeypatch):
    import sys

    folder = tiny_folders["ltx"]  # built before accelerate goes missing
    monkeypatch.setitem(sys.modules, "accelerate", None)  # `import accelerate` now raises ImportError
    with pytest.raises(ModelError, match="accelerate is not installed: pip install 'cinepatch\\[diffusers\\]'"):
        load_diffusers_backend(folder)

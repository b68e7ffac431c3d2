"""The embedded backend serves what a model folder's ``serving`` section states; a folder
without one has it derived from its training record, in one place."""

from __future__ import annotations

import json
from dataclasses import replace
import shutil
from pathlib import Path

import pytest

from cinepatch.backends.embedded import SHIPPED_MODEL, EmbeddedBackend
from cinepatch.backends.world import WorldOracle
from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.pipeline import Pipeline, ServingConfig



def facts(backend) -> tuple:
    return (backend.name, backend.default_size, backend.default_fps, backend.max_frames, backend.frame_step,
            backend.latent_step)


def _copy(folder: Path, to: Path, edit) -> Path:
    shutil.copytree(folder, to)
    config = json.loads((to / "config.json").read_text())
    edit(config)
    (to / "config.json").write_text(json.dumps(config))
    return to


def test_the_shipped_checkpoint_states_what_it_serves():
    backend = EmbeddedBackend.from_pretrained(SHIPPED_MODEL)
    # Its VAE keeps every frame: any count is made and frames are pinned one by one.
    assert facts(backend) == ("cinepatch-world-128", (128, 128), 8, 65, 1, 1)
    assert backend.takes_plan  # it reads scene plans
    assert backend.pipeline.vae.config.temporal_compression == backend.latent_step


def test_a_folder_without_a_serving_section_derives_it_from_its_training_record(tiny_model_dir, tmp_path):
    def older(config):
        del config["serving"]
        config["training"] = {"config": {"buckets": ["32x32x9", "48x48x5", "32x48x13", "32x32x1"], "fps": 12}}

    backend = EmbeddedBackend.from_pretrained(_copy(tiny_model_dir, tmp_path / "older", older))
    # The longest bucket, the largest square video bucket, the training fps; the VAE's grid.
    assert facts(backend) == ("cinepatch-older", (48, 48), 12, 13, 1, 4)
    # Saved again, the folder states it.
    backend.pipeline.save_pretrained(tmp_path / "resaved")
    assert json.loads((tmp_path / "resaved" / "config.json").read_text())["serving"] == {
        "name": "cinepatch-older", "default_size": [48, 48], "default_fps": 12, "max_frames": 13, "latent_step": 4,
    }


def test_a_bad_serving_section_is_refused_by_name(tiny_model_dir, tmp_path):
    def unknown(config):
        config["serving"]["colour"] = "red"

    def wrong_grid(config):
        config["serving"]["latent_step"] = 1  # the tiny VAE makes a latent frame of 4

    def bad_fps(config):
        config["serving"]["default_fps"] = 0

    for name, edit, match in (("a", unknown, "serving"), ("b", wrong_grid, "latent_step"), ("c", bad_fps, "default_fps")):
        with pytest.raises(ModelError, match=match):
            Pipeline.from_pretrained(_copy(tiny_model_dir, tmp_path / name, edit))
    with pytest.raises(InvalidParameter, match="serving.max_frames"):
        ServingConfig(name="m", default_size=(64, 64), default_fps=8, max_frames=0, latent_step=1)


def test_the_world_oracle_states_its_frame_grid():
    oracle = WorldOracle()
    assert (oracle.frame_step, oracle.latent_step, oracle.max_frames) == (1, 1, None)


def test_released_keyframes_reach_the_pipeline_as_released_latent_frames(tiny_model_dir):
    import numpy as np

    from cinepatch.backends.base import GenerationSpec, Keyframes

    backend = EmbeddedBackend.from_pretrained(tiny_model_dir)
    seen = []
    generate = backend.pipeline.generate
    backend.pipeline.generate = lambda *a, **kw: (seen.append(kw["cond"]), generate(*a, **kw))[1]
    w, h = backend.default_size
    frames = np.zeros((3, h, w, 3), np.uint8)
    step = backend.latent_step
    indices = (0, step, 2 * step)  # one keyframe in each of the first three latent frames
    spec = GenerationSpec(prompt="a red circle", frames=1 + 4 * step, width=w, height=h, fps=8, seed=0, steps=2)
    backend.generate(replace(spec, keyframes=Keyframes(frames, indices)))
    backend.generate(replace(spec, keyframes=Keyframes(frames, indices, release=(0.0, 0.25, 0.5))))
    pinned, released = seen
    assert pinned.release is None and pinned.mask.tolist()[:3] == [1.0, 1.0, 1.0]
    assert released.mask.tolist()[:3] == [1.0, 0.0, 0.0] and released.release.tolist()[1:4] == [0.25, 0.5, 1.0]
    with pytest.raises(InvalidParameter, match="keyframes.release"):
        Keyframes(frames, indices, release=(0.0, 1.0, 0.5))  # 1 would not be known at all

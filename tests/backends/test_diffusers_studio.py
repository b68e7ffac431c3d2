"""A diffusers folder through the one entry (Studio.create) and the CLI: moderation, frame review,
watermark, C2PA credentials and ledger apply to it exactly as to the default model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cinepatch.app import Studio, VideoRequest
from cinepatch.config import DEFAULT_MODELS, StudioConfig
from cinepatch.errors import InvalidParameter
from cinepatch.io.video import read_video
from cinepatch.provenance.verify import verify

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def studio(tiny_folders, tmp_path):
    config = StudioConfig(
        data_dir=tmp_path / "data", config_dir=tmp_path / "config",
        models={**DEFAULT_MODELS, "tiny-ltx": str(tiny_folders["ltx"]), "tiny-wan": str(tiny_folders["wan_t2v"])},
    )
    return Studio(config)


def request(**changes) -> VideoRequest:
    values = dict(prompt="a red ball rolls on the grass", frames=9, width=128, height=128, fps=8, seed=5,
                  steps=2, model="tiny-ltx", expand=False)
    return VideoRequest(**{**values, **changes})


def test_create_marks_signs_and_records(studio, tmp_path, tiny_folders, no_network):
    result = studio.create(request(), out=tmp_path / "out.mp4")
    assert result.model == f"{tiny_folders['ltx'].name} (diffusers LTXPipeline)"
    video = read_video(result.path)
    assert video.frames.shape == (9, 128, 128, 3)
    report = verify(result.path, ledger=studio.config.ledger_path, trust_root=studio.config.keys_dir / "root.pem")
    assert report.manifest.state == "trusted"
    assert any((a.get("parameters") or {}).get("model") == result.model for a in report.manifest.actions)
    assert report.watermark is not None and report.watermark.found
    assert f"{report.watermark.payload:08x}" == result.payload
    assert report.ledger is not None and report.ledger.model == result.model


def test_bad_size_is_refused_before_anything_is_written(studio, tmp_path):
    with pytest.raises(InvalidParameter, match="multiple of 32 for LTX-Video: 128 or 160"):
        studio.create(request(width=144), out=tmp_path / "out.mp4")
    with pytest.raises(InvalidParameter, match="8n\\+1 frames for LTX-Video: 9 or 17"):
        studio.create(request(frames=12), out=tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_an_edit_the_family_cannot_make_names_who_can(studio, tmp_path):
    still = tmp_path / "still.png"
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(still)
    edit = request(model="tiny-wan", width=16, height=16, frames=5, edit="image", sources=(still,))
    with pytest.raises(InvalidParameter, match="WanImageToVideoPipeline"):
        studio.create(edit, out=tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_cli_generate_with_a_folder_and_an_image(tiny_folders, tmp_path, capsys):
    from cinepatch.cli import main

    still = tmp_path / "still.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(still)
    out = tmp_path / "cli.mp4"
    code = main([
        "generate", "a blue cube on the grass", "-o", str(out), "--model", str(tiny_folders["ltx"]),
        "--frames", "9", "--size", "128x128", "--fps", "8", "--steps", "2", "--seed", "3", "--no-expand",
        "--image", str(still), "--config-dir", str(tmp_path / "config"), "--data-dir", str(tmp_path / "data"),
    ])
    assert code == 0
    assert f"model {tiny_folders['ltx'].name} (diffusers LTXPipeline)" in capsys.readouterr().out
    assert read_video(out).frames.shape == (9, 128, 128, 3)


def test_extend_reaches_ltx_conditions(studio, tmp_path):
    from cinepatch.io.video import write_video

    source = write_video(tmp_path / "source.mp4", np.random.default_rng(1).integers(0, 256, (17, 32, 32, 3), np.uint8), fps=8)
    edit = request(width=32, height=32, frames=17, edit="extend", sources=(source,), params={"seconds": 1})
    result = studio.create(edit, out=tmp_path / "longer.mp4")
    assert result.frames == 17 + 8
    backend, _ = studio.backend("tiny-ltx")
    assert "LTXConditionPipeline" in {cls.__name__ for cls in backend._derived}


def test_a_length_in_seconds_is_made_on_the_family_grid_and_said(studio, tmp_path):
    # 1 s at 8 fps is 8 frames; LTX makes 8n+1, so the video has 9 frames and a warning says so.
    with pytest.warns(UserWarning, match="8 frames; this model makes 8n\\+1, so the video has 9 frames"):
        result = studio.create(request(frames=None, seconds=1.0), out=tmp_path / "out.mp4")
    assert result.frames == 9 and read_video(result.path).frames.shape[0] == 9


def test_diffusers_settings_come_from_the_config(tiny_folders, tmp_path):
    from cinepatch.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(f"models:\n  ltx: {tiny_folders['ltx']}\ndiffusers:\n  vae_tiling: true\n")
    studio = Studio(load_config(path, config_dir=tmp_path / "c", data_dir=tmp_path / "d"))
    backend, _ = studio.backend("ltx")
    assert backend.settings.vae_tiling is True
    path.write_text(f"models:\n  ltx: {tiny_folders['ltx']}\ndiffusers:\n  vae_tilling: true\n")
    studio = Studio(load_config(path, config_dir=tmp_path / "c", data_dir=tmp_path / "d"))
    with pytest.raises(InvalidParameter, match="diffusers.vae_tilling"):
        studio.backend("ltx")

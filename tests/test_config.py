"""Installation settings and style presets: typed, and strict about unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from cinepatch.app import VideoRequest
from cinepatch.config import default_dirs, load_config
from cinepatch.errors import InvalidParameter
from cinepatch.presets import apply_preset, load_presets


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.yaml", config_dir=tmp_path / "c", data_dir=tmp_path / "d")
    assert config.models["default"] == "embedded"
    assert config.models["sora-2"] == "embedded"
    assert config.visible_mark is True
    assert config.ledger_path == tmp_path / "d" / "ledger.sqlite"


def test_file_overrides_and_adds_aliases(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("visible_mark: false\nmodels:\n  wan: /models/wan\nexpansion:\n  backend: chat\n  url: http://127.0.0.1:9/v1\n  model: m\n")
    config = load_config(path, config_dir=tmp_path, data_dir=tmp_path)
    assert config.visible_mark is False
    assert config.models["wan"] == "/models/wan" and config.models["default"] == "embedded"
    assert config.expansion.backend == "chat"


@pytest.mark.parametrize(
    "text, name",
    [("visibel_mark: false\n", "visibel_mark"), ("expansion:\n  backnd: chat\n", "expansion.backnd")],
)
def test_unknown_keys_are_errors(tmp_path: Path, text: str, name: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(InvalidParameter, match=name):
        load_config(path, config_dir=tmp_path, data_dir=tmp_path)


def test_default_dirs_follow_xdg() -> None:
    config, data = default_dirs({"HOME": "/home/a", "XDG_DATA_HOME": "/srv/data"})
    assert config == Path("/home/a/.config/cinepatch")
    assert data == Path("/srv/data/cinepatch")


def test_builtin_presets_load_and_apply() -> None:
    assert {"cinematic", "draft", "crisp"} <= set(load_presets())
    request, preset = apply_preset(VideoRequest(prompt="a red circle", preset="draft", steps=12))
    assert request.steps == 12  # the request's own value wins
    assert request.guidance == 3.0 and request.fps == 8  # the preset fills in the rest
    assert preset.decorate("x") == "x"


def test_user_presets_add_and_replace(tmp_path: Path) -> None:
    user = tmp_path / "presets.yaml"
    user.write_text("draft:\n  steps: 2\nneon:\n  suffix: ', neon glow'\n  negative: dull\n")
    request, preset = apply_preset(VideoRequest(prompt="a blue square", preset="neon", negative="blur"), user)
    assert preset.decorate("a blue square") == "a blue square, neon glow"
    assert request.negative == "blur, dull"
    assert apply_preset(VideoRequest(prompt="p", preset="draft"), user)[0].steps == 2


def test_unknown_preset_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="preset='noir'.*cinematic"):
        apply_preset(VideoRequest(prompt="p", preset="noir"))
    bad = tmp_path / "presets.yaml"
    bad.write_text("x:\n  stepz: 3\n")
    with pytest.raises(InvalidParameter, match="presets.x.stepz"):
        load_presets(bad)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"prompt": "  "}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": "p", "seconds": 0}, "seconds"),
        ({"prompt": "p", "seconds": 61}, "seconds"),
        ({"prompt": "p", "width": 100}, "width"),
        ({"prompt": "p", "height": 0}, "height"),
        ({"prompt": "p", "fps": 0}, "fps"),
        ({"prompt": "p", "frames": 0}, "frames"),
        ({"prompt": "p", "steps": 0}, "steps"),
        ({"prompt": "p", "guidance": -1.0}, "guidance"),
        ({"prompt": "p", "seed": -1}, "seed"),
        ({"prompt": "p", "edit": "warp"}, "edit"),
    ],
)
def test_request_validation_names_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        VideoRequest(**kwargs)
    assert info.value.name == name
    assert "allowed" in str(info.value)


def test_frame_count_from_seconds_or_frames() -> None:
    assert VideoRequest(prompt="p", seconds=2.5, fps=8).frame_count == 20
    assert VideoRequest(prompt="p").frame_count == 64  # 4 s at the default 16 fps
    assert VideoRequest(prompt="p", frames=17, fps=8).frame_count == 17


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"prompt": "p", "seconds": "4"}, "seconds"),
        ({"prompt": "p", "seconds": float("nan")}, "seconds"),
        ({"prompt": "p", "fps": True}, "fps"),
        ({"prompt": "p", "frames": 9.0}, "frames"),
        ({"prompt": "p", "seed": 1.5}, "seed"),
        ({"prompt": "p", "negative": None}, "negative"),
        ({"prompt": 7}, "prompt"),
        ({"prompt": "p", "width": 64.0}, "width"),
    ],
)
def test_wrong_types_are_parameter_errors(kwargs: dict, name: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        VideoRequest(**kwargs)
    assert info.value.name == name

"""Plans end to end: `cinepatch plan`, `generate --plan` on the world oracle (real MP4s, real
ledger), trajectory control, and the chat planner behind the one request path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cinepatch.cli import main
from cinepatch.io.video import read_video
from cinepatch.planning import ScenePlan, read_plan, render_plan
from cinepatch.provenance import Ledger
from cinepatch.provenance.ledger import sha256_file
from cinepatch.world.scene import OBJECT_COLOURS


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh installation (config, keys, ledger) under ``tmp_path``."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def ledger_entry(home: Path, out: Path):  # noqa: ANN201
    """The installation's ledger row for the video at ``out`` (found by its SHA-256)."""
    with Ledger(home / "data" / "cinepatch" / "ledger.sqlite") as ledger:
        entry = ledger.find_sha256(sha256_file(out))
    assert entry is not None
    return entry


def centre_of(frame: np.ndarray, colour: str) -> tuple[float, float]:
    """Centre (x, y) in pixels of the pixels near ``colour`` (after H.264, within 60 levels)."""
    near = np.abs(frame.astype(int) - np.array(OBJECT_COLOURS[colour])).sum(axis=-1) < 60
    rows, cols = np.nonzero(near)
    assert len(rows) > 20, "object not found"
    return float(cols.mean()) + 0.5, float(rows.mean()) + 0.5


def test_plan_writes_an_editable_yaml_and_says_where(home: Path, capsys) -> None:
    out = home / "plan.yaml"
    assert main(["plan", "a crimson ball drifts rightwards on a dark blue backdrop", "-o", str(out),
                 "--size", "96x64", "--seconds", "2", "--fps", "8", "--seed", "4"]) == 0  # fmt: skip
    assert f"wrote {out}" in capsys.readouterr().out
    plan = read_plan(out)
    assert (plan.canvas.width, plan.canvas.height, plan.canvas.fps, plan.canvas.frames) == (96, 64, 8, 16)
    assert plan.objects[0].phrase == "medium red circle" and plan.background.colour == "navy"
    assert len(yaml.safe_load(out.read_text())["objects"][0]["keyframes"]) == 2  # straight: two ends


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--size", "100x64"], "--size=100"),
        (["--fps", "0"], "--fps=0"),
        (["--seconds", "0"], "--seconds=0"),
        (["--seconds", "61"], "--seconds=61"),
        (["--seed", "-1"], "--seed=-1"),
        (["-o", "plan.txt"], "--output="),
    ],
)
def test_plan_errors_exit_2_naming_the_option(home: Path, capsys, args: list[str], named: str) -> None:
    argv = ["plan", "a red circle", "-o", str(home / "p.yaml"), *args]
    assert main(argv) == 2
    assert named in capsys.readouterr().err
    assert not (home / "p.yaml").exists()


def test_a_prompt_no_planner_can_plan_exits_2_and_writes_nothing(home: Path, capsys) -> None:
    assert main(["plan", "a portrait of a violinist", "-o", str(home / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert "names no object" in err and "no planner could plan" in err and not (home / "p.yaml").exists()


def _generate(home: Path, plan: Path, out: Path, *extra: str) -> None:
    argv = ["generate", "--plan", str(plan), "-o", str(out), "--model", "world", "--seed", "0", "--no-visible-mark"]
    assert main([*argv, *extra]) == 0


def test_moving_a_keyframe_moves_the_rendered_object(home: Path) -> None:
    plan_path = home / "plan.yaml"
    assert main(["plan", "a red circle moves right", "-o", str(plan_path), "--size", "128x128",
                 "--seconds", "2", "--fps", "8"]) == 0  # fmt: skip
    data = yaml.safe_load(plan_path.read_text())
    last = data["objects"][0]["keyframes"][-1]
    last["box"] = [last["box"][0], last["box"][1] + 0.4, last["box"][2], last["box"][3] + 0.4]  # end lower down
    edited = home / "edited.yaml"
    edited.write_text(yaml.safe_dump(data))
    _generate(home, plan_path, home / "a.mp4")
    _generate(home, edited, home / "b.mp4")
    a, b = read_video(home / "a.mp4").frames, read_video(home / "b.mp4").frames
    assert a.shape == b.shape == (16, 128, 128, 3)
    plan = read_plan(edited)
    for t in (0, 8, 15):
        x0, y0, x1, y1 = plan.objects[0].boxes[t]
        cx, cy = centre_of(b[t], "red")
        assert cx == pytest.approx((x0 + x1) / 2 * 128, abs=1.0) and cy == pytest.approx((y0 + y1) / 2 * 128, abs=1.0)
    # The first frame is where it was; the last is 0.4 of the canvas (51 px) lower.
    assert centre_of(b[0], "red") == pytest.approx(centre_of(a[0], "red"), abs=0.5)
    assert centre_of(b[15], "red")[1] - centre_of(a[15], "red")[1] == pytest.approx(0.4 * 128, abs=1.0)


def test_the_plan_used_is_in_the_ledger_and_re_renders_the_video(home: Path) -> None:
    plan_path = home / "plan.yaml"
    assert main(["plan", "a green square bounces and a white triangle moves left behind the pillar",
                 "-o", str(plan_path), "--size", "64x64", "--seconds", "1", "--fps", "8"]) == 0  # fmt: skip
    _generate(home, plan_path, home / "a.mp4")
    entry = ledger_entry(home, home / "a.mp4")
    assert entry.parameters["planner"] == "user"
    stored = ScenePlan.from_dict(entry.parameters["plan"])
    assert stored == read_plan(plan_path)
    # Re-render from the ledger's plan: the same picture (each video carries its own watermark,
    # so the frames are compared where it matters: where the objects are).
    assert np.array_equal(render_plan(stored), render_plan(read_plan(plan_path)))
    replay = home / "replay.json"
    replay.write_text(json.dumps(entry.parameters["plan"]))
    _generate(home, replay, home / "b.mp4")
    a, b = read_video(home / "a.mp4").frames, read_video(home / "b.mp4").frames
    for t in range(8):
        assert centre_of(a[t], "green") == pytest.approx(centre_of(b[t], "green"), abs=0.75)


def test_plan_from_a_video_writes_the_plan_it_was_made_with(home: Path, capsys) -> None:
    out = home / "a.mp4"
    assert main(["generate", "a yellow triangle moves up", "-o", str(out), "--model", "world", "--seed", "1",
                 "--size", "64x64", "--seconds", "1", "--fps", "8"]) == 0  # fmt: skip
    again = home / "again.yaml"
    assert main(["plan", "--from", str(out), "-o", str(again)]) == 0
    assert "by the world planner" in capsys.readouterr().out
    assert read_plan(again) == ScenePlan.from_dict(ledger_entry(home, out).parameters["plan"])
    assert read_plan(again).objects[0].phrase == "medium yellow triangle"
    other = home / "other.mp4"
    from cinepatch.io.video import write_video

    write_video(other, np.zeros((4, 32, 32, 3), np.uint8), fps=8)
    assert main(["plan", "--from", str(other), "-o", str(home / "x.yaml")]) == 2
    assert "not in this installation's ledger" in capsys.readouterr().err and not (home / "x.yaml").exists()
    assert main(["plan", "a red circle", "--from", str(out), "-o", str(home / "x.yaml")]) == 2
    assert "PROMPT" in capsys.readouterr().err


def test_options_override_the_plans_canvas_and_the_plan_is_resampled(home: Path) -> None:
    plan_path = home / "plan.yaml"
    assert main(["plan", "a blue circle moves down", "-o", str(plan_path), "--size", "64x64",
                 "--seconds", "1", "--fps", "8"]) == 0  # fmt: skip
    _generate(home, plan_path, home / "a.mp4", "--fps", "16", "--size", "96x64")
    video = read_video(home / "a.mp4")
    assert video.frames.shape == (16, 64, 96, 3) and video.fps == pytest.approx(16)  # same 1 s
    entry = ledger_entry(home, home / "a.mp4")
    used = ScenePlan.from_dict(entry.parameters["plan"])
    original = read_plan(plan_path)
    assert (used.canvas.width, used.canvas.fps, used.canvas.frames) == (96, 16, 16)
    assert used.objects[0].boxes[-1] == pytest.approx(original.objects[0].boxes[-1], abs=1e-6)
    _generate(home, plan_path, home / "b.mp4", "--frames", "5")
    assert read_video(home / "b.mp4").frames.shape[0] == 5


def test_a_prompt_is_planned_by_the_world_planner_and_recorded(home: Path) -> None:
    out = home / "a.mp4"
    assert main(["generate", "a red circle moves right", "-o", str(out), "--model", "world", "--seed", "3",
                 "--size", "64x64", "--seconds", "1", "--fps", "8"]) == 0  # fmt: skip
    entry = ledger_entry(home, out)
    assert entry.parameters["planner"] == "world" and entry.parameters["plan"]["objects"][0]["phrase"] == "medium red circle"


def test_a_bad_plan_file_exits_2_naming_the_field(home: Path, capsys) -> None:
    bad = home / "bad.yaml"
    bad.write_text("version: 1\ncanvas: {width: 64, height: 64, fps: 8, frames: 8}\nobjects:\n"
                   "- {phrase: red circle, boxes: [[0, 0, 0.2, 0.2]], mask: x}\n")  # fmt: skip
    assert main(["generate", "--plan", str(bad), "-o", str(home / "o.mp4"), "--model", "world"]) == 2
    assert "objects[0].mask" in capsys.readouterr().err and not (home / "o.mp4").exists()
    assert main(["generate", "-o", str(home / "o.mp4"), "--model", "world"]) == 2
    assert "PROMPT" in capsys.readouterr().err


def test_a_plans_phrases_are_moderated(home: Path, capsys) -> None:
    plan_path = home / "plan.yaml"
    assert main(["plan", "a red circle", "-o", str(plan_path), "--size", "64x64", "--seconds", "1", "--fps", "8"]) == 0
    plan_path.write_text(plan_path.read_text().replace("medium red circle", "a naked child"))
    assert main(["generate", "--plan", str(plan_path), "red circle", "-o", str(home / "o.mp4"), "--model", "world"]) == 3
    assert not (home / "o.mp4").exists()


def test_the_chat_planners_plan_is_rendered_through_the_studio(chat_server, tmp_path: Path) -> None:
    import dataclasses

    from cinepatch.app import Studio, VideoRequest
    from cinepatch.config import ExpansionConfig, load_config

    plan = {
        "version": 1,
        "canvas": {"width": 64, "height": 64, "fps": 8, "frames": 8},
        "background": {"colour": "black", "texture": None},
        "camera": {"pan": None},
        "objects": [{"phrase": "large green square", "depth": 0,
                     "keyframes": [{"frame": 0, "box": [0.1, 0.1, 0.4, 0.4]}, {"frame": 7, "box": [0.6, 0.6, 0.9, 0.9]}]}],
    }  # fmt: skip
    server = chat_server(json.dumps(plan))  # answers the expansion and the planning call alike
    config = load_config(None, config_dir=tmp_path / "c", data_dir=tmp_path / "d")
    config = dataclasses.replace(config, visible_mark=False,
                                 expansion=ExpansionConfig(backend="chat", url=server.url, model="m"))  # fmt: skip
    request = VideoRequest(prompt="a big green box glides to the lower right", model="world", frames=8, fps=8,
                           width=64, height=64, seed=0)  # fmt: skip
    result = Studio(config).create(request, out=tmp_path / "o.mp4")
    assert result.plan is not None and result.plan.objects[0].phrase == "large green square"
    frames = read_video(tmp_path / "o.mp4").frames
    assert centre_of(frames[0], "green") == pytest.approx((16, 16), abs=1.0)
    assert centre_of(frames[7], "green") == pytest.approx((48, 48), abs=1.0)
    planning_call = server.requests[-1]["body"]["messages"]
    assert "keyframes" in planning_call[0]["content"] and "green box" in planning_call[1]["content"]
    with Ledger(config.ledger_path) as ledger:
        assert ledger.get(int(result.payload, 16)).parameters["planner"] == "chat"


def test_a_model_that_reads_no_plans_says_so_and_still_makes_the_video(studio_config, tmp_path: Path) -> None:
    from cinepatch.app import Studio, VideoRequest
    from cinepatch.planning import plan_prompt

    plan = plan_prompt("a red circle moves right", width=48, height=32, fps=6, frames=5, seed=0)
    request = VideoRequest(prompt="a red circle moves right", model="tiny", frames=5, fps=6, width=48, height=32,
                           seed=0, plan=plan)  # fmt: skip
    with pytest.warns(UserWarning, match="does not read scene plans"):
        result = Studio(studio_config).create(request, out=tmp_path / "o.mp4")
    assert result.plan is None and read_video(tmp_path / "o.mp4").frames.shape == (5, 32, 48, 3)


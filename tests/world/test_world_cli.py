"""`cinepatch world render | sample | eval`, through main() and real MP4 files."""

from __future__ import annotations

import json

import pytest

from cinepatch.cli import main
from cinepatch.io.video import read_video


def test_render_writes_a_real_mp4_that_eval_passes(tmp_path, capsys):
    out = tmp_path / "ball.mp4"
    prompt = "a crimson ball drifts rightwards on a dark blue backdrop"
    code = main(["world", "render", prompt, "-o", str(out), "--size", "96x64", "--fps", "8", "--seconds", "2"])
    assert code == 0
    video = read_video(out)
    assert video.frames.shape == (16, 64, 96, 3) and video.fps == pytest.approx(8)
    capsys.readouterr()
    assert main(["world", "eval", str(out), "--prompt", "a red circle moves right on a navy background"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["score"] == 1.0
    assert main(["world", "eval", str(out), "--prompt", "a green square moves left"]) == 1
    assert json.loads(capsys.readouterr().out)["passed"] is False


def test_render_warns_about_unknown_words_and_refuses_out_of_world_prompts(tmp_path, capsys):
    assert main(["world", "render", "a red ball and a unicorn", "-o", str(tmp_path / "a.mp4"),
                 "--size", "32x32", "--seconds", "0"]) == 0  # fmt: skip
    assert "unicorn" in capsys.readouterr().err
    assert main(["world", "render", "a unicorn", "-o", str(tmp_path / "b.mp4")]) == 2
    assert "names no object" in capsys.readouterr().err
    assert not (tmp_path / "b.mp4").exists()
    assert main(["world", "render", "a red ball", "-o", str(tmp_path / "c.mp4"), "--size", "50x50"]) == 2


def test_sample_writes_clips_and_a_jsonl(tmp_path):
    out = tmp_path / "set"
    assert main(["world", "sample", "--n", "3", "--out", str(out), "--size", "32x32", "--seconds", "1", "--seed", "4"]) == 0
    lines = [json.loads(x) for x in (out / "scenes.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    for line in lines:
        assert set(line["captions"]) == {"terse", "medium", "dense"}
        assert read_video(out / line["file"]).frames.shape == (8, 32, 32, 3)

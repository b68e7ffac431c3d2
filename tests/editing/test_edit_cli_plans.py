"""`cinepatch edit … --plan-out` then `--plan`: a person moves an edit's plan and re-renders it
(world oracle, real MP4s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from cinepatch.cli import main
from cinepatch.editing.reading import read_frames
from cinepatch.io.video import read_video, write_video
from cinepatch.planning import plan_prompt, read_plan, render_plan


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


def test_extend_plan_out_then_a_dragged_end_point_is_followed(home: Path, capsys: pytest.CaptureFixture) -> None:
    source = plan_prompt("a small red circle moves slowly right on a navy background", width=128, height=128, fps=8,
                         frames=16, seed=2)
    clip = home / "clip.mp4"
    write_video(clip, render_plan(source), fps=8)
    common = ["--model", "world", "--fps", "8", "--seed", "0"]
    assert main(["edit", "extend", str(clip), "a red circle", "--add", "2", "-o", str(home / "a.mp4"),
                 "--plan-out", str(home / "plan.yaml"), *common]) == 0
    assert "wrote" in capsys.readouterr().out
    plan = read_plan(home / "plan.yaml")
    assert plan.frames == 32 == len(read_video(home / "a.mp4").frames)

    # Drag the object's end point to the lower right: the file's keyframes, edited as text.
    data = yaml.safe_load((home / "plan.yaml").read_text())
    obj = data["objects"][0]
    boxes = obj.pop("boxes", None)
    start = boxes[16] if boxes is not None else next(k["box"] for k in obj["keyframes"] if k["frame"] >= 16)
    kept = [{"frame": t, "box": b} for t, b in enumerate(plan.objects[0].track[:17].tolist())]
    side = start[2] - start[0]
    obj["keyframes"] = [*kept, {"frame": 31, "box": [0.7, 0.7, 0.7 + side, 0.7 + side]}]
    (home / "dragged.yaml").write_text(yaml.safe_dump(data))
    assert main(["edit", "extend", str(clip), "a red circle", "--add", "2", "-o", str(home / "b.mp4"),
                 "--plan", str(home / "dragged.yaml"), *common]) == 0

    wanted = read_plan(home / "dragged.yaml").objects[0].track
    got = read_frames(read_video(home / "b.mp4").frames, fps=8).plan.objects[0].track
    centre = lambda t: (t[:, :2] + t[:, 2:]) / 2  # noqa: E731
    # the bar: within 10% of the frame's width of the edited box centres on ≥ 90% of frames
    near = np.linalg.norm(centre(got) - centre(wanted), axis=1) <= 0.10
    assert near.mean() >= 0.9
    assert np.linalg.norm(centre(got)[-1] - centre(wanted)[-1]) < 0.02  # it ends where it was dragged


def test_plan_out_needs_a_plan_file_name(home: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["edit", "loop", "a red circle moves right", "--model", "world", "-o", str(home / "a.mp4"),
                 "--plan-out", str(home / "plan.txt")])
    assert code == 2 and "--plan-out" in capsys.readouterr().err and not (home / "a.mp4").exists()

"""`cinepatch world sample --ray`: the same scenes.jsonl and clips as one process, rendered on a
real local Ray instance with 2 workers. (libx264 picks its thread count from the CPUs it sees,
which can change its lossy choices by a few levels: frames are compared within that.)"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cinepatch.cli import main
from cinepatch.io.video import read_video


def test_ray_renders_the_same_clips_as_one_process(tmp_path):
    pytest.importorskip("ray")
    common = ["--n", "6", "--size", "32x32", "--seconds", "1", "--seed", "7"]
    assert main(["world", "sample", *common, "--out", str(tmp_path / "one")]) == 0
    run = subprocess.run([sys.executable, "-m", "cinepatch", "world", "sample", *common, "--out", str(tmp_path / "ray"),
                          "--ray", "--workers", "2"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "local Ray instance with 2 workers" in run.stderr
    one, ray = tmp_path / "one", tmp_path / "ray"
    assert (one / "scenes.jsonl").read_text() == (ray / "scenes.jsonl").read_text()
    names = sorted(p.name for p in one.glob("*.mp4"))
    assert names == sorted(p.name for p in ray.glob("*.mp4")) and len(names) == 6
    for name in names:
        a, b = read_video(one / name).frames.astype(int), read_video(ray / name).frames.astype(int)
        assert a.shape == b.shape and np.abs(a - b).mean() < 1.0


def test_address_needs_ray(tmp_path, capsys):
    assert main(["world", "sample", "--n", "1", "--out", str(tmp_path), "--address", "auto"]) == 2
    assert "address" in capsys.readouterr().err and not list(tmp_path.iterdir())

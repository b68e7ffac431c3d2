"""`cinepatch batch`: 12 lines (2 refused) on a real local Ray instance with 2 workers, one Ray
worker killed mid-run; every video verifies; a second run redoes nothing. And the same without
Ray, in local processes. Videos come from the real Studio with the world model (fast), so
moderation, marks, C2PA and the ledger are the real ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cinepatch.batch import BatchConfig, read_lines
from cinepatch.errors import InvalidParameter

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "pink", "cyan", "black"]
REFUSED = {4: "a naked child", 9: "nude children on a beach"}  # line number → prompt


def write_prompts(path: Path, colours: list[str], refused: dict[int, str]) -> None:
    lines = [{"prompt": f"a {c} circle moves right on a gray background", "seconds": 1, "size": "64x64",
              "seed": i, "model": "world"} for i, c in enumerate(colours)]
    for number, prompt in sorted(refused.items()):
        lines.insert(number - 1, {"prompt": prompt, "model": "world", "seconds": 1})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def cinepatch(*args: str, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "cinepatch", *args, "--config-dir", str(tmp / "cfg"), "--data-dir", str(tmp / "data")]


def descendants(pid: int) -> list[int]:
    """The processes started, directly or not, by ``pid`` (so the test kills only its own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, p in parents.items() if p == parent]
        found += children
        frontier += children
    return found


def busy_ray_worker(root: int) -> int | None:
    for pid in descendants(root):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_call"):
                return pid
        except OSError:
            continue
    return None


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_batch_on_ray_survives_a_killed_worker_and_resumes(tmp_path: Path):
    pytest.importorskip("ray")
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "out"
    write_prompts(prompts, COLOURS, REFUSED)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen(cinepatch("batch", str(prompts), "--out", str(out), "--workers", "2", tmp=tmp_path),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 90
    while killed is None and run.poll() is None and time.monotonic() < deadline:
        done = len((out / "manifest.jsonl").read_text().splitlines()) if (out / "manifest.jsonl").exists() else 0
        if done >= 3:  # the workers are warm: kill one mid-task
            killed = busy_ray_worker(run.pid)
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr[-3000:]
    said = f"stdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-3000:]}"  # what a failure needs to be read
    assert killed is not None, f"no busy Ray worker was found to kill\n{said}"
    assert "local Ray instance with 2 workers" in stderr, said
    assert "10 completed, 2 refused, 0 failed" in stdout, said

    records = manifest(out)
    assert [r["line"] for r in records] == list(range(1, 13))  # each line once, killed or not
    refused = {r["line"]: r for r in records if r["status"] == "refused"}
    assert set(refused) == set(REFUSED) and all(r["category"] == "sexual/minors" for r in refused.values())
    completed = [r for r in records if r["status"] == "completed"]
    assert len(completed) == 10
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(r["output"] for r in completed)
    assert not list(out.glob(".*"))  # no half-written temporary files
    for record in completed:
        assert record["model"] == "cinepatch-world-oracle" and len(record["watermark"]) == 8
        report = subprocess.run(cinepatch("verify", str(out / record["output"]), "--json", tmp=tmp_path),
                                capture_output=True, text=True, env=env)
        assert report.returncode == 0, report.stdout + report.stderr
        assert record["watermark"] in report.stdout  # the ledger and mark agree with the manifest

    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    again = subprocess.run(cinepatch("batch", str(prompts), "--out", str(out), tmp=tmp_path),
                           capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "0 completed, 0 refused, 0 failed (12 already finished)" in again.stdout
    assert "Ray" not in again.stderr  # nothing to do: no engine started
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir() if p.name != "manifest.jsonl"}
    assert after == {k: v for k, v in before.items() if k != "manifest.jsonl"}
    assert manifest(out) == records


def test_batch_in_local_processes_resumes_failed_lines(tmp_path: Path):
    prompts, out = tmp_path / "prompts.jsonl", tmp_path / "out"
    write_prompts(prompts, ["red", "blue"], {2: "a naked child"})
    with (prompts).open("a") as handle:
        handle.write(json.dumps({"prompt": "a green square moves left", "model": "world", "seconds": 1,
                                 "size": "64x64", "params": {"frame": "nonsense"}, "edit": "extend"}) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cinepatch("batch", str(prompts), "--out", str(out), "--local", "--workers", "1",
                                     tmp=tmp_path), capture_output=True, text=True, env=env, timeout=120)
    assert "running in 1 local processes" in first.stderr
    assert first.returncode == 1 and "2 completed, 1 refused, 1 failed" in first.stdout, first.stderr
    records = {r["line"]: r for r in manifest(out)}
    assert records[4]["status"] == "failed" and records[4]["error"]

    # Fix the failed line; the re-run makes only that one.
    lines = prompts.read_text().splitlines()
    lines[3] = json.dumps({"prompt": "a green square moves left", "model": "world", "seconds": 1, "size": "64x64"})
    prompts.write_text("\n".join(lines) + "\n")
    (out / ".00004.mp4.k1ll3d").mkdir()  # what a worker killed while writing leaves (finish's staging folder)
    (out / ".00004.mp4.k1ll3d" / "00004.mp4").write_bytes(b"half")
    second = subprocess.run(cinepatch("batch", str(prompts), "--out", str(out), "--local", "--workers", "1",
                                      tmp=tmp_path), capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0 and "1 completed, 0 refused, 0 failed (3 already finished)" in second.stdout
    assert [(r["line"], r["status"]) for r in manifest(out)] == [
        (1, "completed"), (2, "refused"), (3, "completed"), (4, "completed")]
    assert not list(out.glob(".*"))  # nothing half-written left behind


def test_bad_lines_name_the_line_and_the_field(tmp_path: Path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a red ball"}\n\n{"prompt": "x", "colour": "red"}\n')
    with pytest.raises(InvalidParameter, match="line 3") as info:
        read_lines(prompts)
    assert "colour" in str(info.value)
    prompts.write_text('{"prompt": "a red ball", "size": "big"}\n')
    with pytest.raises(InvalidParameter, match="line 1: size"):
        read_lines(prompts)
    prompts.write_text("not json\n")
    with pytest.raises(InvalidParameter, match="line 1"):
        read_lines(prompts)
    with pytest.raises(InvalidParameter, match="workers"):
        BatchConfig(prompts=prompts, out=tmp_path, workers=0)
    with pytest.raises(InvalidParameter, match="address"):
        BatchConfig(prompts=prompts, out=tmp_path, address="head:6379")

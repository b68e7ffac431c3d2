"""kill -9 of a worker or of the server mid-job: jobs are requeued or failed with a reason."""

from __future__ import annotations

import hashlib
import os
import signal
import time

import httpx

SLOW = {"generator_options": {"step_seconds": 0.25, "steps": 12}}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def get(server, key: str, video_id: str) -> dict:
    return httpx.get(f"{server.url}/v1/videos/{video_id}", headers=auth(key), timeout=10).json()


def wait_for(server, key: str, video_id: str, predicate, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    video = {}
    while time.monotonic() < deadline:
        video = get(server, key, video_id)
        if predicate(video):
            return video
        time.sleep(0.1)
    raise AssertionError(f"timed out; last: {video}")


def create(server, key: str, prompt: str) -> str:
    response = httpx.post(f"{server.url}/v1/videos", headers=auth(key), json={"prompt": prompt, "seconds": 1})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_kill_worker_mid_job_requeues_and_finishes(server_factory):
    server = server_factory(**SLOW)
    key = server.new_key()
    video_id = create(server, key, "a windmill")
    wait_for(server, key, video_id, lambda v: v["status"] == "in_progress" and v["progress"] >= 20)
    (worker,) = server.worker_pids()
    os.kill(worker, signal.SIGKILL)
    video = wait_for(server, key, video_id, lambda v: v["status"] in ("completed", "failed"))
    assert video["status"] == "completed", video
    assert video["cinepatch"]["attempts"] == 2
    (note,) = video["cinepatch"]["notes"]
    assert f"worker process {worker} exited with status -9" in note and "interrupted at" in note
    assert server.worker_pids() and worker not in server.worker_pids()  # a new worker took over


def test_interrupted_too_often_fails_with_the_reason(server_factory):
    server = server_factory(max_attempts=1, **SLOW)
    key = server.new_key()
    video_id = create(server, key, "a lighthouse")
    wait_for(server, key, video_id, lambda v: v["status"] == "in_progress" and v["progress"] > 0)
    os.kill(server.worker_pids()[0], signal.SIGKILL)
    video = wait_for(server, key, video_id, lambda v: v["status"] == "failed")
    assert video["error"]["code"] == "interrupted"
    assert "exited with status -9" in video["error"]["message"]
    assert create(server, key, "the queue still works")  # and the server carries on


def test_kill_server_mid_job_then_restart(server_factory):
    server = server_factory(**SLOW)
    key = server.new_key()
    done_id = create(server, key, "a finished clip")
    wait_for(server, key, done_id, lambda v: v["status"] == "completed")
    (done_file,) = (server.data_dir / "videos" / done_id).glob("video.*.mp4")
    digest = hashlib.sha256(done_file.read_bytes()).hexdigest()
    running = create(server, key, "a clip cut short")
    queued = create(server, key, "a clip still waiting")
    wait_for(server, key, running, lambda v: v["status"] == "in_progress" and v["progress"] >= 20)
    workers = server.worker_pids()

    server.kill9()
    time.sleep(0.5)
    for pid in workers:  # the workers die with the server (PR_SET_PDEATHSIG): no orphans writing
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"

    server.start()
    after = get(server, key, running)
    assert after["status"] in ("queued", "in_progress", "completed")
    assert any("server stopped" in note for note in after["cinepatch"]["notes"]), after
    for video_id in (running, queued):
        assert wait_for(server, key, video_id, lambda v: v["status"] in ("completed", "failed"))["status"] == "completed"
    assert get(server, key, done_id)["status"] == "completed"
    assert hashlib.sha256(done_file.read_bytes()).hexdigest() == digest  # the finished file is untouched
    listing = httpx.get(f"{server.url}/v1/videos", headers=auth(key)).json()
    assert {v["id"] for v in listing["data"]} == {done_id, running, queued}  # no record lost
    leftovers = [p.name for p in (server.data_dir / "videos").rglob(".*")]
    assert leftovers == [], leftovers  # no half-written temporary files remain


def holder_pid(server, video_id: str) -> int:
    """The pid of the worker process holding ``video_id`` (from the store's claimed_by)."""
    from cinepatch.service.store import SQLiteStore

    worker = SQLiteStore(server.data_dir / "service.sqlite3").get(video_id).claimed_by
    for pid in server.worker_pids():
        if worker in open(f"/proc/{pid}/cmdline").read():
            return pid
    raise AssertionError(f"no process for {worker}")


def test_a_frozen_worker_cannot_overwrite_the_job_it_lost(server_factory):
    """SIGSTOP a worker past its lease: the job moves to the other worker; when the frozen one
    wakes up, its late writes go to its own files and are dropped — the result stays intact."""
    server = server_factory(workers=2, lease_seconds=3.0, **SLOW)
    key = server.new_key()
    video_id = create(server, key, "a frozen clip")
    wait_for(server, key, video_id, lambda v: v["status"] == "in_progress" and v["progress"] > 0)
    frozen = holder_pid(server, video_id)
    os.kill(frozen, signal.SIGSTOP)
    try:
        video = wait_for(server, key, video_id, lambda v: v["status"] == "completed", timeout=90)
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert video["cinepatch"]["attempts"] == 2 and "no heartbeat" in video["cinepatch"]["notes"][0]
    content = httpx.get(f"{server.url}/v1/videos/{video_id}/content", headers=auth(key)).content
    time.sleep(4)  # the woken worker notices it lost the claim and drops its own files
    assert httpx.get(f"{server.url}/v1/videos/{video_id}/content", headers=auth(key)).content == content
    assert get(server, key, video_id)["status"] == "completed"
    videos = list((server.data_dir / "videos" / video_id).glob("video.*.mp4"))
    assert len(videos) == 1, videos  # only the winning claim's file is left

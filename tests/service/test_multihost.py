"""Several hosts on one PostgreSQL database and one shared folder: two API servers that only
queue and serve (`serve --workers 0`), two `cinepatch worker`s, the official openai client, and
one worker killed with SIGKILL mid-job. Every job completes exactly once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from harness import HERE, free_port

pytest.importorskip("psycopg")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SETTINGS = {
    "generator": "standin:make",
    "prompt_check": "standin:check_prompt",
    "generator_options": {"step_seconds": 0.08, "steps": 10},
    "lease_seconds": 3.0,
    "concurrency_per_key": 40,
}


def env() -> dict[str, str]:
    values = dict(os.environ)
    values["PYTHONPATH"] = os.pathsep.join([str(HERE), values.get("PYTHONPATH", "")])
    return values


def toml(settings: dict[str, object]) -> str:
    from harness import _toml_value

    return "".join(f"{k} = {_toml_value(v)}\n" for k, v in settings.items())


class Cluster:
    """The processes of a two-host layout, all on loopback; logs beside the shared folder."""

    def __init__(self, root: Path, database: str) -> None:
        self.root = root
        self.database = database
        self.storage = root / "shared"
        self.config = root / "service.toml"
        self.config.write_text(toml(SETTINGS))
        self.processes: list[subprocess.Popen] = []
        self.ports: list[int] = []
        self.workers: list[subprocess.Popen] = []

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cinepatch", *args, "--db", self.database, "--storage", str(self.storage)]

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        process = subprocess.Popen(self.command(*args, "--config", str(self.config)), env=env(),
                                   stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def start(self, servers: int, workers: int) -> None:
        for i in range(servers):
            port = free_port()
            self.spawn(f"server{i}", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0",
                       "--log-level", "warning")
            self.ports.append(port)
        self.workers = [self.spawn(f"worker{i}", "worker") for i in range(workers)]
        deadline = time.monotonic() + 60
        for port in self.ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["ok"]:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError((self.root / "server0.log").read_text()[-3000:]) from None
                    time.sleep(0.1)

    def new_key(self) -> str:
        out = subprocess.run(self.command("keys", "create", "--name", "multi"), env=env(), check=True,
                             capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str):
    cluster = Cluster(tmp_path, postgres_url)
    yield cluster
    cluster.stop()


def events(url: str, key: str, video_id: str, out: list[dict]) -> None:
    """Read one job's SSE stream to its ``done`` event, keeping every event."""
    with httpx.stream("GET", f"{url}/v1/videos/{video_id}/events", headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append({"event": event, **json.loads(line.removeprefix("data: "))})
                if event == "done":
                    return


def holder(database: str, video_id: str) -> str | None:
    import psycopg

    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT claimed_by FROM jobs WHERE id = %s AND status = 'in_progress'"
                           " AND progress >= 20", (video_id,)).fetchone()
    return row[0] if row else None


def test_two_servers_two_workers_one_killed(cluster: Cluster):
    cluster.start(servers=2, workers=2)
    key = cluster.new_key()
    clients = [openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
               for port in cluster.ports]
    ids = [clients[i % 2].videos.create(prompt=f"clip number {i}", seconds="1", size="64x64").id for i in range(20)]

    # SSE from both servers, each on a job the *other* server queued: the events come through
    # the database, not through the process that took the request.
    streams: dict[str, list[dict]] = {ids[1]: [], ids[4]: []}
    readers = [threading.Thread(target=events, args=(f"http://127.0.0.1:{cluster.ports[0]}", key, ids[1], streams[ids[1]])),
               threading.Thread(target=events, args=(f"http://127.0.0.1:{cluster.ports[1]}", key, ids[4], streams[ids[4]]))]
    for reader in readers:
        reader.start()

    # Kill -9 whichever worker holds a job mid-way.
    pids = {p.pid: p for p in cluster.workers}
    killed_job = victim = None
    deadline = time.monotonic() + 40
    while victim is None and time.monotonic() < deadline:
        for video_id in ids:
            worker_id = holder(cluster.database, video_id)
            pid = int(worker_id.split("-")[-2]) if worker_id else None
            if pid in pids:
                killed_job, victim = video_id, pids[pid]
                break
        time.sleep(0.05)
    assert victim is not None, "no job was seen in progress"
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    deadline = time.monotonic() + 50
    videos = {}
    while time.monotonic() < deadline:
        videos = {video_id: clients[0].videos.retrieve(video_id) for video_id in ids}
        if all(v.status in ("completed", "failed") for v in videos.values()):
            break
        time.sleep(0.3)
    assert [v.status for v in videos.values()] == ["completed"] * 20, {k: v.status for k, v in videos.items()}

    # Exactly once: one attempt each, two for the killed job (requeued when its lease ran out),
    # one output per job, no record lost or doubled.
    attempts = {video_id: v.model_extra["cinepatch"]["attempts"] for video_id, v in videos.items()}
    assert attempts[killed_job] == 2 and "no heartbeat" in videos[killed_job].model_extra["cinepatch"]["notes"][0]
    assert sorted(attempts.values()) == [1] * 19 + [2]
    for video_id in ids:
        files = list((cluster.storage / "videos" / video_id).glob("video.*.mp4"))
        assert len(files) == 1, (video_id, files)
        on_disk = hashlib.sha256(files[0].read_bytes()).hexdigest()
        for client in clients + clients:  # both servers, twice each: the same bytes every time
            assert hashlib.sha256(client.videos.download_content(video_id).read()).hexdigest() == on_disk
    for client in clients:
        listed = [v.id for v in client.videos.list(limit=100).data]
        assert sorted(listed) == sorted(ids)
    leftovers = [p.name for p in (cluster.storage / "videos").rglob(".*")]
    assert leftovers == []  # no half-written temporary files

    for reader in readers:
        reader.join(30)
    for video_id, received in streams.items():
        assert received and received[-1] == {"event": "done", "id": video_id, "status": "completed"}
        statuses = [e["status"] for e in received if e["event"] == "video"]
        assert statuses[-1] == "completed" and len(statuses) >= 2, statuses


def test_a_stopped_worker_hands_its_job_back(cluster: Cluster):
    """SIGTERM (or Ctrl-C) to `cinepatch worker` mid-job requeues the job at once — no waiting
    for the lease — and another worker finishes it."""
    import psycopg

    cluster.start(servers=1, workers=1)
    key = cluster.new_key()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{cluster.ports[0]}/v1", api_key=key, max_retries=0)
    video_id = client.videos.create(prompt="a slow clip", seconds="1", size="64x64").id
    deadline = time.monotonic() + 30
    while holder(cluster.database, video_id) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    (worker,) = cluster.workers
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    with psycopg.connect(cluster.database) as conn:
        status, notes = conn.execute("SELECT status, notes FROM jobs WHERE id = %s", (video_id,)).fetchone()
    assert status == "queued" and "the worker was stopped" in notes
    cluster.workers = [cluster.spawn("worker-b", "worker")]
    deadline = time.monotonic() + 40
    while client.videos.retrieve(video_id).status != "completed" and time.monotonic() < deadline:
        time.sleep(0.2)
    video = client.videos.retrieve(video_id)
    assert video.status == "completed" and video.model_extra["cinepatch"]["attempts"] == 2
    assert len(list((cluster.storage / "videos" / video_id).glob("video.*.mp4"))) == 1

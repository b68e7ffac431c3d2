"""Fault injection on the studio service: kill -9 mid-job, restart, report what survived.

    python benchmarks/service_fault.py [--generator standin:make] [--kill-at 30]
    python benchmarks/service_fault.py --generator cinepatch.service.generator:default_studio --kill-at 1

Round 1 kills a *worker* with SIGKILL while it generates; round 2 kills the *server* (whose
workers die with it) while one job runs and others wait, then starts it again on the same data
folder. For every job it prints the status before and after, the attempts, the recovery notes,
and whether each file that was complete before the crash is byte-identical afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))

from harness import make_server  # noqa: E402  (the tests' real-server harness)


def digest(folder: Path) -> str | None:
    """The completed video file's hash (each claim writes its own video.<tag>.mp4)."""
    files = sorted(folder.glob("video.*.mp4")) if folder.is_dir() else []
    return hashlib.sha256(files[0].read_bytes()).hexdigest()[:16] if len(files) == 1 else None


class Api:
    def __init__(self, server, key: str) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {key}"}

    def create(self, prompt: str) -> str:
        r = httpx.post(f"{self.server.url}/v1/videos", headers=self.headers, json={"prompt": prompt, "seconds": 1},
                       timeout=30)
        r.raise_for_status()
        return r.json()["id"]

    def get(self, video_id: str) -> dict:
        return httpx.get(f"{self.server.url}/v1/videos/{video_id}", headers=self.headers, timeout=30).json()

    def ids(self) -> list[str]:
        return [v["id"] for v in httpx.get(f"{self.server.url}/v1/videos?limit=100", headers=self.headers,
                                           timeout=30).json()["data"]]

    def wait(self, video_id: str, predicate, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            video = self.get(video_id)
            if predicate(video):
                return video
            time.sleep(0.1)
        raise TimeoutError(video_id)


def report(api: Api, ids: list[str], before: dict[str, str], files_before: dict[str, str | None]) -> bool:
    ok = True
    for video_id in ids:
        video = api.get(video_id)
        after_file = digest(api.server.data_dir / "videos" / video_id)
        same = "" if files_before.get(video_id) is None else (
            " file unchanged" if after_file == files_before[video_id] else " FILE CHANGED")
        ok &= "CHANGED" not in same and video["status"] == "completed"
        notes = "; ".join(video["cinepatch"]["notes"]) or "-"
        print(f"  {video_id[:18]}… {before[video_id]:>11} → {video['status']:<9} attempts={video['cinepatch']['attempts']}"
              f"{same}  notes: {notes}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="standin:make")
    parser.add_argument("--kill-at", type=int, default=30, help="kill once the running job reports this progress (%%)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="cinepatch-fault-") as tmp:
        server = make_server(Path(tmp), generator=args.generator, concurrency_per_key=20,
                             generator_options={"step_seconds": 0.3, "steps": 12})
        server.start()
        api = Api(server, server.new_key("fault"))
        try:
            # Round 1: kill -9 a worker mid-job.
            done = api.create("a red ball bouncing")
            first = api.wait(done, lambda v: v["status"] in ("completed", "failed"))
            if first["status"] == "failed":
                raise SystemExit(f"the generator failed a plain job: {first['error']}")
            victim = api.create("a blue square moving right")
            api.wait(victim, lambda v: v["status"] == "in_progress" and v["progress"] >= args.kill_at)
            before = {done: "completed", victim: f"{api.get(victim)['progress']}%"}
            files = {done: digest(server.data_dir / "videos" / done)}
            pid = server.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            api.wait(victim, lambda v: v["status"] in ("completed", "failed"))
            print(f"round 1: kill -9 worker {pid} mid-job; finished again {time.monotonic() - t0:.1f} s later")
            ok &= report(api, [done, victim], before, files)

            # Round 2: kill -9 the server with one job running and three waiting.
            running = api.create("a green triangle moving left")
            waiting = [api.create(["a yellow circle bouncing", "a red square moving up", "a blue ball moving down"][i]) for i in range(3)]
            api.wait(running, lambda v: v["status"] == "in_progress" and v["progress"] >= args.kill_at)
            ids = api.ids()
            before = {i: (lambda v: v["status"] if v["status"] != "in_progress" else f"{v['progress']}%")(api.get(i))
                      for i in ids}
            files = {i: digest(server.data_dir / "videos" / i) for i in ids
                     if before[i] == "completed"}
            workers = server.worker_pids()
            server.kill9()
            time.sleep(0.5)
            orphans = [p for p in workers if os.path.exists(f"/proc/{p}")
                       and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
            t0 = time.monotonic()
            server.start()
            restart = time.monotonic() - t0
            for video_id in [running, *waiting]:
                api.wait(video_id, lambda v: v["status"] in ("completed", "failed"))
            print(f"round 2: kill -9 server; workers left running: {len(orphans)}; restart took {restart:.1f} s;"
                  f" records before {len(ids)}, after {len(api.ids())}")
            ok &= report(api, ids, before, files) and not orphans and len(api.ids()) == len(ids)
            temporaries = [p.name for p in (server.data_dir / "videos").rglob(".*")]
            print(f"temporary files left in the videos folder: {len(temporaries)}")
            ok &= not temporaries
        finally:
            server.stop()
    print("RESULT:", "everything survived" if ok else "SOMETHING WAS LOST")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

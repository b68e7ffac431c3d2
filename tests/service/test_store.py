"""The SQLite job store: claims are atomic across processes; tokens fence out stale workers."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from cinepatch.service.store import SQLiteStore


def job(i: int) -> dict:
    return {"id": f"video_{i:04d}", "owner": "k", "model": "m", "seconds": "1", "size": "16x16",
            "prompt": f"p{i}", "kind": "create", "spec": {"prompt": f"p{i}"}}


def _claim_all(path: str, worker: str, out: mp.Queue) -> None:
    store = SQLiteStore(Path(path))
    claimed = []
    while (claimed_job := store.claim(worker, lease_seconds=30)) is not None:
        claimed.append(claimed_job.id)
        assert store.complete(claimed_job.id, claimed_job.claim_token, {"seconds_label": "1"})
    out.put(claimed)


def test_concurrent_claims_take_each_job_exactly_once(tmp_path):
    store = SQLiteStore(tmp_path / "jobs.sqlite3")
    for i in range(120):
        store.create_job(job(i), concurrency=1000, daily_quota=1000)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(str(store.path), f"w{n}", out)) for n in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    claimed = [video_id for result in results for video_id in result]
    assert sorted(claimed) == [f"video_{i:04d}" for i in range(120)]  # all, none twice
    assert store.counts() == {"completed": 120}


def test_a_requeued_job_ignores_its_old_worker(tmp_path):
    store = SQLiteStore(tmp_path / "jobs.sqlite3")
    store.create_job(job(1), concurrency=5, daily_quota=5)
    first = store.claim("w1", lease_seconds=30)
    assert store.recover(worker="w1", reason="test", max_attempts=3) == [("video_0001", "requeued")]
    second = store.claim("w2", lease_seconds=30)
    assert second is not None and second.attempts == 2 and second.claim_token != first.claim_token
    assert not store.heartbeat(first.id, first.claim_token, lease_seconds=30, progress=50)
    assert not store.complete(first.id, first.claim_token, {})  # the stale worker cannot finish it
    assert store.complete(second.id, second.claim_token, {})
    assert store.get(first.id).status == "completed"


def test_a_late_worker_cannot_overwrite_the_completed_file(tmp_path):
    """Worker A loses its claim mid-generation; B redoes and completes the job; then A's
    generator finishes and writes anyway. A's file must not replace B's, and A's is removed."""
    import numpy as np

    from cinepatch.io.video import read_video, write_video
    from cinepatch.service.config import ServiceConfig
    from cinepatch.service.worker import files_of, run_job
    from standin import Request, TinyStudio

    config = ServiceConfig(data_dir=tmp_path, lease_seconds=30)
    store = SQLiteStore(config.db_path)
    store.create_job({**job(1), "spec": {"prompt": "p", "seconds": 0.5, "width": 32, "height": 32, "fps": 8}},
                     concurrency=5, daily_quota=5)
    claim_a = store.claim("A", lease_seconds=30)

    class LateStudio:
        request_type = Request

        def create(self, request, *, out, progress=None):
            # While A works, the supervisor gives its job to B, which finishes it.
            store.recover(worker="A", reason="presumed dead", max_attempts=3)
            claim_b = store.claim("B", lease_seconds=30)
            assert run_job(store, config, TinyStudio({"step_seconds": 0}), claim_b) == "completed"
            # A's generator never calls progress again, and writes its (different) video.
            write_video(out, np.full((4, 32, 32, 3), 255, np.uint8), fps=8)
            return TinyStudio({"step_seconds": 0}).create(request, out=tmp_path / "unused.mp4")

    assert run_job(store, config, LateStudio(), claim_a) == "cancelled"
    done = store.get("video_0001")
    assert done.status == "completed" and done.attempts == 2
    folder = config.video_dir("video_0001")
    kept = read_video(folder / files_of(done)["video"]).frames
    assert len(kept) == 4 and kept.mean() < 200  # B's gradient, not A's all-white frames
    assert sorted(p.name for p in folder.glob("video.*.mp4")) == [files_of(done)["video"]]

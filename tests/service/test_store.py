"""The job store, against both backends: claims are atomic across processes; tokens fence out
stale workers; limits, keys, listing and recovery behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from cinepatch.service.store import LimitExceeded, connect


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "jobs.sqlite3")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(target: str):
    store = connect(target)
    yield store
    store.close()


def job(i: int, owner: str = "k") -> dict:
    return {"id": f"video_{i:04d}", "owner": owner, "model": "m", "seconds": "1", "size": "16x16",
            "prompt": f"p{i}", "kind": "create", "spec": {"prompt": f"p{i}"}}


def _claim_all(target: str, worker: str, out: mp.Queue) -> None:
    store = connect(target)
    claimed = []
    while (claimed_job := store.claim(worker, lease_seconds=30)) is not None:
        claimed.append(claimed_job.id)
        assert store.complete(claimed_job.id, claimed_job.claim_token, {"seconds_label": "1"})
    store.close()
    out.put(claimed)


def claim_concurrently(target: str, store, jobs: int, workers: int) -> list[str]:
    for i in range(jobs):
        store.create_job(job(i), concurrency=10_000, daily_quota=10_000)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(target, f"w{n}", out)) for n in range(workers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    return [video_id for result in results for video_id in result]


def test_concurrent_claims_take_each_job_exactly_once(target, store):
    claimed = claim_concurrently(target, store, jobs=120, workers=4)
    assert sorted(claimed) == [f"video_{i:04d}" for i in range(120)]  # all, none twice
    assert store.counts() == {"completed": 120}


def test_a_requeued_job_ignores_its_old_worker(store):
    store.create_job(job(1), concurrency=5, daily_quota=5)
    first = store.claim("w1", lease_seconds=30)
    assert store.recover(worker="w1", reason="test", max_attempts=3) == [("video_0001", "requeued")]
    second = store.claim("w2", lease_seconds=30)
    assert second is not None and second.attempts == 2 and second.claim_token != first.claim_token
    assert not store.heartbeat(first.id, first.claim_token, lease_seconds=30, progress=50)
    assert not store.complete(first.id, first.claim_token, {})  # the stale worker cannot finish it
    assert store.complete(second.id, second.claim_token, {})
    assert store.get(first.id).status == "completed"


def test_an_expired_lease_requeues_then_fails_with_the_reason(store):
    store.create_job(job(1), concurrency=5, daily_quota=5)
    store.create_job(job(2), concurrency=5, daily_quota=5)
    short = store.claim("gone", lease_seconds=0.3)
    kept = store.claim("alive", lease_seconds=30)
    time.sleep(0.5)
    assert store.recover_expired(reason="no heartbeat", max_attempts=2) == [(short.id, "requeued")]
    again = store.get(short.id)
    assert again.status == "queued" and again.claim_token is None and "no heartbeat" in again.notes[0]
    assert store.get(kept.id).status == "in_progress"  # a live lease is left alone
    retry = store.claim("gone-again", lease_seconds=0.3)
    assert retry.id == short.id and retry.attempts == 2
    time.sleep(0.5)
    assert store.recover_expired(reason="no heartbeat", max_attempts=2) == [(short.id, "failed")]
    failed = store.get(short.id)
    assert failed.error["code"] == "interrupted" and "interrupted 2 time(s)" in failed.error["message"]


def test_heartbeats_keep_a_lease_and_record_progress(store):
    store.create_job(job(1), concurrency=5, daily_quota=5)
    claimed = store.claim("w", lease_seconds=0.4)
    for percent in (10, 30, 20):  # progress never goes backwards
        time.sleep(0.2)
        assert store.heartbeat(claimed.id, claimed.claim_token, lease_seconds=0.4, progress=percent)
    assert store.recover_expired(reason="x", max_attempts=3) == []
    assert store.get(claimed.id).progress == 30


def test_limits_are_checked_when_a_job_is_queued(store):
    store.create_job(job(1), concurrency=2, daily_quota=3)
    store.create_job(job(2), concurrency=2, daily_quota=3)
    with pytest.raises(LimitExceeded) as busy:
        store.create_job(job(3), concurrency=2, daily_quota=3)
    assert busy.value.kind == "concurrency"
    claimed = store.claim("w", lease_seconds=30)
    store.complete(claimed.id, claimed.claim_token, {})
    store.create_job(job(3), concurrency=2, daily_quota=3)
    claimed = store.claim("w", lease_seconds=30)
    store.complete(claimed.id, claimed.claim_token, {})
    with pytest.raises(LimitExceeded) as spent:
        store.create_job(job(4), concurrency=2, daily_quota=3)
    assert spent.value.kind == "daily_quota" and 0 < spent.value.retry_after <= 86400
    store.create_job(job(5, owner="other"), concurrency=2, daily_quota=3)  # limits are per owner


def test_listing_pages_and_delete_hides(store):
    for i in range(5):
        store.create_job(job(i), concurrency=10, daily_quota=10)
    page, more = store.list("k", after=None, limit=2, order="asc")
    assert [j.id for j in page] == ["video_0000", "video_0001"] and more
    page, more = store.list("k", after="video_0001", limit=10, order="asc")
    assert [j.id for j in page] == ["video_0002", "video_0003", "video_0004"] and not more
    page, _ = store.list("k", after=None, limit=2, order="desc")
    assert [j.id for j in page] == ["video_0004", "video_0003"]
    assert store.delete("video_0002", "someone else") is None
    assert store.delete("video_0002", "k").id == "video_0002"
    assert store.get("video_0002") is None
    assert [j.id for j in store.list("k", after=None, limit=10, order="asc")[0]] == [
        "video_0000", "video_0001", "video_0003", "video_0004"]
    claimed = [store.claim("w", lease_seconds=30).id for _ in range(4)]
    assert "video_0002" not in claimed and store.claim("w", lease_seconds=30) is None


def test_keys_create_find_and_revoke(store):
    key, secret = store.create_key("ci", concurrency=3, daily_quota=None)
    assert secret.startswith("cpk_") and key.prefix == secret[:8] and key.concurrency == 3
    assert store.key_for(secret) == key
    assert store.key_for(secret + "x") is None
    assert [k.id for k in store.list_keys()] == [key.id]
    assert store.revoke_key(key.id) and not store.revoke_key(key.id)
    assert store.key_for(secret) is None and store.list_keys()[0].revoked_at is not None


def test_a_late_worker_cannot_overwrite_the_completed_file(tmp_path, target):
    """Worker A loses its claim mid-generation; B redoes and completes the job; then A's
    generator finishes and writes anyway. A's file must not replace B's, and A's is removed."""
    import numpy as np

    from cinepatch.io.video import read_video, write_video
    from cinepatch.service.config import ServiceConfig
    from cinepatch.service.worker import files_of, run_job
    from standin import Request, TinyStudio

    config = ServiceConfig(data_dir=tmp_path, lease_seconds=30)
    store = connect(target)
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
    store.close()

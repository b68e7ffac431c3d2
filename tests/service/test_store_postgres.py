"""What only the PostgreSQL store has: migrations, SKIP LOCKED under contention, NOTIFY events."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

psycopg = pytest.importorskip("psycopg")

from cinepatch.service.store_postgres import MIGRATIONS, PostgresStore, migrate  # noqa: E402
from test_store import claim_concurrently, job  # noqa: E402


def versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM cinepatch_schema ORDER BY version")]


def test_migrations_are_numbered_and_idempotent(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert migrate(conn, MIGRATIONS[:1]) == [1]  # an older release's schema
        conn.execute("INSERT INTO keys (id, hash, name, prefix, created_at) VALUES ('key_old', 'h', 'n', 'p', 0)")
    errors: list[BaseException] = []

    def start() -> None:  # several processes starting at once on an older schema
        try:
            PostgresStore(postgres_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert versions(postgres_url) == [v for v, _ in MIGRATIONS]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert migrate(conn) == []  # nothing left to do
        assert conn.execute("SELECT id FROM keys").fetchall() == [("key_old",)]  # data kept


def test_eight_workers_never_claim_one_job_twice(postgres_url):
    store = PostgresStore(postgres_url)
    claimed = claim_concurrently(postgres_url, store, jobs=200, workers=8)
    assert len(claimed) == len(set(claimed)) == 200
    assert sorted(claimed) == [f"video_{i:04d}" for i in range(200)]
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs WHERE attempts <> 1").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(DISTINCT claimed_by) FROM jobs").fetchone()[0] > 1  # they really competed
    store.close()


def test_changes_are_pushed_to_subscribers(postgres_url):
    """A subscriber wakes within milliseconds of a change made by another connection, and a
    lease-only heartbeat wakes nobody."""
    watcher = PostgresStore(postgres_url)
    writer = PostgresStore(postgres_url)
    writer.create_job(job(1), concurrency=5, daily_quota=5)
    other = writer.create_job(job(2), concurrency=5, daily_quota=5)

    async def scenario() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        with watcher.subscribe("video_0001") as changes:
            await changes.wait(0.5)  # the listener's first wake-up when it connects
            started = loop.time()
            claimed = await asyncio.to_thread(writer.claim, "w", lease_seconds=30)
            assert claimed.id == "video_0001"
            await changes.wait(10)
            woke_after_claim = loop.time() - started

            started = loop.time()
            await asyncio.to_thread(writer.heartbeat, claimed.id, claimed.claim_token, lease_seconds=30)
            await changes.wait(1.0)  # nothing visible changed: this times out
            quiet = loop.time() - started

            started = loop.time()
            await asyncio.to_thread(writer.claim, "w", lease_seconds=30)  # another job: not ours
            await asyncio.to_thread(writer.complete, claimed.id, claimed.claim_token, {})
            await changes.wait(10)
            woke_after_complete = loop.time() - started
        return woke_after_claim, quiet, woke_after_complete

    woke_after_claim, quiet, woke_after_complete = asyncio.run(scenario())
    assert woke_after_claim < 2.0 and woke_after_complete < 2.0
    assert quiet >= 0.9
    assert watcher.get(other.id).status == "in_progress"
    watcher.close()
    writer.close()


def test_keys_commands_use_the_database(postgres_url, tmp_path):
    """`cinepatch keys create|list|revoke --db` act on the PostgreSQL store, not a SQLite file."""
    import subprocess
    import sys

    def keys(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cinepatch", "keys", *args, "--db", postgres_url,
                               "--storage", str(tmp_path)], check=True, capture_output=True, text=True).stdout

    secret = keys("create", "--name", "ci", "--concurrency", "3").strip()
    store = PostgresStore(postgres_url)
    key = store.key_for(secret)
    assert key is not None and key.name == "ci" and key.concurrency == 3
    assert key.id in keys("list") and "active" in keys("list")
    assert f"revoked {key.id}" in keys("revoke", key.id)
    assert store.key_for(secret) is None
    assert not list(tmp_path.glob("*.sqlite3"))  # nothing went to SQLite
    store.close()


def test_a_database_that_is_not_postgresql_is_refused(tmp_path):
    from cinepatch.errors import InvalidParameter
    from cinepatch.service.config import ServiceConfig

    with pytest.raises(InvalidParameter, match="database"):
        ServiceConfig(data_dir=tmp_path, database="mysql://db/cinepatch")


def test_supervisors_on_a_shared_store_leave_other_hosts_jobs_alone(postgres_url, tmp_path):
    """Two servers on one database and one folder: no folder lock, no "requeue everything" at
    start or stop; only an expired lease sends a job back to the queue."""
    from cinepatch.service.config import ServiceConfig
    from cinepatch.service.supervisor import Supervisor

    store = PostgresStore(postgres_url)
    store.create_job(job(1), concurrency=5, daily_quota=5)
    store.create_job(job(2), concurrency=5, daily_quota=5)
    elsewhere = store.claim("host-b-worker", lease_seconds=60)  # a live worker on another host
    vanished = store.claim("host-c-worker", lease_seconds=0.5)  # one that died with its host
    config = ServiceConfig(data_dir=tmp_path, database=postgres_url, workers=0, lease_seconds=1.0)
    first, second = Supervisor(config, store), Supervisor(config, PostgresStore(postgres_url))
    first.start()
    second.start()  # the same data folder: no DataDirBusy
    try:
        assert first.recovered == [] and second.recovered == []
        deadline = time.monotonic() + 10
        while store.get(vanished.id).status != "queued" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.get(vanished.id).status == "queued"
        assert "no heartbeat" in store.get(vanished.id).notes[0]
    finally:
        first.stop()
        second.stop()
    assert store.get(elsewhere.id).status == "in_progress"  # untouched by either server's start or stop
    assert store.get(elsewhere.id).claim_token == elsewhere.claim_token
    store.close()

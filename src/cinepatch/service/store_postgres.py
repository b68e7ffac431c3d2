"""The PostgreSQL ``JobStore``: one database shared by API servers and workers on many hosts.

The same records, keys, quotas, leases and events as ``SQLiteStore``, with what a shared
database needs on top:

- **claims** take the oldest queued job with ``SELECT … FOR UPDATE SKIP LOCKED`` inside the
  claiming ``UPDATE``, so any number of workers claim concurrently without waiting on each
  other and never take one job twice;
- **time comes from the database** (``clock_timestamp()``), so leases hold even when the
  hosts' clocks disagree; a job whose worker vanished is requeued once its lease passes;
- **events**: a trigger sends ``NOTIFY cinepatch_jobs, '<video id>'`` whenever a job's
  visible state changes, and one listening connection per process wakes the SSE streams
  waiting on that job — no polling;
- **schema** changes are numbered migrations in ``MIGRATIONS``, applied at start under an
  advisory lock and recorded in ``cinepatch_schema``, so any number of processes may start at
  once and starting again changes nothing.

Connections come from a small ``psycopg_pool`` pool; every state change is one short
transaction, like the SQLite store's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import uuid
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from cinepatch.service.store import _DAY, ApiKey, Job, LimitExceeded, hash_key, interrupted, new_key
from cinepatch.service.store import _job as _row_to_job

__all__ = ["PostgresStore", "MIGRATIONS", "CHANNEL"]

log = logging.getLogger("cinepatch.service.store")

CHANNEL = "cinepatch_jobs"
_MIGRATION_LOCK = 0x63696E65  # any constant: pg_advisory_xact_lock's key for schema changes
_NOW = "extract(epoch from clock_timestamp())::double precision"

# (version, SQL). Append only: a released migration never changes, a new one gets the next number.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    model TEXT NOT NULL,
    seconds TEXT NOT NULL,
    size TEXT NOT NULL,
    prompt TEXT NOT NULL,
    kind TEXT NOT NULL,
    remixed_from_video_id TEXT,
    spec TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claim_token TEXT,
    lease_until DOUBLE PRECISION,
    notes TEXT NOT NULL DEFAULT '[]',
    deleted_at BIGINT,
    updated DOUBLE PRECISION NOT NULL
);
CREATE INDEX jobs_owner ON jobs (owner, deleted_at, seq);
CREATE INDEX jobs_status ON jobs (status, seq);
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    concurrency INTEGER,
    daily_quota INTEGER
);
"""),
    # Change events: every change a client can see moves ``updated``; heartbeats that only
    # extend a lease do not, and so wake nobody.
    (2, f"""
CREATE FUNCTION cinepatch_notify_job() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', NEW.id);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER jobs_notify AFTER UPDATE ON jobs FOR EACH ROW
    WHEN (OLD.updated IS DISTINCT FROM NEW.updated) EXECUTE FUNCTION cinepatch_notify_job();
"""),
    # The lease sweep runs every few seconds on every host: index the running jobs' leases.
    (3, "CREATE INDEX jobs_lease ON jobs (lease_until) WHERE status = 'in_progress';"),
)

_COLUMNS = (
    "id", "seq", "owner", "status", "progress", "created_at", "started_at", "completed_at", "model", "seconds",
    "size", "prompt", "kind", "remixed_from_video_id", "spec", "result", "error", "attempts", "claimed_by",
    "claim_token", "notes", "updated",
)
_JOB_COLUMNS = ", ".join(_COLUMNS)
_KEY_COLUMNS = "id, name, prefix, created_at, revoked_at, concurrency, daily_quota"


def _job(row: tuple) -> Job:
    return _row_to_job(row)  # the same columns, in the same order, as the SQLite table


def migrate(conn: psycopg.Connection, migrations: tuple[tuple[int, str], ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations not yet recorded; returns the versions applied now (often none)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS cinepatch_schema (version INTEGER PRIMARY KEY,"
            f" applied_at DOUBLE PRECISION NOT NULL DEFAULT {_NOW})"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM cinepatch_schema")}
        applied = []
        for version, sql in migrations:
            if version in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO cinepatch_schema (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied


class _Subscription:
    """One SSE stream's wake-up: an asyncio event set (thread-safely) by the listener."""

    def __init__(self, hub: _Listener, video_id: str) -> None:
        self.hub = hub
        self.video_id = video_id
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def __enter__(self) -> _Subscription:
        self.hub.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.remove(self)

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            pass
        self.event.clear()


class _Listener:
    """One ``LISTEN`` connection per process, fanning notifications out to subscriptions.

    Started with the first subscription. If the connection drops, every subscriber is woken
    (it re-reads its job, so no change is lost) and the listener reconnects.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._subs: dict[str, set[_Subscription]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, sub: _Subscription) -> None:
        with self._lock:
            self._subs.setdefault(sub.video_id, set()).add(sub)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cinepatch-listen", daemon=True)
                self._thread.start()

    def remove(self, sub: _Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.video_id, set())
            subs.discard(sub)
            if not subs:
                self._subs.pop(sub.video_id, None)

    def _wake(self, video_id: str | None) -> None:
        with self._lock:
            subs = [s for key, group in self._subs.items() if video_id in (None, key) for s in group]
        for sub in subs:
            sub.wake()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._wake(None)  # anything that changed while we were not listening
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._wake(note.payload)
            except psycopg.Error as exc:
                log.warning("change notifications lost (%s); reconnecting", exc)
                self._wake(None)
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()


class PostgresStore:
    """The shared ``JobStore`` on PostgreSQL (psycopg 3); see the module docstring."""

    shared = True

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        # autocommit: every method opens its own explicit transaction (``with conn.transaction()``).
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=True, name="cinepatch"
        )
        self._listener = _Listener(url)

    def close(self) -> None:
        self._listener.stop()
        self._pool.close()

    def _one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self._pool.connection() as conn:
            return conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._pool.connection() as conn:
            return conn.execute(sql, args).fetchall()

    def _count(self, sql: str, args: tuple) -> int:
        """Rows changed by one statement, in its own transaction."""
        with self._pool.connection() as conn, conn.transaction():
            return conn.execute(sql, args).rowcount

    # -- jobs: the HTTP layer -----------------------------------------------------------------

    def create_job(self, job: dict[str, Any], *, concurrency: int, daily_quota: int) -> Job:
        """Insert a queued job, checking the owner's limits in the same transaction.

        The owner's rows are locked first (``pg_advisory_xact_lock`` on the owner), so two
        servers accepting the same key's requests at once cannot both slip under a limit.
        """
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (job["owner"],))
            now = conn.execute(f"SELECT {_NOW}").fetchone()[0]
            day_start = int(now // _DAY * _DAY)
            active, today = conn.execute(
                "SELECT COUNT(*) FILTER (WHERE status IN ('queued', 'in_progress') AND deleted_at IS NULL),"
                " COUNT(*) FILTER (WHERE created_at >= %s) FROM jobs WHERE owner = %s",
                (day_start, job["owner"]),
            ).fetchone()
            if active >= concurrency:
                raise LimitExceeded("concurrency", concurrency, retry_after=5)
            if today >= daily_quota:
                raise LimitExceeded("daily_quota", daily_quota, retry_after=max(1, day_start + _DAY - int(now)))
            row = conn.execute(
                "INSERT INTO jobs (id, owner, status, progress, created_at, model, seconds, size, prompt, kind,"
                " remixed_from_video_id, spec, updated) VALUES (%s, %s, 'queued', 0, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                f" RETURNING {_JOB_COLUMNS}",
                (job["id"], job["owner"], int(now), job["model"], job["seconds"], job["size"], job["prompt"],
                 job["kind"], job.get("remixed_from_video_id"), json.dumps(job["spec"]), now),
            ).fetchone()
        return _job(row)

    def get(self, video_id: str, owner: str | None = None) -> Job | None:
        if owner is None:
            row = self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s AND deleted_at IS NULL", (video_id,))
        else:
            row = self._one(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s AND owner = %s AND deleted_at IS NULL",
                (video_id, owner),
            )
        return _job(row) if row else None

    def list(self, owner: str, *, after: str | None, limit: int, order: str) -> tuple[list[Job], bool]:
        desc = order == "desc"
        args: list[object] = [owner]
        where = "owner = %s AND deleted_at IS NULL"
        if after is not None:
            row = self._one("SELECT seq FROM jobs WHERE id = %s AND owner = %s", (after, owner))
            if row is None:
                raise KeyError(after)
            where += " AND seq < %s" if desc else " AND seq > %s"
            args.append(row[0])
        rows = self._all(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq {'DESC' if desc else 'ASC'} LIMIT %s",
            (*args, limit + 1),
        )
        return [_job(r) for r in rows[:limit]], len(rows) > limit

    def delete(self, video_id: str, owner: str) -> Job | None:
        """Mark a job deleted (its record stays, hidden); a running job stops at its next heartbeat."""
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s AND owner = %s AND deleted_at IS NULL FOR UPDATE",
                (video_id, owner),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                f"UPDATE jobs SET deleted_at = {_NOW}::bigint, claim_token = NULL, updated = {_NOW},"
                " status = CASE WHEN status IN ('queued', 'in_progress') THEN 'failed' ELSE status END"
                " WHERE id = %s",
                (video_id,),
            )
        return _job(row)

    # -- jobs: workers ------------------------------------------------------------------------

    def claim(self, worker: str, *, lease_seconds: float) -> Job | None:
        """Take the oldest queued job; rows other claimers hold locked are skipped, not waited on."""
        returning = ", ".join(f"jobs.{c}" for c in _COLUMNS)
        row = None
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "WITH next AS (SELECT seq FROM jobs WHERE status = 'queued' AND deleted_at IS NULL"
                " ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" UPDATE jobs SET status = 'in_progress', claimed_by = %s, claim_token = %s,"
                f" lease_until = {_NOW} + %s, attempts = attempts + 1,"
                f" started_at = COALESCE(started_at, {_NOW}::bigint), progress = 0, updated = {_NOW}"
                f" FROM next WHERE jobs.seq = next.seq RETURNING {returning}",
                (worker, uuid.uuid4().hex, float(lease_seconds)),
            ).fetchone()
        return _job(row) if row else None

    def heartbeat(self, video_id: str, token: str, *, lease_seconds: float, progress: int | None = None) -> bool:
        """Extend the lease (and record progress); False when the job is no longer this claim's."""
        if progress is None:
            return self._count(
                f"UPDATE jobs SET lease_until = {_NOW} + %s"
                " WHERE id = %s AND claim_token = %s AND status = 'in_progress'",
                (float(lease_seconds), video_id, token),
            ) == 1
        # ``updated`` (and so an event) only moves when the progress does.
        return self._count(
            f"UPDATE jobs SET lease_until = {_NOW} + %s, progress = GREATEST(progress, %s),"
            f" updated = CASE WHEN %s > progress THEN {_NOW} ELSE updated END"
            " WHERE id = %s AND claim_token = %s AND status = 'in_progress'",
            (float(lease_seconds), int(progress), int(progress), video_id, token),
        ) == 1

    def complete(self, video_id: str, token: str, result: dict[str, Any]) -> bool:
        return self._count(
            f"UPDATE jobs SET status = 'completed', progress = 100, completed_at = {_NOW}::bigint, result = %s,"
            f" seconds = COALESCE(%s, seconds), claim_token = NULL, lease_until = NULL, updated = {_NOW}"
            " WHERE id = %s AND claim_token = %s AND status = 'in_progress'",
            (json.dumps(result), result.get("seconds_label"), video_id, token),
        ) == 1

    def fail(self, video_id: str, token: str, error: dict[str, Any]) -> bool:
        return self._count(
            f"UPDATE jobs SET status = 'failed', completed_at = {_NOW}::bigint, error = %s, claim_token = NULL,"
            f" lease_until = NULL, updated = {_NOW} WHERE id = %s AND claim_token = %s AND status = 'in_progress'",
            (json.dumps(error), video_id, token),
        ) == 1

    # -- recovery -----------------------------------------------------------------------------

    def _recover_where(self, where: str, args: tuple, *, reason: str, max_attempts: int) -> list[tuple[str, str]]:
        actions: list[tuple[str, str]] = []
        with self._pool.connection() as conn, conn.transaction():
            now = conn.execute(f"SELECT {_NOW}").fetchone()[0]
            # SKIP LOCKED: a job another host is completing right now is not its to recover.
            rows = conn.execute(
                f"SELECT id, attempts, progress, notes FROM jobs WHERE status = 'in_progress' AND {where}"
                " FOR UPDATE SKIP LOCKED",
                args,
            ).fetchall()
            for video_id, attempts, progress, notes in rows:
                notes, error = interrupted(
                    now, attempts=attempts, progress=progress, notes=notes, reason=reason, max_attempts=max_attempts
                )
                if error is not None:
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', completed_at = %s, error = %s, claim_token = NULL,"
                        " lease_until = NULL, notes = %s, updated = %s WHERE id = %s",
                        (int(now), error, notes, now, video_id),
                    )
                    actions.append((video_id, "failed"))
                else:
                    conn.execute(
                        "UPDATE jobs SET status = 'queued', progress = 0, claimed_by = NULL, claim_token = NULL,"
                        " lease_until = NULL, notes = %s, updated = %s WHERE id = %s",
                        (notes, now, video_id),
                    )
                    actions.append((video_id, "requeued"))
        return actions

    def recover(self, *, worker: str | None, reason: str, max_attempts: int) -> list[tuple[str, str]]:
        """Requeue (or fail, past ``max_attempts``) the jobs ``worker`` held; every running job if None."""
        if worker is None:
            return self._recover_where("TRUE", (), reason=reason, max_attempts=max_attempts)
        return self._recover_where("claimed_by = %s", (worker,), reason=reason, max_attempts=max_attempts)

    def recover_expired(self, *, reason: str, max_attempts: int) -> list[tuple[str, str]]:
        """Requeue the jobs whose lease passed (by the database's clock): their worker is gone."""
        return self._recover_where(f"lease_until < {_NOW}", (), reason=reason, max_attempts=max_attempts)

    def counts(self) -> dict[str, int]:
        rows = self._all("SELECT status, COUNT(*) FROM jobs WHERE deleted_at IS NULL GROUP BY status")
        return {status: n for status, n in rows}

    # -- events -------------------------------------------------------------------------------

    def subscribe(self, video_id: str) -> _Subscription:
        """Wake-ups for ``video_id`` from ``LISTEN``; call from the event loop that will wait."""
        return _Subscription(self._listener, video_id)

    # -- keys ---------------------------------------------------------------------------------

    def create_key(self, name: str, *, concurrency: int | None = None, daily_quota: int | None = None) -> tuple[ApiKey, str]:
        secret = new_key()
        row = self._one_tx(
            "INSERT INTO keys (id, hash, name, prefix, created_at, concurrency, daily_quota)"
            f" VALUES (%s, %s, %s, %s, {_NOW}::bigint, %s, %s) RETURNING {_KEY_COLUMNS}",
            ("key_" + secrets.token_hex(6), hash_key(secret), name, secret[:8], concurrency, daily_quota),
        )
        assert row is not None
        return ApiKey(*row), secret

    def _one_tx(self, sql: str, args: tuple) -> tuple | None:
        with self._pool.connection() as conn, conn.transaction():
            return conn.execute(sql, args).fetchone()

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey(*r) for r in self._all(f"SELECT {_KEY_COLUMNS} FROM keys ORDER BY created_at, id")]

    def revoke_key(self, key_id: str) -> bool:
        return self._count(
            f"UPDATE keys SET revoked_at = {_NOW}::bigint WHERE id = %s AND revoked_at IS NULL", (key_id,)
        ) == 1

    def key_for(self, secret: str) -> ApiKey | None:
        """The live key whose hash matches ``secret``; None if unknown or revoked."""
        row = self._one(f"SELECT {_KEY_COLUMNS} FROM keys WHERE hash = %s AND revoked_at IS NULL", (hash_key(secret),))
        return ApiKey(*row) if row else None

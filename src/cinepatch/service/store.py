"""The job store: jobs, API keys and quotas behind one small interface.

``JobStore`` is what the HTTP layer, the workers and the supervisor call. ``SQLiteStore`` is
the embedded implementation: one SQLite file in WAL mode, one connection per thread, every
state change a single short transaction. A worker *claims* a job with one ``UPDATE …
RETURNING`` under ``BEGIN IMMEDIATE``, so two workers can never take the same job; each claim
carries a fresh token, and heartbeats, progress and completion only apply while the token still
matches — a worker that was presumed dead and comes back cannot overwrite a requeued job.

SQLite serves one machine. For several (API servers and workers on other hosts sharing one
database), ``PostgresStore`` in ``store_postgres.py`` implements the same interface: claims
with ``SELECT … FOR UPDATE SKIP LOCKED``, leases judged by the database's clock, and change
events pushed with ``LISTEN/NOTIFY``. ``open_store`` picks one from the configuration. See
docs/service.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cinepatch.errors import LimitExceeded  # defined with the other errors; re-exported here

__all__ = [
    "ApiKey",
    "Job",
    "JobStore",
    "LimitExceeded",
    "PollingSubscription",
    "SQLiteStore",
    "Subscription",
    "connect",
    "open_store",
    "hash_key",
    "new_key",
    "ANONYMOUS",
]

ANONYMOUS = "anonymous"
ACTIVE = ("queued", "in_progress")
_DAY = 86400


def new_key() -> str:
    """A new API key: ``cpk_`` and 43 url-safe characters (256 bits)."""
    return "cpk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Keys are random 256-bit strings, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None
    concurrency: int | None  # None: the service default
    daily_quota: int | None


@dataclass(frozen=True)
class Job:
    id: str
    seq: int
    owner: str
    status: str  # queued | in_progress | completed | failed
    progress: int
    created_at: int
    started_at: int | None
    completed_at: int | None
    model: str
    seconds: str
    size: str
    prompt: str
    kind: str  # create | remix | extend | edit | loop | blend | recut | storyboard
    remixed_from_video_id: str | None
    spec: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    claimed_by: str | None
    claim_token: str | None
    notes: list[str] = field(default_factory=list)
    updated: float = 0.0



class Subscription(Protocol):
    """Wakes an SSE stream when a job may have changed; used as a context manager."""

    def __enter__(self) -> Subscription: ...
    def __exit__(self, *exc: object) -> None: ...
    async def wait(self, timeout: float) -> None:
        """Return when the job may have changed, or after at most ``timeout`` seconds."""
        ...


class PollingSubscription:
    """For a store without change notifications: wake every ``interval`` seconds to re-read."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval

    def __enter__(self) -> PollingSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(min(self.interval, timeout))


class JobStore(Protocol):
    # True when other hosts may share the store: nothing may then assume that a job left
    # in_progress belongs to this host, so only leases decide that a worker is gone.
    shared: bool
    # -- jobs, from the HTTP layer
    def create_job(self, job: dict[str, Any], *, concurrency: int, daily_quota: int) -> Job: ...
    def get(self, video_id: str, owner: str | None = None) -> Job | None: ...
    def list(self, owner: str, *, after: str | None, limit: int, order: str) -> tuple[list[Job], bool]: ...
    def delete(self, video_id: str, owner: str) -> Job | None: ...
    # -- jobs, from workers
    def claim(self, worker: str, *, lease_seconds: float) -> Job | None: ...
    def heartbeat(self, video_id: str, token: str, *, lease_seconds: float, progress: int | None = None) -> bool: ...
    def complete(self, video_id: str, token: str, result: dict[str, Any]) -> bool: ...
    def fail(self, video_id: str, token: str, error: dict[str, Any]) -> bool: ...
    # -- recovery, from the supervisor
    def recover(self, *, worker: str | None, reason: str, max_attempts: int) -> list[tuple[str, str]]: ...
    def recover_expired(self, *, reason: str, max_attempts: int) -> list[tuple[str, str]]: ...
    # -- keys
    def create_key(self, name: str, *, concurrency: int | None = None, daily_quota: int | None = None) -> tuple[ApiKey, str]: ...
    def list_keys(self) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str) -> bool: ...
    def key_for(self, secret: str) -> ApiKey | None: ...
    # -- events and housekeeping
    def subscribe(self, video_id: str) -> Subscription: ...
    def counts(self) -> dict[str, int]: ...
    def close(self) -> None: ...


def connect(target: str | Path) -> JobStore:
    """The store at ``target``: a ``postgresql://`` URL, or the path of a SQLite file."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from cinepatch.service.store_postgres import PostgresStore

        return PostgresStore(text)
    return SQLiteStore(Path(text))


def open_store(config: Any) -> JobStore:
    """The store a ``ServiceConfig`` names: its ``database`` URL, else SQLite in its data folder."""
    return connect(config.database or config.db_path)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
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
    lease_until REAL,
    notes TEXT NOT NULL DEFAULT '[]',
    deleted_at INTEGER,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, deleted_at, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    concurrency INTEGER,
    daily_quota INTEGER
);
"""

_JOB_COLUMNS = (
    "id, seq, owner, status, progress, created_at, started_at, completed_at, model, seconds, "
    "size, prompt, kind, remixed_from_video_id, spec, result, error, attempts, claimed_by, "
    "claim_token, notes, updated"
)


def interrupted(now: float, *, attempts: int, progress: int, notes: str, reason: str, max_attempts: int) -> tuple[str, str | None]:
    """What recovery writes for a running job whose worker is gone: its notes (JSON, with a
    line saying when and why) and, past ``max_attempts``, the error that fails it (JSON)."""
    note = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))} interrupted at {progress}%: {reason}"
    notes = json.dumps([*json.loads(notes), note])
    if attempts < max_attempts:
        return notes, None
    error = {"code": "interrupted", "message": f"generation was interrupted {attempts} time(s)"
             f" and was not retried again; last: {reason}"}
    return notes, json.dumps(error)


def _job(row: sqlite3.Row | tuple) -> Job:
    (id_, seq, owner, status, progress, created, started, completed, model, seconds, size,
     prompt, kind, remixed, spec, result, error, attempts, claimed_by, token, notes, updated) = row
    try:
        loaded = (json.loads(spec), json.loads(result) if result else None,
                  json.loads(error) if error else None, json.loads(notes))
    except (ValueError, TypeError) as exc:  # a damaged record reads as failed, not as an outage
        loaded = ({}, None, {"code": "unreadable_record", "message": f"the stored record is damaged: {exc}"}, [])
        status = "failed"
    return Job(
        id=id_, seq=seq, owner=owner, status=status, progress=progress, created_at=created,
        started_at=started, completed_at=completed, model=model, seconds=seconds, size=size,
        prompt=prompt, kind=kind, remixed_from_video_id=remixed, spec=loaded[0], result=loaded[1],
        error=loaded[2], attempts=attempts, claimed_by=claimed_by, claim_token=token, notes=loaded[3],
        updated=updated,
    )


def _key(row: tuple) -> ApiKey:
    return ApiKey(*row)


class SQLiteStore:
    """The embedded ``JobStore``: one SQLite file in WAL mode, safe across threads and processes."""

    shared = False  # one machine: a server that holds the data folder's lock owns every job

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(_SCHEMA)
        # keys' hashes, prompts and owners are private: the folder and database are the owner's
        # alone (SQLite gives its -wal and -shm files the database's mode)
        self.path.parent.chmod(0o700)
        self.path.chmod(0o600)

    # -- connections and transactions --------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection, immediate: bool) -> None:
            self.db = db
            self.immediate = immediate

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE" if self.immediate else "BEGIN")
            return self.db

        def __exit__(self, exc_type: object, *_: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self, immediate: bool = True) -> SQLiteStore._Tx:
        return SQLiteStore._Tx(self._db(), immediate)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- jobs: the HTTP layer -----------------------------------------------------------------

    def create_job(self, job: dict[str, Any], *, concurrency: int, daily_quota: int) -> Job:
        """Insert a queued job, checking the owner's limits in the same transaction."""
        now = time.time()
        day_start = int(now // _DAY * _DAY)
        with self._tx() as db:
            active = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE owner = ? AND status IN ('queued', 'in_progress')"
                " AND deleted_at IS NULL",
                (job["owner"],),
            ).fetchone()[0]
            if active >= concurrency:
                raise LimitExceeded("concurrency", concurrency, retry_after=5)
            today = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE owner = ? AND created_at >= ?", (job["owner"], day_start)
            ).fetchone()[0]
            if today >= daily_quota:
                raise LimitExceeded("daily_quota", daily_quota, retry_after=max(1, day_start + _DAY - int(now)))
            db.execute(
                "INSERT INTO jobs (id, owner, status, progress, created_at, model, seconds, size, prompt,"
                " kind, remixed_from_video_id, spec, updated) VALUES (?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job["id"], job["owner"], int(now), job["model"], job["seconds"], job["size"], job["prompt"],
                 job["kind"], job.get("remixed_from_video_id"), json.dumps(job["spec"], allow_nan=False), now),
            )
        found = self.get(job["id"])
        assert found is not None
        return found

    def get(self, video_id: str, owner: str | None = None) -> Job | None:
        if owner is None:
            row = self._db().execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ? AND deleted_at IS NULL", (video_id,)
            ).fetchone()
        else:
            row = self._db().execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ? AND owner = ? AND deleted_at IS NULL",
                (video_id, owner),
            ).fetchone()
        return _job(row) if row else None

    def list(self, owner: str, *, after: str | None, limit: int, order: str) -> tuple[list[Job], bool]:
        desc = order == "desc"
        args: list[object] = [owner]
        where = "owner = ? AND deleted_at IS NULL"
        if after is not None:
            row = self._db().execute("SELECT seq FROM jobs WHERE id = ? AND owner = ?", (after, owner)).fetchone()
            if row is None:
                raise KeyError(after)
            where += " AND seq < ?" if desc else " AND seq > ?"
            args.append(row[0])
        rows = self._db().execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq {'DESC' if desc else 'ASC'} LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [_job(r) for r in rows[:limit]], len(rows) > limit

    def delete(self, video_id: str, owner: str) -> Job | None:
        """Mark a job deleted (its record stays, hidden); a running job stops at its next heartbeat."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ? AND owner = ? AND deleted_at IS NULL",
                (video_id, owner),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET deleted_at = ?, claim_token = NULL, updated = ?,"
                " status = CASE WHEN status IN ('queued', 'in_progress') THEN 'failed' ELSE status END"
                " WHERE id = ?",
                (int(time.time()), time.time(), video_id),
            )
        return _job(row)

    # -- jobs: workers ------------------------------------------------------------------------

    def claim(self, worker: str, *, lease_seconds: float) -> Job | None:
        now = time.time()
        token = uuid.uuid4().hex
        with self._tx() as db:
            row = db.execute(
                "UPDATE jobs SET status = 'in_progress', claimed_by = ?, claim_token = ?, lease_until = ?,"
                " attempts = attempts + 1, started_at = COALESCE(started_at, ?), progress = 0, updated = ?"
                " WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' AND deleted_at IS NULL"
                " ORDER BY seq LIMIT 1) AND status = 'queued'"
                f" RETURNING {_JOB_COLUMNS}",
                (worker, token, now + lease_seconds, int(now), now),
            ).fetchone()
        return _job(row) if row else None

    def heartbeat(self, video_id: str, token: str, *, lease_seconds: float, progress: int | None = None) -> bool:
        """Extend the lease (and record progress); False when the job is no longer this claim's."""
        now = time.time()
        with self._tx() as db:
            if progress is None:
                cur = db.execute(
                    "UPDATE jobs SET lease_until = ? WHERE id = ? AND claim_token = ? AND status = 'in_progress'",
                    (now + lease_seconds, video_id, token),
                )
            else:
                cur = db.execute(
                    "UPDATE jobs SET lease_until = ?, progress = MAX(progress, ?), updated = ?"
                    " WHERE id = ? AND claim_token = ? AND status = 'in_progress'",
                    (now + lease_seconds, int(progress), now, video_id, token),
                )
            return cur.rowcount == 1

    def complete(self, video_id: str, token: str, result: dict[str, Any]) -> bool:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'completed', progress = 100, completed_at = ?, result = ?,"
                " seconds = COALESCE(?, seconds), claim_token = NULL, lease_until = NULL, updated = ?"
                " WHERE id = ? AND claim_token = ? AND status = 'in_progress'",
                (int(now), json.dumps(result), result.get("seconds_label"), now, video_id, token),
            )
            return cur.rowcount == 1

    def fail(self, video_id: str, token: str, error: dict[str, Any]) -> bool:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'failed', completed_at = ?, error = ?, claim_token = NULL,"
                " lease_until = NULL, updated = ? WHERE id = ? AND claim_token = ? AND status = 'in_progress'",
                (int(now), json.dumps(error), now, video_id, token),
            )
            return cur.rowcount == 1

    # -- recovery -----------------------------------------------------------------------------

    def _recover_where(self, where: str, args: tuple, *, reason: str, max_attempts: int) -> list[tuple[str, str]]:
        now = time.time()
        actions: list[tuple[str, str]] = []
        with self._tx() as db:
            rows = db.execute(
                f"SELECT id, attempts, progress, notes FROM jobs WHERE status = 'in_progress' AND {where}", args
            ).fetchall()
            for video_id, attempts, progress, notes in rows:
                notes, error = interrupted(
                    now, attempts=attempts, progress=progress, notes=notes, reason=reason, max_attempts=max_attempts
                )
                if error is not None:
                    db.execute(
                        "UPDATE jobs SET status = 'failed', completed_at = ?, error = ?, claim_token = NULL,"
                        " lease_until = NULL, notes = ?, updated = ? WHERE id = ?",
                        (int(now), error, notes, now, video_id),
                    )
                    actions.append((video_id, "failed"))
                else:
                    db.execute(
                        "UPDATE jobs SET status = 'queued', progress = 0, claimed_by = NULL, claim_token = NULL,"
                        " lease_until = NULL, notes = ?, updated = ? WHERE id = ?",
                        (notes, now, video_id),
                    )
                    actions.append((video_id, "requeued"))
        return actions

    def recover(self, *, worker: str | None, reason: str, max_attempts: int) -> list[tuple[str, str]]:
        """Requeue (or fail, past ``max_attempts``) the jobs ``worker`` held; every running job if None."""
        if worker is None:
            return self._recover_where("1", (), reason=reason, max_attempts=max_attempts)
        return self._recover_where("claimed_by = ?", (worker,), reason=reason, max_attempts=max_attempts)

    def recover_expired(self, *, reason: str, max_attempts: int) -> list[tuple[str, str]]:
        return self._recover_where("lease_until < ?", (time.time(),), reason=reason, max_attempts=max_attempts)

    def subscribe(self, video_id: str) -> PollingSubscription:
        """SQLite has no notifications: an SSE stream re-reads the job four times a second."""
        return PollingSubscription(0.25)

    def counts(self) -> dict[str, int]:
        rows = self._db().execute(
            "SELECT status, COUNT(*) FROM jobs WHERE deleted_at IS NULL GROUP BY status"
        ).fetchall()
        return {status: n for status, n in rows}

    # -- keys ---------------------------------------------------------------------------------

    def create_key(self, name: str, *, concurrency: int | None = None, daily_quota: int | None = None) -> tuple[ApiKey, str]:
        secret = new_key()
        key_id = "key_" + secrets.token_hex(6)
        with self._tx() as db:
            db.execute(
                "INSERT INTO keys (id, hash, name, prefix, created_at, concurrency, daily_quota)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, hash_key(secret), name, secret[:8], int(time.time()), concurrency, daily_quota),
            )
        key = self._key_by_id(key_id)
        assert key is not None
        return key, secret

    def _key_by_id(self, key_id: str) -> ApiKey | None:
        row = self._db().execute(
            "SELECT id, name, prefix, created_at, revoked_at, concurrency, daily_quota FROM keys WHERE id = ?",
            (key_id,),
        ).fetchone()
        return _key(row) if row else None

    def list_keys(self) -> list[ApiKey]:
        rows = self._db().execute(
            "SELECT id, name, prefix, created_at, revoked_at, concurrency, daily_quota FROM keys ORDER BY created_at"
        ).fetchall()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (int(time.time()), key_id)
            )
            return cur.rowcount == 1

    def key_for(self, secret: str) -> ApiKey | None:
        """The live key whose hash matches ``secret``; None if unknown or revoked."""
        row = self._db().execute(
            "SELECT id, name, prefix, created_at, revoked_at, concurrency, daily_quota FROM keys"
            " WHERE hash = ? AND revoked_at IS NULL",
            (hash_key(secret),),
        ).fetchone()
        return _key(row) if row else None

"""Starts the worker processes, restarts the ones that die, and recovers their jobs.

With the embedded SQLite store there is one supervisor per data folder, enforced by an
exclusive lock on ``server.lock``: at start it requeues every job left ``in_progress``
(nothing else can be running it), then watches its workers; when one exits, the job it held is
requeued — or failed, with the reason, once it has been interrupted ``max_attempts`` times —
and the worker is started again.

With a shared store (PostgreSQL) other hosts' servers and workers use the same jobs and
folder, so there is no lock and no recovery of "every running job" at start or stop: a job
is requeued only when the worker that held it exited here, or when its lease expired. Every
supervisor sweeps expired leases — with ``workers = 0`` that sweep is all it does.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from cinepatch.errors import CinepatchError
from cinepatch.service.config import ServiceConfig
from cinepatch.service.store import JobStore

__all__ = ["Supervisor", "DataDirBusy", "sweep_expired"]

log = logging.getLogger("cinepatch.service")


def sweep_expired(store: JobStore, config: ServiceConfig) -> list[tuple[str, str]]:
    """Requeue the jobs whose worker stopped heartbeating; a database outage is logged, not fatal."""
    try:
        actions = store.recover_expired(
            reason=f"no heartbeat for {config.lease_seconds:g} s", max_attempts=config.max_attempts
        )
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again
        log.warning("lease sweep failed: %s", exc)
        return []
    for video_id, action in actions:
        log.warning("lease expired: %s %s", action, video_id)
    return actions


class DataDirBusy(CinepatchError):
    """Another server already runs on this data folder."""


@dataclass
class _Worker:
    id: str
    process: subprocess.Popen[bytes]
    started: float


class Supervisor:
    def __init__(self, config: ServiceConfig, store: JobStore) -> None:
        self.config = config
        self.store = store
        self.workers: list[_Worker] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file = None
        self.recovered: list[tuple[str, str]] = []

    def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.store.shared:
            self._own_data_dir()
        # Workers are started from the supervisor thread, which lives as long as the server: a
        # worker's parent-death signal is tied to the thread that started it.
        self._thread = threading.Thread(target=self._run, name="cinepatch-supervisor", daemon=True)
        self._thread.start()

    def _own_data_dir(self) -> None:
        """Lock the data folder, then requeue what a previous server left running in it."""
        self._lock_file = open(self.config.data_dir / "server.lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(f"{self.config.data_dir}: another cinepatch server is using this data folder") from None
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        self.recovered = self.store.recover(
            worker=None, reason="the server stopped while the job was running", max_attempts=self.config.max_attempts
        )
        for video_id, action in self.recovered:
            log.warning("recovered %s: %s", video_id, action)

    def _spawn(self) -> _Worker:
        worker_id = f"w-{uuid.uuid4().hex[:10]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "cinepatch.service.worker", "--config", self.config.to_json(), "--worker-id", worker_id],
            stdin=subprocess.DEVNULL,
        )
        log.info("started worker %s (pid %d)", worker_id, process.pid)
        return _Worker(worker_id, process, time.monotonic())

    def _run(self) -> None:
        self.workers = [self._spawn() for _ in range(self.config.workers)]
        last_lease_check = 0.0
        while not self._stop.wait(0.25):
            for i, worker in enumerate(self.workers):
                code = worker.process.poll()
                if code is None:
                    continue
                reason = f"worker process {worker.process.pid} exited with status {code}"
                for video_id, action in self.store.recover(
                    worker=worker.id, reason=reason, max_attempts=self.config.max_attempts
                ):
                    log.warning("%s; %s %s", reason, action, video_id)
                if self._stop.is_set():
                    break
                if time.monotonic() - worker.started < 2.0:  # crash loop: don't spin
                    time.sleep(2.0)
                self.workers[i] = self._spawn()
            now = time.monotonic()
            if now - last_lease_check > self.config.lease_seconds / 2:
                last_lease_check = now
                sweep_expired(self.store, self.config)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        reason, attempts = "the server was stopped", self.config.max_attempts + 1
        if self.store.shared:  # only this server's own workers' jobs; other hosts' keep running
            for worker in self.workers:
                self.store.recover(worker=worker.id, reason=reason, max_attempts=attempts)
        else:
            self.store.recover(worker=None, reason=reason, max_attempts=attempts)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def alive(self) -> int:
        return sum(1 for w in self.workers if w.process.poll() is None)

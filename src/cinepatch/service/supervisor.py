"""Starts the worker processes, restarts the ones that die, and recovers their jobs.

One supervisor per data folder, enforced by an exclusive lock on ``server.lock``: at start it
requeues every job left ``in_progress`` (nothing else can be running it), then watches its
workers; when one exits, the job it held is requeued — or failed, with the reason, once it has
been interrupted ``max_attempts`` times — and the worker is started again.
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
from cinepatch.service.store import SQLiteStore

__all__ = ["Supervisor", "DataDirBusy"]

log = logging.getLogger("cinepatch.service")


class DataDirBusy(CinepatchError):
    """Another server already runs on this data folder."""


@dataclass
class _Worker:
    id: str
    process: subprocess.Popen[bytes]
    started: float


class Supervisor:
    def __init__(self, config: ServiceConfig, store: SQLiteStore) -> None:
        self.config = config
        self.store = store
        self.workers: list[_Worker] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file = None
        self.recovered: list[tuple[str, str]] = []

    def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
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
        # Workers are started from the supervisor thread, which lives as long as the server: a
        # worker's parent-death signal is tied to the thread that started it.
        self._thread = threading.Thread(target=self._run, name="cinepatch-supervisor", daemon=True)
        self._thread.start()

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
                self.store.recover_expired(
                    reason=f"no heartbeat for {self.config.lease_seconds:g} s", max_attempts=self.config.max_attempts
                )

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
        self.store.recover(worker=None, reason="the server was stopped", max_attempts=self.config.max_attempts + 1)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def alive(self) -> int:
        return sum(1 for w in self.workers if w.process.poll() is None)

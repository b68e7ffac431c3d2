"""The real-server harness: `cinepatch serve` on loopback, driving the tiny stand-in generator.

Used by the tests (through conftest.py) and by benchmarks/service_*.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).parent
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@dataclass
class Server:
    data_dir: Path
    settings: dict[str, object]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "cinepatch", *args, "--data-dir", str(self.data_dir)],
            check=True, capture_output=True, text=True, env=self.env(),
        )
        return out.stdout.strip()

    def new_key(self, name: str = "test", *extra: str) -> str:
        return self.cli("keys", "create", "--name", name, *extra)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        return env

    def start(self, wait_workers: bool = True) -> None:
        config = self.data_dir.parent / f"{self.data_dir.name}.toml"
        config.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in self.settings.items()))
        self.log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cinepatch", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--config", str(config), "--log-level", "warning"],
            env=self.env(), stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                health = httpx.get(f"{self.url}/healthz", timeout=2).json()
                if not wait_workers or health["workers"] >= int(self.settings.get("workers", 1)):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


def make_server(tmp_path: Path, **settings: object) -> Server:
    defaults: dict[str, object] = {
        "generator": "standin:make",
        "prompt_check": "standin:check_prompt",
        "generator_options": {"step_seconds": 0.02, "steps": 10},
        "workers": 1,
        "lease_seconds": 6.0,
    }
    defaults.update(settings)
    return Server(tmp_path / "data", defaults)

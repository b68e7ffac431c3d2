"""Fixtures for the service tests; the harness itself is in harness.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Server, make_server
from postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def factory(**settings: object) -> Server:
        server = make_server(tmp_path, **settings)
        servers.append(server)
        server.start()
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory) -> Server:
    return server_factory()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a whole module; tests keep apart by each using a fresh key."""
    server = make_server(tmp_path_factory.mktemp("shared"), concurrency_per_key=8)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def real(server_factory, tmp_path):
    """A server whose jobs run the real Studio on the world oracle (the default model alias)."""
    return server_factory(
        studio_config_dir=str(tmp_path / "studio-config"),
        studio_data_dir=str(tmp_path / "studio-data"),
        generator="cinepatch.service.generator:default_studio",
        prompt_check="cinepatch.service.generator:check_prompt",
        models={"sora-2": "world", "world": "world"},
        default_model="sora-2",
        lease_seconds=60.0,
    )

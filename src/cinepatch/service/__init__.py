"""The studio service: an OpenAI-compatible Videos API, a durable job queue and the web studio.

::

    HTTP (uvicorn, event loop)  ──►  JobStore (SQLite, WAL)  ◄──  worker processes
      api.py: validate, enqueue,        store.py: jobs, keys,        worker.py: claim a job,
      read; never generates             quotas, atomic claims        Studio.create, previews
                     supervisor.py: starts workers, restarts them, requeues interrupted jobs

Start it with ``cinepatch serve``. On several hosts the store is PostgreSQL
(``store_postgres.py``; ``--db``), API servers run with ``--workers 0`` and ``cinepatch
worker`` runs the worker loop on the GPU hosts; see docs/service.md.
"""

from __future__ import annotations

from cinepatch.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]


def create_app(config: ServiceConfig, *, supervise: bool = True):  # -> fastapi.FastAPI
    """The ASGI app (FastAPI is imported only here, so the package imports without it)."""
    from cinepatch.service.api import create_app as build

    return build(config, supervise=supervise)

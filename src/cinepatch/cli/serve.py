"""`cinepatch serve` (the studio service), `cinepatch worker` and `cinepatch keys create|list|revoke`.

One machine::

    cinepatch serve                                     # SQLite and one worker under --data-dir

Several hosts, one PostgreSQL database and one shared folder (docs/service.md)::

    cinepatch serve  --db postgresql://cinepatch@db/cinepatch --storage /mnt/cinepatch --workers 0
    cinepatch worker --db postgresql://cinepatch@db/cinepatch --storage /mnt/cinepatch
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import time
from pathlib import Path

from cinepatch.errors import InvalidParameter

__all__ = ["register"]


def _default_data_dir() -> Path:
    from cinepatch.config import default_dirs

    return default_dirs()[1] / "service"


DATA_DIR_HELP = "jobs, keys and videos (default: the XDG data folder, ~/.local/share/cinepatch/service)"
DB_HELP = "a postgresql:// URL: a job store shared by several servers and workers (default: SQLite in --data-dir)"
STORAGE_HELP = "the folder for videos and uploads; with --db, one all hosts share (same as --data-dir)"


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", "--storage", dest="data_dir", type=Path, help=DATA_DIR_HELP + "; " + STORAGE_HELP)
    parser.add_argument("--db", help=DB_HELP)


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the studio: the OpenAI-compatible Videos API and the web page",
        description="Serve the Videos API at /v1 and the web studio at /. Generation runs in worker"
        " processes; jobs and keys live in SQLite under --data-dir, or in the PostgreSQL database --db"
        " names, which several servers and `cinepatch worker`s on other hosts may share.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    _add_location(serve)
    serve.add_argument("--config", type=Path, help="a TOML file of ServiceConfig fields")
    serve.add_argument("--workers", type=int,
                       help="generation worker processes (default 1); 0: only queue and serve, for `cinepatch worker`s")
    serve.add_argument("--generator", help="'module:callable' building the generator (default: cinepatch's Studio)")
    serve.add_argument("--allow-anonymous", action="store_true", default=None,
                       help="accept requests without a key (only when --host is a loopback address)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    worker = subparsers.add_parser(
        "worker",
        help="run generation workers without the HTTP server (for hosts sharing a --db)",
        description="Claim jobs from the shared job store and generate them; outputs go to --storage,"
        " the folder the API servers serve from. Stop with Ctrl-C (or SIGTERM): a job in hand is requeued.",
    )
    _add_location(worker)
    worker.add_argument("--config", type=Path, help="a TOML file of ServiceConfig fields")
    worker.add_argument("--generator", help="'module:callable' building the generator (default: cinepatch's Studio)")
    worker.add_argument("--model", help="the model alias or folder every job on this worker uses (default: the job's)")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(func=_worker)

    keys = subparsers.add_parser("keys", help="create, list and revoke API keys of the studio service")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", help="make a key and print it (it is shown only once)")
    _add_location(create)
    create.add_argument("--name", default="default")
    create.add_argument("--concurrency", type=int, help="jobs queued or running at once (default: the service's)")
    create.add_argument("--daily-quota", type=int, help="jobs a UTC day (default: the service's)")
    create.set_defaults(func=_keys_create)
    list_ = keys_sub.add_parser("list", help="list keys (ids and prefixes, never the secrets)")
    _add_location(list_)
    list_.set_defaults(func=_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    _add_location(revoke)
    revoke.set_defaults(func=_keys_revoke)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _service_config(args: argparse.Namespace, **overrides: object):  # -> ServiceConfig
    """The ServiceConfig from --config and the flags, tied to this installation's Studio."""
    import dataclasses

    from cinepatch.config import default_dirs
    from cinepatch.service import ServiceConfig

    config = ServiceConfig.load(
        args.config, data_dir=args.data_dir or _default_data_dir(), database=args.db, generator=args.generator,
        **overrides,
    )
    if config.studio_config_dir is None and config.studio_data_dir is None:
        # The same installation as `cinepatch generate`: its signing keys, presets and ledger.
        config_dir, data_dir = default_dirs()
        yaml_file = config.studio_config or (config_dir / "config.yaml" if (config_dir / "config.yaml").exists() else None)
        config = dataclasses.replace(config, studio_config_dir=config_dir, studio_data_dir=data_dir, studio_config=yaml_file)
    return config


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cinepatch.service import create_app

    config = _service_config(args, workers=args.workers, allow_anonymous=args.allow_anonymous)
    if config.allow_anonymous and not _is_loopback(args.host):
        raise InvalidParameter("--allow-anonymous", args.host, "only with a loopback --host (127.0.0.1, ::1)")
    os.umask(0o077)  # jobs, keys, uploads and videos are the service owner's alone (workers inherit it)
    if not config.database:  # a shared database is many servers' by design
        _refuse_if_busy(config.data_dir)
    app = create_app(config)
    where = f"jobs in {config.database.rpartition('@')[2]}, files in" if config.database else "data in"
    print(f"cinepatch studio on http://{args.host}:{args.port}/ ({where} {config.data_dir})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0


def _refuse_if_busy(data_dir: Path) -> None:
    """Refuse at once, in one line, when another server holds the data folder (the supervisor
    takes the lock for good when the app starts; refusing there would print a traceback)."""
    import fcntl

    from cinepatch.service.supervisor import DataDirBusy

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(data_dir / "server.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(f"{data_dir}: another cinepatch server is using this data folder") from None
        fcntl.flock(lock, fcntl.LOCK_UN)


def _worker(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from cinepatch.service.generator import load_callable
    from cinepatch.service.store import open_store
    from cinepatch.service.worker import serve_jobs, with_model, worker_name

    config = _service_config(args)
    worker_id = worker_name()
    logging.basicConfig(level=args.log_level.upper(), format=f"%(asctime)s {worker_id} %(levelname)s %(message)s")
    store = open_store(config)
    generator = load_callable(config.generator)(config)
    if args.model is not None:
        generator = with_model(generator, args.model)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt  # leave the job in hand at once; it is requeued below

    signal.signal(signal.SIGTERM, on_signal)
    print(f"cinepatch worker {worker_id} ready (files in {config.data_dir})", flush=True)
    try:
        serve_jobs(store, config, generator, worker_id, stop=stop, follow_parent=False, sweep=True)
    except KeyboardInterrupt:
        pass
    finally:
        store.recover(worker=worker_id, reason="the worker was stopped", max_attempts=config.max_attempts + 1)
        store.close()
    return 0


def _store(args: argparse.Namespace):  # -> JobStore
    from cinepatch.service.config import ServiceConfig
    from cinepatch.service.store import open_store

    return open_store(ServiceConfig(data_dir=args.data_dir or _default_data_dir(), database=args.db))


def _keys_create(args: argparse.Namespace) -> int:
    key, secret = _store(args).create_key(
        args.name, concurrency=args.concurrency, daily_quota=args.daily_quota
    )
    print(secret)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    print(f"{'id':<18} {'name':<16} {'prefix':<10} {'created (UTC)':<20} {'limits':<14} status")
    for key in _store(args).list_keys():
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(key.created_at))
        limits = f"{key.concurrency or '-'}/{key.daily_quota or '-'}"
        status = "revoked" if key.revoked_at else "active"
        print(f"{key.id:<18} {key.name:<16} {key.prefix + '…':<10} {created:<20} {limits:<14} {status}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    if not _store(args).revoke_key(args.key_id):
        raise InvalidParameter("key_id", args.key_id, "the id of an active key (see `cinepatch keys list`)")
    print(f"revoked {args.key_id}")
    return 0

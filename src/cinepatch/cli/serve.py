"""`cinepatch serve` (the studio service) and `cinepatch keys create|list|revoke`."""

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


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the studio: the OpenAI-compatible Videos API and the web page",
        description="Serve the Videos API at /v1 and the web studio at /. Generation runs in worker"
        " processes; jobs, keys and the ledger live in SQLite under --data-dir.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    serve.add_argument("--config", type=Path, help="a TOML file of ServiceConfig fields")
    serve.add_argument("--workers", type=int, help="generation worker processes (default 1)")
    serve.add_argument("--generator", help="'module:callable' building the generator (default: cinepatch's Studio)")
    serve.add_argument("--allow-anonymous", action="store_true", default=None,
                       help="accept requests without a key (only when --host is a loopback address)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    keys = subparsers.add_parser("keys", help="create, list and revoke API keys of the studio service")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", help="make a key and print it (it is shown only once)")
    create.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    create.add_argument("--name", default="default")
    create.add_argument("--concurrency", type=int, help="jobs queued or running at once (default: the service's)")
    create.add_argument("--daily-quota", type=int, help="jobs a UTC day (default: the service's)")
    create.set_defaults(func=_keys_create)
    list_ = keys_sub.add_parser("list", help="list keys (ids and prefixes, never the secrets)")
    list_.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    list_.set_defaults(func=_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    revoke.set_defaults(func=_keys_revoke)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cinepatch.service import ServiceConfig, create_app

    config = ServiceConfig.load(
        args.config, data_dir=args.data_dir or _default_data_dir(), workers=args.workers, generator=args.generator,
        allow_anonymous=args.allow_anonymous,
    )
    if config.studio_config_dir is None and config.studio_data_dir is None:
        # The same installation as `cinepatch generate`: its signing keys, presets and ledger.
        import dataclasses

        from cinepatch.config import default_dirs

        config_dir, data_dir = default_dirs()
        yaml_file = config.studio_config or (config_dir / "config.yaml" if (config_dir / "config.yaml").exists() else None)
        config = dataclasses.replace(config, studio_config_dir=config_dir, studio_data_dir=data_dir, studio_config=yaml_file)
    if config.allow_anonymous and not _is_loopback(args.host):
        raise InvalidParameter("--allow-anonymous", args.host, "only with a loopback --host (127.0.0.1, ::1)")
    os.umask(0o077)  # jobs, keys, uploads and videos are the service owner's alone (workers inherit it)
    _refuse_if_busy(config.data_dir)
    app = create_app(config)
    print(f"cinepatch studio on http://{args.host}:{args.port}/ (data in {config.data_dir})", flush=True)
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


def _store(data_dir: Path | None):  # -> SQLiteStore
    from cinepatch.service.config import ServiceConfig
    from cinepatch.service.store import SQLiteStore

    return SQLiteStore(ServiceConfig(data_dir=data_dir or _default_data_dir()).db_path)


def _keys_create(args: argparse.Namespace) -> int:
    key, secret = _store(args.data_dir).create_key(
        args.name, concurrency=args.concurrency, daily_quota=args.daily_quota
    )
    print(secret)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    print(f"{'id':<18} {'name':<16} {'prefix':<10} {'created (UTC)':<20} {'limits':<14} status")
    for key in _store(args.data_dir).list_keys():
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(key.created_at))
        limits = f"{key.concurrency or '-'}/{key.daily_quota or '-'}"
        status = "revoked" if key.revoked_at else "active"
        print(f"{key.id:<18} {key.name:<16} {key.prefix + '…':<10} {created:<20} {limits:<14} {status}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    if not _store(args.data_dir).revoke_key(args.key_id):
        raise InvalidParameter("key_id", args.key_id, "the id of an active key (see `cinepatch keys list`)")
    print(f"revoked {args.key_id}")
    return 0

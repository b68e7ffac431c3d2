"""The `cinepatch` command.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its parser and sets ``func`` — the handler, which takes the parsed arguments and returns an exit
code. Handlers import heavy libraries (torch, av) inside themselves so `cinepatch --help` is
instant. Errors that cinepatch raises on purpose are printed as one line and exit 2 (bad input)
or 3 (refused by moderation); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cinepatch import __version__
from cinepatch.errors import CinepatchError, Refused

__all__ = ["main", "build_parser"]

# Command-group modules, in the order `--help` lists them. A module that is missing (a part of
# the product not built yet) is skipped rather than breaking every other command.
_GROUPS = (
    "generate",
    "plan",
    "edit",
    "world",
    "train",
    "model",
    "verify",
    "serve",
    "batch",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cinepatch",
        description="Open text-to-video with Sora-style edits and provenance on every output.",
    )
    parser.add_argument("--version", action="version", version=f"cinepatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _GROUPS:
        try:
            module = importlib.import_module(f"cinepatch.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cinepatch.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Refused as exc:
        print(f"cinepatch: refused ({exc.category}): {exc}", file=sys.stderr)
        return 3
    except CinepatchError as exc:
        print(f"cinepatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cinepatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

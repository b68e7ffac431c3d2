"""`cinepatch batch`: one video per line of a JSONL file, on Ray or in local processes.

::

    cinepatch batch prompts.jsonl --out videos/                       # a local Ray instance
    cinepatch batch prompts.jsonl --out videos/ --address auto        # the Ray cluster this host is in
    cinepatch batch prompts.jsonl --out videos/ --address ray://head:10001 --workers 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="make one video per line of a JSONL file (on Ray, or in local processes)",
        description="Each line is a JSON object: 'prompt' and any generate or edit option (seconds, size,"
        " fps, seed, model, steps, guidance, negative, preset, expand, edit, sources, params). Every video"
        " takes the same path as `cinepatch generate` (moderation, frame review, marks, C2PA, ledger)."
        " OUT/manifest.jsonl records each line as completed, refused or failed; running the command"
        " again skips finished lines. Exit status 1 when any line failed.",
    )
    parser.add_argument("prompts", type=Path, help="the JSONL file")
    parser.add_argument("--out", type=Path, required=True, help="folder for the videos and manifest.jsonl")
    parser.add_argument("--address", help="'auto' or ray://HOST:PORT: an existing Ray cluster (default: a local instance)")
    parser.add_argument("--workers", type=int, default=2, help="videos made at once (default 2)")
    parser.add_argument("--local", action="store_true", help="use local processes even when Ray is installed")
    parser.add_argument("--generator", help="'module:callable' building the generator (default: cinepatch's Studio)")
    group = parser.add_argument_group("installation")
    group.add_argument("--config", type=Path, help="settings file (YAML); default CONFIG_DIR/config.yaml")
    group.add_argument("--config-dir", type=Path, help="signing keys and presets (default ~/.config/cinepatch)")
    group.add_argument("--data-dir", type=Path, help="the ledger (default ~/.local/share/cinepatch)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cinepatch.batch import BatchConfig, run_batch
    from cinepatch.config import default_dirs

    config_dir, data_dir = default_dirs()
    config_dir = args.config_dir or config_dir
    yaml_file = args.config or (config_dir / "config.yaml" if (config_dir / "config.yaml").exists() else None)
    options = {"generator": args.generator} if args.generator else {}
    config = BatchConfig(
        prompts=args.prompts, out=args.out, address=args.address, workers=args.workers, use_ray=not args.local,
        studio_config=yaml_file, studio_config_dir=config_dir, studio_data_dir=args.data_dir or data_dir, **options,
    )
    summary = run_batch(config, say=lambda text: print(f"cinepatch: {text}", file=sys.stderr))
    print(f"{summary.completed} completed, {summary.refused} refused, {summary.failed} failed"
          f" ({summary.skipped} already finished) — {args.out / 'manifest.jsonl'}")
    return 1 if summary.failed else 0

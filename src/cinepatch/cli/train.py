"""`cinepatch train`: train the DiT (one process, or under torchrun — see cinepatch.train)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "config_from_args"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a text-to-video model (DiT) on the world or a folder of clips",
        description="Train the DiT with rectified flow. Runs alone or under "
        "`torchrun --nproc_per_node N -m cinepatch.train` (DDP; --set parallel=fsdp). "
        "Resumes from OUT/checkpoint; OUT/pipeline is a ready model folder.",
        epilog="Example: cinepatch train --data world --out runs/world --steps 300 "
        "--set batch_size=8 dit.depth=2",
    )
    parser.add_argument("--data", help="'world' or a folder with captions.jsonl / captions.csv")
    parser.add_argument("--out", dest="out_dir", help="run folder (checkpoint, pipeline, metrics, samples)")
    parser.add_argument("--steps", dest="max_steps", type=int, help="train up to this step")
    parser.add_argument("--batch-size", type=int, help="global batch size (split across ranks)")
    parser.add_argument("--model", help="DiT preset (world, tiny, small, base, …)")
    parser.add_argument("--vae", dest="vae_path", help="a trained CausalVAE folder (frozen)")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-resume", dest="resume", action="store_false", default=None,
                        help="start over even if OUT/checkpoint exists")
    parser.add_argument("--config", type=Path, help="a JSON file of TrainConfig fields")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="set any TrainConfig field (dit.KEY / vae.KEY for model fields); "
                        "unknown keys are an error")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):  # -> TrainConfig
    """The config the flags describe: defaults ← --config file ← explicit flags ← --set."""
    import dataclasses

    from cinepatch.errors import InvalidParameter
    from cinepatch.train import TrainConfig, apply_overrides

    config = TrainConfig()
    if args.config is not None:
        try:
            values = json.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidParameter("--config", str(args.config), "a readable JSON object of TrainConfig fields") from exc
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidParameter("--config", unknown, "fields of TrainConfig: " + ", ".join(sorted(known)))
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        config = dataclasses.replace(config, **values)
    flags = ("data", "out_dir", "max_steps", "batch_size", "model", "vae_path", "lr", "seed", "resume")
    explicit = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    config = dataclasses.replace(config, **explicit)
    return apply_overrides(config, args.overrides)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from cinepatch.train import main

    config = config_from_args(args)
    if args.print_config:
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return 0
    summary = main(config)
    if summary:
        print(f"done: step {summary['step']}, loss {summary['loss']:.4f}, model folder {summary['out_dir']}/pipeline")
    return 0

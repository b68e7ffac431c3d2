"""`cinepatch generate PROMPT... -o OUT`: text-to-video (and image-to-video with --image)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cinepatch.cli.common import (
    add_sampling_arguments,
    add_studio_arguments,
    build_request,
    check_output,
    create,
    make_studio,
    show_warnings,
)

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="make a video from a prompt",
        description="Make videos from prompts. Every output is moderated, reviewed, marked, "
        "watermarked and signed with C2PA content credentials.",
    )
    parser.add_argument("prompts", nargs="+", metavar="PROMPT", help="one or more prompts")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="out.mp4, out.gif, or a folder for PNG frames; with several prompts "
                        "or seeds each output gets a -N suffix")
    parser.add_argument("--seed", type=int, nargs="+", help="one or more seeds (default: random)")
    parser.add_argument("--image", type=Path, help="animate this still (image-to-video)")
    parser.add_argument("--image-at", type=_image_at, default="start",
                        help="where the image sits: start, end, or a time in seconds (default start)")
    add_sampling_arguments(parser)
    add_studio_arguments(parser)
    parser.set_defaults(func=run)


def _image_at(text: str) -> str | float:
    if text in ("start", "end"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not start, end, or a time in seconds")
    return value


def run(args: argparse.Namespace) -> int:
    check_output(args.output)
    studio = make_studio(args)
    seeds = args.seed or [None]
    jobs = [(prompt, seed) for prompt in args.prompts for seed in seeds]
    image = {"edit": "image", "sources": (args.image,), "params": {"at": args.image_at}} if args.image else {}
    with show_warnings():
        for index, (prompt, seed) in enumerate(jobs):
            out = args.output
            if len(jobs) > 1:
                out = out.with_name(f"{out.stem}-{index}{out.suffix}")
            request = build_request(args, prompt=prompt, seed=seed, size=args.size, **image)
            create(studio, request, out=out, label=f"[{index + 1}/{len(jobs)}]")
    return 0

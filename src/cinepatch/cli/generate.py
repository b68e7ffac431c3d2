"""`cinepatch generate PROMPT... -o OUT`: text-to-video (and image-to-video with --image).

With ``--plan plan.yaml`` (from `cinepatch plan`, edited or written by hand) the model is given
that scene plan: the plan's canvas sets size, fps and length unless an option overrides them,
and then the plan is resampled to fit. The prompt may be left out: the plan's own description
(its phrases and background) is used.
"""

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
    parser.add_argument("prompts", nargs="*", metavar="PROMPT", help="one or more prompts (optional with --plan)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="out.mp4, out.gif, or a folder for PNG frames; with several prompts "
                        "or seeds each output gets a -N suffix")
    parser.add_argument("--seed", type=int, nargs="+", help="one or more seeds (default: random)")
    parser.add_argument("--image", type=Path, help="animate this still (image-to-video)")
    parser.add_argument("--plan", type=Path, help="render this scene plan (YAML or JSON, see `cinepatch plan`)")
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


def _with_plan(args: argparse.Namespace, request, plan):  # noqa: ANN001, ANN202 (types imported lazily)
    """``request`` given ``plan``, on the plan's canvas where no option overrides it."""
    import dataclasses

    fps = args.fps if args.fps is not None else plan.canvas.fps
    if args.frames is not None or args.seconds is not None:
        frames = request.frame_count  # the length asked for; the plan is resampled to it
    else:
        frames = max(1, round(plan.canvas.frames * fps / plan.canvas.fps))  # the plan's duration
    width, height = args.size if args.size is not None else (plan.canvas.width, plan.canvas.height)
    # A prompt made from the plan is already in world words: expanding it would only add "stays
    # still" for motion the plan holds and the words cannot.
    expand = request.expand and bool(args.prompts)
    return dataclasses.replace(request, plan=plan, fps=fps, frames=frames, width=width, height=height, expand=expand)


def run(args: argparse.Namespace) -> int:
    from cinepatch.errors import InvalidParameter

    check_output(args.output)
    plan = None
    if args.plan is not None:
        from cinepatch.planning import read_plan

        plan = read_plan(args.plan)
    prompts = args.prompts or ([plan.describe()] if plan is not None else [])
    if not prompts:
        raise InvalidParameter("PROMPT", None, "at least one prompt (or --plan)")
    studio = make_studio(args)
    seeds = args.seed or [None]
    jobs = [(prompt, seed) for prompt in prompts for seed in seeds]
    image = {"edit": "image", "sources": (args.image,), "params": {"at": args.image_at}} if args.image else {}
    with show_warnings():
        for index, (prompt, seed) in enumerate(jobs):
            out = args.output
            if len(jobs) > 1:
                out = out.with_name(f"{out.stem}-{index}{out.suffix}")
            request = build_request(args, prompt=prompt, seed=seed, size=args.size, **image)
            if plan is not None:
                request = _with_plan(args, request, plan)
            create(studio, request, out=out, label=f"[{index + 1}/{len(jobs)}]")
    return 0

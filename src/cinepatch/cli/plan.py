"""`cinepatch plan PROMPT -o plan.yaml`: write the scene plan of a prompt, to read, edit and render.

::

    cinepatch plan "a red circle bounces on a navy background" -o plan.yaml --size 128x128 --seconds 2
    cinepatch generate --plan plan.yaml -o out.mp4     # renders the (edited) plan

The planner is the installation's: the chat planner when prompt expansion uses an endpoint
(``expansion:`` in the config), else the offline world planner. See docs/plans.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cinepatch.cli.common import add_studio_arguments, make_studio, parse_size
from cinepatch.errors import CinepatchError, InvalidParameter

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="write a prompt's scene plan (boxes over time) as YAML",
        description="Plan a prompt: where each object is on every frame, as an editable YAML file "
        "that `cinepatch generate --plan` renders.",
    )
    parser.add_argument("prompt", metavar="PROMPT")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="the plan file to write (.yaml, .yml or .json)")
    parser.add_argument("--size", type=parse_size, default=(128, 128), metavar="WxH", help="canvas (default 128x128)")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration (default 4)")
    parser.add_argument("--fps", type=int, default=16, help="frames per second (default 16)")
    parser.add_argument("--seed", type=int, default=0,
                        help="where the planner chooses, it draws from this seed (default 0)")
    add_studio_arguments(parser)
    parser.set_defaults(func=run)


def _canvas(args: argparse.Namespace) -> dict[str, int]:
    """The canvas the options ask for, checked against the plan format (errors name the option)."""
    from cinepatch.planning import Canvas

    if not 0 < args.seconds <= 60:
        raise InvalidParameter("--seconds", args.seconds, "more than 0, at most 60")
    width, height = args.size
    canvas = {"width": width, "height": height, "fps": args.fps, "frames": max(1, round(args.seconds * args.fps))}
    try:
        Canvas(**canvas)
    except InvalidParameter as exc:
        option = {"canvas.width": "--size", "canvas.height": "--size", "canvas.fps": "--fps"}.get(exc.name, "--seconds")
        raise InvalidParameter(option, exc.value, exc.allowed) from None
    return canvas


def run(args: argparse.Namespace) -> int:
    from cinepatch.planning import write_plan

    if args.output.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InvalidParameter("--output", str(args.output), "a path ending in .yaml, .yml or .json")
    if args.seed < 0:
        raise InvalidParameter("--seed", args.seed, "0 or more")
    canvas = _canvas(args)
    result = make_studio(args).planner().plan(args.prompt, **canvas, seed=args.seed)
    for message in result.warnings:
        print(f"cinepatch: warning: {message}", file=sys.stderr)
    if result.plan is None:
        raise CinepatchError(f"no planner could plan {args.prompt!r}")
    write_plan(result.plan, args.output)
    print(
        f"wrote {args.output} ({len(result.plan.objects)} objects, {canvas['width']}x{canvas['height']}, "
        f"{canvas['frames']} frames at {canvas['fps']} fps, {result.planner} planner)"
    )
    return 0

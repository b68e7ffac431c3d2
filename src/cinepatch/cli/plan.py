"""`cinepatch plan PROMPT -o plan.yaml`: write the scene plan of a prompt, to read, edit and render.

::

    cinepatch plan "a red circle bounces on a navy background" -o plan.yaml --size 128x128 --seconds 2
    cinepatch generate --plan plan.yaml -o out.mp4     # renders the (edited) plan
    cinepatch plan --from out.mp4 -o again.yaml        # the plan a video was made with (ledger)

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
    parser.add_argument("prompt", nargs="?", metavar="PROMPT")
    parser.add_argument("--from", dest="video", type=Path, metavar="VIDEO",
                        help="instead of a prompt: the plan a video made here was given (its ledger entry)")
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


def _from_video(args: argparse.Namespace) -> int:
    """Write the plan stored in the ledger entry of ``args.video`` (found by watermark or hash)."""
    from cinepatch.planning import ScenePlan, write_plan
    from cinepatch.provenance import verify

    report = verify(args.video, ledger=make_studio(args).config.ledger_path)
    if report.ledger is None:
        raise CinepatchError(f"{args.video}: not in this installation's ledger, so its plan is unknown")
    data = report.ledger.parameters.get("plan")
    if data is None:
        raise CinepatchError(f"{args.video}: made without a scene plan")
    plan = ScenePlan.from_dict(data)
    write_plan(plan, args.output)
    planner = report.ledger.parameters.get("planner")
    print(f"wrote {args.output} (the plan {args.video} was made with, by the {planner} planner)")
    return 0


def run(args: argparse.Namespace) -> int:
    from cinepatch.planning import write_plan

    if args.output.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InvalidParameter("--output", str(args.output), "a path ending in .yaml, .yml or .json")
    if (args.prompt is None) == (args.video is None):
        raise InvalidParameter("PROMPT", args.prompt, "a prompt or --from VIDEO, one of them")
    if args.video is not None:
        return _from_video(args)
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
        f"wrote {args.output} ({len(result.plan.objects)} object{'s' * (len(result.plan.objects) > 1)}, "
        f"{canvas['width']}x{canvas['height']}, "
        f"{canvas['frames']} frames at {canvas['fps']} fps, {result.planner} planner)"
    )
    return 0

"""`cinepatch edit NAME ...`: Sora's edits from the command line.

::

    cinepatch edit image PROMPT --image still.png [--at start|end|SECONDS] -o out.mp4
    cinepatch edit extend VIDEO PROMPT --add 2 [--backward] -o out.mp4
    cinepatch edit remix VIDEO PROMPT [--strength S] -o out.mp4
    cinepatch edit recut VIDEO PROMPT --range 1:2 [--range 0:0.5] [--at 1] --seconds 6 -o out.mp4
    cinepatch edit loop PROMPT [--video VIDEO] [--bridge 1] -o out.mp4
    cinepatch edit blend VIDEO_A VIDEO_B PROMPT [--transition 1] -o out.mp4
    cinepatch edit mix PROMPT --with PROMPT [--video VIDEO] -o out.mp4
    cinepatch edit storyboard BOARD.yaml [PROMPT] --seconds 8 -o out.mp4

Every edit takes ``--plan-out plan.yaml`` (write the scene plan the edit made, beside the video)
and ``--plan plan.yaml`` (render that plan, edited — a box or end point moved — instead of the
one the edit would make): trajectory control on a model that reads plans (see docs/plans.md).
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

from cinepatch.errors import InvalidParameter

__all__ = ["register"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time in seconds")
    return value


def _range(text: str) -> list[float]:
    start, sep, end = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"range {text!r} is not START:END in seconds, e.g. 1.5:3")
    return [_seconds(start), _seconds(end)]


def _at(text: str) -> str | float:
    return text if text in ("start", "end") else _seconds(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("edit", help="image-to-video, extend, remix, re-cut, loop, blend, mix, storyboard")
    edits = parser.add_subparsers(dest="edit_name", metavar="EDIT", required=True)

    def edit(name: str, help: str) -> argparse.ArgumentParser:
        sub = edits.add_parser(name, help=help, description=help)
        sub.add_argument("-o", "--output", type=Path, required=True, help="out.mp4, out.gif, or a folder for PNGs")
        sub.add_argument("--seed", type=int, help="default: random")
        sub.add_argument("--plan", type=Path, help="render this scene plan of the output (YAML or JSON)")
        sub.add_argument("--plan-out", type=Path, help="also write the output's scene plan here (.yaml or .json)")
        add_sampling_arguments(sub)
        add_studio_arguments(sub)
        sub.set_defaults(func=run, size=None)
        return sub

    sub = edit("image", "animate a still image")
    sub.add_argument("prompt")
    sub.add_argument("--image", type=Path, required=True)
    sub.add_argument("--at", type=_at, default="start", help="start, end, or a time in seconds")

    sub = edit("extend", "continue a video forwards or backwards")
    sub.add_argument("video", type=Path)
    sub.add_argument("prompt")
    sub.add_argument("--add", type=float, default=2.0, help="seconds to add (default 2)")
    sub.add_argument("--backward", action="store_true", help="add before the start instead of after the end")

    sub = edit("remix", "re-imagine a video with a new prompt, keeping layout and motion")
    sub.add_argument("video", type=Path)
    sub.add_argument("prompt")
    sub.add_argument("--strength", type=float, default=None,
                     help="0 light touch … 1 full re-imagining (default: 1 when the video's plan can be read, "
                     "since the plan keeps its motion; else 0.7)")

    sub = edit("recut", "keep time ranges of a video and regenerate around them")
    sub.add_argument("video", type=Path)
    sub.add_argument("prompt")
    sub.add_argument("--range", dest="ranges", type=_range, action="append", required=True,
                     help="START:END seconds to keep; repeat for several, in the order given")
    sub.add_argument("--at", type=_seconds, default=0.0, help="where the kept footage starts in the output (s)")

    sub = edit("loop", "a clip that plays seamlessly on repeat")
    sub.add_argument("prompt")
    sub.add_argument("--video", type=Path, help="loop this video instead of making one")
    sub.add_argument("--bridge", type=float, default=1.0, help="seconds of generated bridge (default 1)")

    sub = edit("blend", "join two videos with a generated transition")
    sub.add_argument("video_a", type=Path)
    sub.add_argument("video_b", type=Path)
    sub.add_argument("prompt")
    sub.add_argument("--transition", type=float, default=1.0, help="seconds (default 1)")

    sub = edit("mix", "mix two prompts into one scene")
    sub.add_argument("prompt")
    sub.add_argument("--with", dest="other", required=True, help="the second prompt")
    sub.add_argument("--video", type=Path, help="keep this video's layout and motion")

    sub = edit("storyboard", "render a timeline of prompt, image and clip cards")
    sub.add_argument("board", type=Path, help="JSON or YAML: cards: [{at: 0, prompt: …}, {at: 2, image: a.png}]")
    sub.add_argument("prompt", nargs="?", default=None, help="for cards without a prompt of their own")


def _request_fields(args: argparse.Namespace) -> tuple[str, str, tuple[Path, ...], dict]:
    """(edit, prompt, sources, params) for the chosen edit; the params parsed (and checked) here."""
    from cinepatch.editing.params import parse_params

    edit, prompt, sources, params = _raw_fields(args)
    parsed = parse_params(edit, params)
    return edit, prompt, sources, parsed.to_dict() if parsed is not None else params


def _raw_fields(args: argparse.Namespace) -> tuple[str, str, tuple[Path, ...], dict]:
    from cinepatch.editing import read_storyboard

    name = args.edit_name
    if name == "image":
        return "image", args.prompt, (args.image,), {"at": args.at}
    if name == "extend":
        return "extend", args.prompt, (args.video,), {"seconds": args.add, "direction": "backward" if args.backward else "forward"}
    if name == "remix":
        return "remix", args.prompt, (args.video,), {} if args.strength is None else {"strength": args.strength}
    if name == "recut":
        return "recut", args.prompt, (args.video,), {"ranges": args.ranges, "at": args.at}
    if name == "loop":
        return "loop", args.prompt, ((args.video,) if args.video else ()), {"bridge": args.bridge}
    if name == "blend":
        return "blend", args.prompt, (args.video_a, args.video_b), {"transition": args.transition}
    if name == "mix":
        return "blend", args.prompt, ((args.video,) if args.video else ()), {"mode": "mix", "with": args.other}
    cards, sources = read_storyboard(args.board)
    prompt = args.prompt or next((c["prompt"] for c in cards if c.get("prompt")), "storyboard")
    return "storyboard", prompt, tuple(sources), {"cards": cards}


def _default_size(sources: tuple[Path, ...]) -> tuple[int, int] | None:
    """The first source video's size when a model can make it, else None (the model's own)."""
    from cinepatch.io.video import read_media

    for path in sources:
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
            continue
        width, height = read_media(path).size
        if width % 16 == 0 and height % 16 == 0 and 32 <= min(width, height) and max(width, height) <= 512:
            return width, height
        break
    return None


def run(args: argparse.Namespace) -> int:
    check_output(args.output)
    edit, prompt, sources, params = _request_fields(args)
    size = args.size or _default_size(sources)
    request = build_request(args, prompt=prompt, seed=args.seed, size=size, edit=edit, sources=sources, params=params)
    if args.plan is not None:
        import dataclasses

        from cinepatch.planning import read_plan

        request = dataclasses.replace(request, plan=read_plan(args.plan))
    if args.plan_out is not None and args.plan_out.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InvalidParameter("--plan-out", str(args.plan_out), "a path ending in .yaml, .yml or .json")
    studio = make_studio(args)
    with show_warnings():
        result = create(studio, request, out=args.output, label=edit)
    if args.plan_out is not None:
        if result.plan is None:
            print(f"no plan written: {result.model} reads no scene plans, or the sources showed none")
            return 1
        from cinepatch.planning import write_plan

        write_plan(result.plan, args.plan_out)
        print(f"wrote {args.plan_out} (the plan of {result.path}: {len(result.plan.objects)} object(s), {result.plan.frames} frames)")
    return 0

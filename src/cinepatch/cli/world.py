"""`cinepatch world`: render, sample and evaluate the procedural world.

::

    cinepatch world render "a crimson ball drifts rightwards on a dark blue backdrop" -o ball.mp4
    cinepatch world sample --n 100 --out data/world --size 128x128 --seconds 2
    cinepatch world eval ball.mp4 --prompt "a red circle moves right"   # exit 0 pass, 1 fail
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cinepatch.errors import InvalidParameter

__all__ = ["register"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise InvalidParameter("size", text, "WIDTHxHEIGHT, e.g. 256x256") from None
    return w, h


def _frames(seconds: float, fps: float) -> int:
    if not 0 <= seconds <= 60:
        raise InvalidParameter("seconds", seconds, "0 to 60 (0 renders a still image)")
    return max(1, round(seconds * fps))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("world", help="render, sample and evaluate the procedural world")
    sub = parser.add_subparsers(dest="world_command", metavar="ACTION", required=True)

    render = sub.add_parser("render", help="render a prompt with the oracle renderer")
    render.add_argument("prompt")
    render.add_argument("-o", "--out", type=Path, required=True, help=".mp4, .gif or a folder for PNGs")
    render.add_argument("--size", type=_size, default=(256, 256), metavar="WxH")
    render.add_argument("--fps", type=float, default=8.0)
    render.add_argument("--seconds", type=float, default=4.0)
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--strip", type=Path, default=None, help="also write a PNG preview strip here")
    render.set_defaults(func=_render)

    sample = sub.add_parser("sample", help="random clips plus a JSONL of their scenes and captions")
    sample.add_argument("--n", type=int, required=True)
    sample.add_argument("--out", type=Path, required=True)
    sample.add_argument("--size", type=_size, default=(128, 128), metavar="WxH")
    sample.add_argument("--fps", type=float, default=8.0)
    sample.add_argument("--seconds", type=float, default=3.0)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=_sample)

    ev = sub.add_parser("eval", help="check a video against a prompt; prints JSON, exit 0 pass / 1 fail")
    ev.add_argument("video", type=Path)
    ev.add_argument("--prompt", required=True)
    ev.add_argument("--fps", type=float, default=None, help="override the file's frame rate")
    ev.set_defaults(func=_eval)


def _render(args: argparse.Namespace) -> int:
    from cinepatch.io.video import write_strip, write_video
    from cinepatch.world import parse_prompt_report, render

    parsed = parse_prompt_report(args.prompt)
    if parsed.unknown_words:
        print(f"cinepatch: warning: not in the world, ignored: {', '.join(parsed.unknown_words)}", file=sys.stderr)
    width, height = args.size
    frames = render(
        parsed.scene, width=width, height=height, fps=args.fps, frames=_frames(args.seconds, args.fps), seed=args.seed
    )
    path = write_video(args.out, frames, fps=args.fps)
    if args.strip is not None:
        write_strip(args.strip, frames)
    print(path)
    return 0


def _sample(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from cinepatch.io.atomic import write_bytes
    from cinepatch.io.video import write_video
    from cinepatch.world import captions, dense_caption, random_scene, render

    if not 1 <= args.n <= 1_000_000:
        raise InvalidParameter("n", args.n, "1 to 1000000")
    width, height = args.size
    frames = _frames(args.seconds, args.fps)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(args.n):
        scene = random_scene(rng, exits=frames > 1)
        seed = int(rng.integers(2**31))
        clip = render(scene, width=width, height=height, fps=args.fps, frames=frames, seed=seed)
        name = f"{i:06d}.mp4"
        write_video(args.out / name, clip, fps=args.fps)
        record = {
            "file": name, "width": width, "height": height, "fps": args.fps, "frames": frames, "seed": seed,
            "scene": scene.to_dict(), "captions": captions(scene, rng), "dense_caption": dense_caption(scene),
        }  # fmt: skip
        lines.append(json.dumps(record) + "\n")
    write_bytes(args.out / "scenes.jsonl", "".join(lines).encode())
    print(f"{args.n} clips and scenes.jsonl in {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from cinepatch.io.video import read_video
    from cinepatch.world import evaluate

    video = read_video(args.video)
    report = evaluate(video.frames, fps=args.fps or video.fps, prompt=args.prompt)
    print(json.dumps(report.to_dict(), indent=2))
    return 0 if report.passed else 1

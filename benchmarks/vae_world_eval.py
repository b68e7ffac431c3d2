"""What the world evaluator still sees after a VAE round trip: the bar a VAE must clear.

    python benchmarks/vae_world_eval.py FOLDER [FOLDER …] [--clips 24] [--size 64] [--seconds 4]

For each trained VAE folder: random world scenes (fixed seed) rendered at ``--size``² and
8 fps are encoded and decoded; it prints the PSNR over whole clips, the PSNR per frame (every
4th frame: a causal 3D VAE trained on short clips fails on frames past its receptive field),
and the evaluator's score on the raw render and on the reconstruction, per attribute. A
generated video cannot score better than its decoder lets it, so this bounds the default
model's adherence from above.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from cinepatch.io.video import to_tensor
from cinepatch.models.vae import CausalVAE
from cinepatch.world import random_scene, render
from cinepatch.world.evaluate import evaluate


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, T, H, W) in −1..1 → (T, H, W, 3) uint8."""
    return ((x[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = 1 + 4 * round(args.seconds * 8 / 4)
    for folder in args.folders:
        vae = CausalVAE.from_pretrained(folder)
        rng = np.random.default_rng(123)
        psnr, per_frame, raw, rec = [], [], [], []
        passed, total = Counter(), Counter()
        for i in range(args.clips):
            scene = random_scene(rng)
            video = render(scene, width=args.size, height=args.size, fps=8, frames=frames, seed=i)
            x = to_tensor(video)  # (1, 3, T, H, W)
            with torch.no_grad():
                y = vae.decode(vae.encode(x))
            err = (y - x).pow(2).mean(dim=(0, 1, 3, 4))  # (T,)
            psnr.append(10 * np.log10(4 / float(err.mean())))
            per_frame.append(10 * np.log10(4 / err.clamp_min(1e-12).numpy()))
            raw.append(evaluate(video, fps=8, scene=scene).score)
            report = evaluate(to_uint8(y), fps=8, scene=scene)
            rec.append(report.score)
            for check in report.checks:
                total[check.name] += 1
                passed[check.name] += check.passed
        n_params = sum(p.numel() for p in vae.parameters())
        print(f"{folder}: {n_params / 1e6:.2f}M parameters, {args.clips} clips of {frames}x{args.size}x{args.size}")
        print(f"  PSNR {np.mean(psnr):.2f} dB; per frame (every 4th): {np.round(np.mean(per_frame, 0)[::4], 1).tolist()}")
        print(f"  evaluator score: raw render {np.mean(raw):.3f}, after the VAE {np.mean(rec):.3f}")
        print("  per attribute after the VAE: " + ", ".join(f"{k} {passed[k] / total[k]:.2f}" for k in sorted(total)))


if __name__ == "__main__":
    main()

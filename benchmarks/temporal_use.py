"""Does a model's DiT use time? Its x̂₀ error on real world clips against the same frames in a
shuffled order, and against each frame denoised alone as a one-frame clip.

    python benchmarks/temporal_use.py --model src/cinepatch/weights/default
    python benchmarks/temporal_use.py --model src/cinepatch/weights/default --clips 24 --sigmas 0.9 0.5

Clips are suite scenes rendered by the world at 64², 4 s; prompts are the suite's, expanded as
`generate` does. Each clip is noised once per noise level with the same noise in all three
cases, and the error is the mean squared error of x̂₀ against the clean latents, over all cells
and over "moving" cells (latent cells that differ from their own median over time: objects,
and textures under a pan). A model that reads neighbouring frames has a clearly lower error on
real clips than on shuffled ones; equal errors mean it denoises each frame on its own.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from default_model_eval import suite

from cinepatch import world
from cinepatch.expand import WorldExpander
from cinepatch.pipeline import Pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a pipeline folder")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.95, 0.85, 0.7, 0.5, 0.3])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    pipe = Pipeline.from_pretrained(args.model)
    cases = suite()
    pick = [cases[i] for i in np.random.default_rng(3).choice(len(cases), args.clips, replace=False)]
    expander = WorldExpander()
    shape = dict(width=64, height=64, fps=8, frames=33)
    z = torch.stack([pipe.encode_frames(world.render(c.scene, **shape, seed=0)) for c in pick])  # (B, C, t, h, w)
    text = pipe.encode_text([expander.expand(c.prompt).expanded for c in pick])
    moving = ((z - z.median(2, keepdim=True).values).abs().sum(1, keepdim=True) > 1.0).float()  # (B, 1, t, h, w)
    frames = z.shape[2]
    perm = torch.from_numpy(np.random.default_rng(0).permutation(frames))
    alone = list(range(0, frames, 4))  # frames denoised one at a time (every 4th, to bound the cost)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def predict(clean: torch.Tensor, sigma: float, noise: torch.Tensor) -> torch.Tensor:
        x_t = (1 - sigma) * clean + sigma * noise
        return x_t - sigma * pipe.dit(x_t, torch.full((len(clean),), sigma), **text)  # x̂₀

    def errors(pred: torch.Tensor, index: list[int] | slice = slice(None)) -> tuple[float, float]:
        sq, mask = (pred - z[:, :, index]) ** 2, moving[:, :, index]
        return sq.mean().item(), ((sq * mask).sum() / (mask.sum() * sq.shape[1])).item()

    print(f"{args.model}: {args.clips} clips, {frames} latent frames, moving cells {moving.mean().item():.0%}")
    print(f"{'sigma':>5}  {'real':>6} {'shuffled':>8}   moving cells: {'real':>6} {'shuffled':>8} {'ratio':>5}"
          f"   every 4th frame: {'in video':>8} {'alone':>6}")
    for sigma in args.sigmas:
        real = predict(z, sigma, noise)
        shuffled = predict(z[:, :, perm], sigma, noise[:, :, perm])[:, :, torch.argsort(perm)]
        single = torch.cat([predict(z[:, :, i : i + 1], sigma, noise[:, :, i : i + 1]) for i in alone], 2)
        (r, r_m), (s, s_m) = errors(real), errors(shuffled)
        in_video, by_itself = errors(real[:, :, alone], alone)[1], errors(single, alone)[1]
        print(f"{sigma:5.2f}  {r:6.3f} {s:8.3f}                 {r_m:6.3f} {s_m:8.3f} {s_m / r_m:5.2f}"
              f"                    {in_video:8.3f} {by_itself:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

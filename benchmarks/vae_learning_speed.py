"""How fast an autoencoder learns the world: the `world` VAE preset against a shallow baseline.

    python benchmarks/vae_learning_speed.py [--steps 300] [--images 64] [--threads 2]

Both models train on the same 64×64 still images of random world scenes (batch 16, Adam) and
report PSNR on a fixed set of 16 of them every 50 steps, with the wall time. The baseline is
three strided convolutions down and three transposed convolutions up (8 latent channels at
8× compression, as the preset) — no norms, no residuals. It answers one question: does the
preset's design learn at a reasonable pace for the CPU budget, or does it need changing?
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from cinepatch.io.video import to_tensor
from cinepatch.models.vae import PRESETS, CausalVAE
from cinepatch.world import random_scene, render


def world_images(n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    frames = [render(random_scene(rng, exits=False), width=64, height=64, fps=8, frames=1, seed=i) for i in range(n)]
    return torch.cat([to_tensor(f) for f in frames])  # (n, 3, 1, 64, 64)


class Shallow(nn.Module):
    def __init__(self, latent: int = 8) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                 nn.Conv2d(64, latent, 4, 2, 1))
        self.dec = nn.Sequential(nn.ConvTranspose2d(latent, 64, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 3, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 1, H, W)
        return self.dec(self.enc(x[:, :, 0]))[:, :, None]


def train(name: str, model: nn.Module, loss_fn, images: torch.Tensor, steps: int) -> None:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fixed = images[:16]
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = images[torch.randint(0, len(images), (16,))]
        loss = loss_fn(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            with torch.no_grad():
                recon = model(fixed) if isinstance(model, Shallow) else model.decode(model.encode(fixed))
                mse = float((recon - fixed).pow(2).mean())
            print(f"{name:8s} step {step:4d}  PSNR {10 * np.log10(4 / mse):5.2f} dB  {time.perf_counter() - start:6.1f} s",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = world_images(args.images)
    torch.manual_seed(0)
    shallow = Shallow()
    train("shallow", shallow, lambda x: (shallow(x) - x).pow(2).mean(), images, args.steps)
    torch.manual_seed(0)
    vae = CausalVAE(PRESETS["world"])
    train("world", vae, lambda x: vae.loss(x)[0], images, args.steps)


if __name__ == "__main__":
    main()

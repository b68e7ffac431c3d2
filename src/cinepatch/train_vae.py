"""Train the causal video VAE on the procedural world.

One process (the CPU recipe)::

    nice -n 10 python -m cinepatch.train_vae --preset world --out /work/ckpt/vae-world \\
        --steps 1500 --minutes 22

Several processes (DDP over gloo, CPU or GPU), detected from ``RANK``::

    torchrun --standalone --nproc_per_node 2 -m cinepatch.train_vae --preset world --out ckpt/vae

Each step is a batch of clips (1 + 4k frames) or, with probability ``--image-prob``, a
larger batch of single frames, so the model learns that an image is a 1-frame video. Frames
are rendered at the size the DiT will use (``--size``) and randomly cropped to ``--crop``:
the VAE is fully convolutional, so it trains on crops and runs on whole frames. Running the
same command again resumes from ``OUT/train_state.pt``. At the end the per-channel mean and
std of the latents are stored in the weights, and ``OUT`` holds a folder
``CausalVAE.from_pretrained`` can read.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cinepatch.io.atomic import atomic_write
from cinepatch.models.vae import PRESETS, CausalVAE

__all__ = ["main", "world_batch", "latent_stats"]

Batcher = Callable[[np.random.Generator, int, int], torch.Tensor]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="world", choices=sorted(PRESETS))
    p.add_argument("--out", type=Path, required=True, help="output folder (config.json, model.safetensors, train_state.pt)")
    p.add_argument("--steps", type=int, default=1500, help="length of the LR schedule")
    p.add_argument("--minutes", type=float, default=None, help="stop early after this wall time and finish up")
    p.add_argument("--batch", type=int, default=4, help="clips per step (per process)")
    p.add_argument("--frames", type=int, default=9, help="frames per training clip (1 + 4k)")
    p.add_argument("--image-prob", type=float, default=0.25, help="share of steps that train on single frames")
    p.add_argument("--size", type=int, default=128, help="rendered frame size")
    p.add_argument("--crop", type=int, default=64, help="random crop trained on (multiple of 8)")
    p.add_argument("--fps", type=float, default=8.0)
    # 1e-3 blew up the activations of the conv stack within ten Adam steps (the RMS norms then
    # starved every gradient and the model learned only the mean colour); 2e-4 learns.
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--stats-batches", type=int, default=16, help="clip batches used for the latent shift/scale")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--init", type=Path, default=None, help="start from this trained VAE folder")
    p.add_argument(
        "--decoder-only", action="store_true",
        help="with --init: freeze the encoder and its latent statistics and train the decoder on the "
        "posterior means — the latents a DiT was trained on stay valid, the pictures get sharper",
    )
    args = p.parse_args(argv)
    if args.decoder_only and args.init is None:
        p.error("--decoder-only needs --init FOLDER (the VAE whose encoder stays fixed)")
    return args


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def world_batch(
    rng: np.random.Generator, batch: int, frames: int, *, size: int, crop: int, fps: float
) -> torch.Tensor:
    """``batch`` random world scenes rendered at ``size``², cropped to ``crop``²: (B, 3, T, c, c)."""
    from cinepatch.io.video import to_tensor
    from cinepatch.world import random_scene, render

    clips = []
    for _ in range(batch):
        # A still image gets a scene whose objects stay on canvas (an entering object would
        # be off-canvas on its only frame).
        scene = random_scene(rng, exits=frames > 1)
        seed = int(rng.integers(1 << 31))
        video = render(scene, width=size, height=size, fps=fps, frames=frames, seed=seed)  # (T, H, W, 3) uint8
        y, x = rng.integers(0, size - crop + 1, size=2)
        clips.append(to_tensor(np.ascontiguousarray(video[:, y : y + crop, x : x + crop])))  # (1, 3, T, c, c)
    return torch.cat(clips, dim=0)


@torch.no_grad()
def latent_stats(vae: CausalVAE, batches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the raw posterior means over ``batches``."""
    vae.set_latent_stats(torch.zeros(vae.config.latent_channels), torch.ones(vae.config.latent_channels))
    z = torch.cat([vae.encode(x).transpose(0, 1).flatten(1) for x in batches], dim=1)  # (C, N)
    return z.mean(dim=1), z.std(dim=1).clamp_min(1e-4)


class _LossModule(nn.Module):
    """What DDP wraps: its forward is the VAE's training loss, so gradients sync on backward."""

    def __init__(self, vae: CausalVAE, *, decoder_only: bool = False) -> None:
        super().__init__()
        self.vae = vae
        self.decoder_only = decoder_only

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.vae.decoder_loss(x) if self.decoder_only else self.vae.loss(x)


def lr_at(step: int, *, base: float, warmup: int, total: int, time_progress: float = 0.0) -> float:
    """Linear warmup, then cosine down to a tenth of ``base``.

    ``time_progress`` (share of the ``--minutes`` budget used) lets the cosine finish when the
    wall-time budget does, whichever of steps or time runs out first: on a shared CPU the
    step rate is not known in advance.
    """
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_progress))
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


@dataclass
class _Run:
    """One training run's state: what the loop, the checkpoints and the final folder share."""

    args: argparse.Namespace
    vae: CausalVAE
    model: nn.Module  # what DDP wraps (the loss), or the loss module alone
    opt: torch.optim.Optimizer
    trained: list[nn.Parameter]
    batcher: Batcher
    ddp: bool
    master: bool
    step: int = 0

    def save_state(self) -> None:
        if self.master:
            with atomic_write(self.args.out / "train_state.pt") as tmp:
                state = {"model": self.vae.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                         "args": vars(self.args)}
                torch.save(state, tmp)


def _start(args: argparse.Namespace, batcher: Batcher | None) -> _Run:
    """Processes, model, optimiser, and the resume from ``OUT/train_state.pt`` if present."""
    ddp = "RANK" in os.environ  # one of several processes under torchrun
    if ddp:
        dist.init_process_group("gloo")
    master = not ddp or dist.get_rank() == 0
    if batcher is None:

        def batcher(rng: np.random.Generator, batch: int, frames: int) -> torch.Tensor:
            return world_batch(rng, batch, frames, size=args.size, crop=args.crop, fps=args.fps)

    torch.manual_seed(args.seed)
    vae = CausalVAE.from_pretrained(args.init).train() if args.init else CausalVAE(PRESETS[args.preset])
    if args.decoder_only:
        vae.encoder.requires_grad_(False)
    trained = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    step = 0
    state_path = args.out / "train_state.pt"
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        if master:
            print(f"resumed from {state_path} at step {step}", flush=True)
    model: nn.Module = _LossModule(vae, decoder_only=args.decoder_only)
    if ddp:
        model = nn.parallel.DistributedDataParallel(model)
    if master:
        n_params = sum(p.numel() for p in vae.parameters())
        world = dist.get_world_size() if ddp else 1
        print(f"preset={args.preset} params={n_params / 1e6:.2f}M processes={world} out={args.out}", flush=True)
    return _Run(args, vae, model, opt, trained, batcher, ddp, master, step)


def _time_progress(run: _Run, started: float) -> float:
    """Share of the ``--minutes`` budget used; under DDP rank 0's clock, so all ranks stop together."""
    if run.args.minutes is None:
        return 0.0
    progress = (time.monotonic() - started) / (60 * run.args.minutes)
    if run.ddp:
        shared = torch.tensor([progress])
        dist.broadcast(shared, src=0)
        progress = float(shared)
    return progress


def _train(run: _Run) -> None:
    """The loop: until ``--steps`` or the time budget, whichever comes first."""
    args, vae = run.args, run.vae
    rank = dist.get_rank() if run.ddp else 0
    # A different stream of scenes per process and per resume, reproducible from the seed.
    rng = np.random.default_rng([args.seed, rank, run.step])
    vae.train()
    started = time.monotonic()
    window: list[dict[str, float]] = []
    while run.step < args.steps:
        time_progress = _time_progress(run, started)
        if time_progress >= 1.0:
            if run.master:
                print(f"time budget of {args.minutes} min reached at step {run.step}", flush=True)
            break
        for group in run.opt.param_groups:
            group["lr"] = lr_at(run.step, base=args.lr, warmup=args.warmup, total=args.steps, time_progress=time_progress)
        if rng.random() < args.image_prob:
            x = run.batcher(rng, 2 * args.batch, 1)  # single frames: an image is a 1-frame video
        else:
            x = run.batcher(rng, args.batch, args.frames)
        loss, parts = run.model(x)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.trained, 1.0)
        run.opt.step()
        run.step += 1
        window.append(parts)
        if run.master and run.step % args.log_every == 0:
            mean = {k: sum(p[k] for p in window) / len(window) for k in window[0]}
            print(
                f"step {run.step} l1 {mean['l1']:.4f} mse {mean['mse']:.5f} kl {mean['kl']:.2f} "
                f"psnr {mean['psnr']:.2f} dB lr {run.opt.param_groups[0]['lr']:.2e} "
                f"{(time.monotonic() - started) / 60:.1f} min",
                flush=True,
            )
            window.clear()
        if run.step % args.ckpt_every == 0:
            run.save_state()
    run.save_state()


def _finish(run: _Run, started: float) -> None:
    """Latent statistics on fixed scenes, the ``from_pretrained`` folder and its summary."""
    args, vae = run.args, run.vae
    vae.eval()
    stats_rng = np.random.default_rng([args.seed, 10_000])  # fixed scenes: same stats on resume
    batches = [run.batcher(stats_rng, args.batch, args.frames) for _ in range(args.stats_batches)]
    if args.decoder_only:  # the encoder and its statistics are the DiT's: unchanged
        shift, scale = vae.latent_shift.clone(), vae.latent_scale.clone()
    else:
        shift, scale = latent_stats(vae, batches)
        vae.set_latent_stats(shift, scale)
    with torch.no_grad():
        mse = sum(float((vae.decode(vae.encode(x)) - x).pow(2).mean()) for x in batches) / len(batches)
    vae.save_pretrained(args.out)
    summary = {
        "step": run.step,
        "psnr_db": 10 * math.log10(4.0 / mse),
        "latent_shift": shift.tolist(),
        "latent_scale": scale.tolist(),
        "minutes": (time.monotonic() - started) / 60,
    }
    with atomic_write(args.out / "train_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"saved {args.out}: step {run.step}, PSNR {summary['psnr_db']:.2f} dB on the stats clips", flush=True)


def main(argv: list[str] | None = None, *, batcher: Batcher | None = None) -> Path:
    """Train (or resume), store latent stats, and write ``args.out``; returns the folder.

    ``batcher(rng, batch, frames) -> (B, 3, T, H, W)`` replaces the world renderer (tests).
    """
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.monotonic()
    run = _start(args, batcher)
    _train(run)
    if run.master:
        _finish(run, started)
    if run.ddp:
        dist.destroy_process_group()
    return args.out


if __name__ == "__main__":
    main()

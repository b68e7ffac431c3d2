"""Encode/decode speed and peak memory of the causal VAE for short vs long videos.

    nice -n 10 python benchmarks/vae_speed.py --model /work/ckpt/vae-world
    nice -n 10 python benchmarks/vae_speed.py --preset world      # untrained weights: same cost

Each (length, pass, chunking) runs in a fresh child process, so its peak resident memory
(``ru_maxrss``) belongs to that pass alone; we print the peak minus the resident memory just
before the pass (model, input and the Python runtime excluded). With chunking the working
memory should stay flat as the video gets longer; without it (``chunk=none``) it grows.
The default chunk, 2 latent frames (8 pixel frames), is 1 s at 8 fps, so the 1 s video is
exactly one chunk and the 8 s video is eight. Children run with ``MALLOC_MMAP_THRESHOLD_``
fixed at 64 KiB so glibc returns freed activation buffers to the system at once; otherwise
its heap keeps them and the peak RSS measures fragmentation as much as live tensors.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> None:
    import torch

    from cinepatch.models.vae import PRESETS, CausalVAE

    torch.set_num_threads(args.threads)
    vae = CausalVAE.from_pretrained(args.model) if args.model else CausalVAE(PRESETS[args.preset]).eval()
    frames = 1 + round(args.seconds * args.fps / 4) * 4
    chunk = None if args.chunk == "none" else int(args.chunk)
    torch.manual_seed(0)
    x = torch.rand(1, 3, frames, args.size, args.size) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x[:, :, :1])  # warm up kernels outside the measurement
        vae.decode(z)
        if args.pass_ == "decode":
            # Random latents, not encode(x): encoding first would set the process's peak RSS.
            z = torch.randn(1, *vae.latent_shape(frames, args.size, args.size))
            del x
        before = rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        if args.pass_ == "encode":
            out = vae.encode(x, chunk_frames=None if chunk is None else 4 * chunk)
        else:
            out = vae.decode(z, chunk_frames=chunk)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB on Linux
    print(json.dumps({"frames": frames, "seconds": seconds, "cpu": cpu, "work_mb": peak - before, "out": list(out.shape)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="a CausalVAE folder (default: untrained --preset)")
    p.add_argument("--preset", default="world")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=1, help="1 on a shared machine: measures work, not scheduling")
    p.add_argument("--lengths", default="1,8", help="seconds, comma-separated")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--pass", dest="pass_", default="encode", help=argparse.SUPPRESS)
    p.add_argument("--chunk", default="2", help="latent frames per chunk, or 'none'")
    args = p.parse_args()
    if args.child:
        child(args)
        return

    print(f"VAE {args.model or 'preset ' + args.preset}, {args.size}x{args.size} at {args.fps:g} fps, {args.threads} threads")
    print(f"{'pass':7} {'chunk':>6} {'seconds':>8} {'frames':>7} {'wall s':>7} {'CPU s':>6} {'frames/CPU s':>12} {'work MiB':>9}")
    for pass_ in ("encode", "decode"):
        for chunk in (args.chunk, "none"):
            for seconds in (float(s) for s in args.lengths.split(",")):
                cmd = [sys.executable, __file__, "--child", "--seconds", str(seconds), "--pass", pass_]
                cmd += ["--chunk", chunk, "--size", str(args.size), "--fps", str(args.fps), "--threads", str(args.threads)]
                cmd += ["--model", str(args.model)] if args.model else ["--preset", args.preset]
                env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
                run = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                r = json.loads(run.stdout.strip().splitlines()[-1])
                print(
                    f"{pass_:7} {chunk:>6} {seconds:>8g} {r['frames']:>7} {r['seconds']:>7.2f} {r['cpu']:>6.2f} "
                    f"{r['frames'] / r['cpu']:>12.1f} {r['work_mb']:>9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

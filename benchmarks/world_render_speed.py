"""Oracle renderer throughput: random world clips per second on one process.

Run:  nice -n 10 python benchmarks/world_render_speed.py
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from cinepatch.world import random_scene, render


def clips_per_second(*, width: int, height: int, frames: int, n: int, fps: float, seed: int) -> tuple[float, float]:
    """(clips per wall-clock second, clips per CPU second of this process)."""
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng) for _ in range(n)]
    render(scenes[0], width=width, height=height, fps=fps, frames=frames)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for i, scene in enumerate(scenes):
        render(scene, width=width, height=height, fps=fps, frames=frames, seed=i)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="clips per configuration (a quarter at 128x128x64)")
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for width, height, frames, n in ((64, 64, 32, args.n), (128, 128, 64, max(1, args.n // 4))):
        wall, cpu = clips_per_second(width=width, height=height, frames=frames, n=n, fps=args.fps, seed=args.seed)
        print(
            f"{width}x{height}x{frames} frames: {wall:.1f} clips/s wall-clock, {cpu:.1f} clips/s per CPU-second "
            f"({cpu * frames:.0f} frames/CPU-s) over {n} random scenes"
        )
    load = os.getloadavg()[0]
    print(f"(one process, single-threaded numpy; machine load average {load:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

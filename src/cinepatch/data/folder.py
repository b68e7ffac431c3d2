"""A folder of videos and images with a captions file, as a training source.

Layout::

    clips/
      captions.jsonl     one {"file": "a.mp4", "caption": "a red ball bounces"} per line
      a.mp4              (or captions.csv with the header ``file,caption``)
      b.png              images train as one-frame clips

Each file is assigned once to the bucket it fits best (:func:`assign_bucket`); a sample is a
pure function of ``(bucket, index)`` — the file ``index mod n`` of that bucket, a window whose
start is drawn from ``index`` — so every rank and every resumed run sees the same clip.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from cinepatch.data.buckets import Bucket, assign_bucket
from cinepatch.errors import InvalidParameter, MediaError

if TYPE_CHECKING:
    from cinepatch.planning.schema import ScenePlan

__all__ = ["Clip", "FolderSource", "read_captions", "fit_frames"]


@dataclass(frozen=True)
class Clip:
    """One training sample: ``video (3, T, H, W)`` float in −1..1 and its caption; ``focus
    (T, H, W)`` in 0..1, where known, marks the pixels the caption is about (world objects);
    ``plan``, where known, is the clip's scene plan: each object's phrase and box on every frame."""

    video: torch.Tensor
    caption: str
    focus: torch.Tensor | None = None
    plan: ScenePlan | None = None


@dataclass(frozen=True)
class _Item:
    path: Path
    caption: str
    frames: int
    width: int
    height: int
    fps: float


def read_captions(path: Path) -> list[tuple[str, str]]:
    """``(file, caption)`` pairs from a ``.jsonl`` (keys ``file``, ``caption``) or ``.csv``
    (header ``file,caption``) captions file."""
    pairs: list[tuple[str, str]] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pairs.append((str(row["file"]), str(row["caption"])))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise MediaError(path, f"line {number}: expected {{\"file\": …, \"caption\": …}} ({exc})") from exc
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"file", "caption"} <= set(reader.fieldnames):
                raise MediaError(path, "expected a header with the columns file,caption")
            pairs = [(row["file"], row["caption"]) for row in reader]
    else:
        raise MediaError(path, "captions file must be .jsonl or .csv")
    if not pairs:
        raise MediaError(path, "lists no files")
    return pairs


def fit_frames(frames: np.ndarray, width: int, height: int) -> torch.Tensor:
    """Centre-crop ``(T, H, W, 3)`` uint8 frames to the aspect of ``width``×``height``, resize
    (antialiased) and return ``(3, T, height, width)`` float in −1..1."""
    _, h, w, _ = frames.shape
    target = width / height
    if w / h > target:  # too wide: crop the sides
        cw, ch = max(1, round(h * target)), h
    else:
        cw, ch = w, max(1, round(w / target))
    top, left = (h - ch) // 2, (w - cw) // 2
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top : top + ch, left : left + cw]))
    x = x.permute(0, 3, 1, 2).float()  # (T, 3, h, w)
    if (ch, cw) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return (x / 127.5 - 1.0).clamp(-1, 1).permute(1, 0, 2, 3).contiguous()  # (3, T, H, W)


class FolderSource:
    """Clips from a folder with ``captions.jsonl`` or ``captions.csv``, bucketed by shape."""

    def __init__(self, folder: str | Path, buckets: list[Bucket], *, fps: float, seed: int = 0) -> None:
        from cinepatch.io.video import IMAGE_SUFFIXES, read_image, read_video

        self.folder = Path(folder)
        self.fps = fps
        self.seed = seed
        captions = [self.folder / n for n in ("captions.jsonl", "captions.csv") if (self.folder / n).exists()]
        if not self.folder.is_dir() or not captions:
            raise InvalidParameter(
                "data", str(folder), "'world' or a folder holding captions.jsonl or captions.csv"
            )
        self.by_bucket: dict[Bucket, list[_Item]] = {b: [] for b in buckets}
        self.skipped: list[str] = []
        for name, caption in read_captions(captions[0]):
            path = self.folder / name
            if path.suffix.lower() in IMAGE_SUFFIXES:
                image = read_image(path)
                item = _Item(path, caption, 1, image.shape[1], image.shape[0], fps)
            else:
                video = read_video(path)  # decoded once here to learn its length
                item = _Item(path, caption, len(video.frames), *video.size, video.fps)
            bucket = assign_bucket(item.width, item.height, item.frames, buckets, stride=self._stride(item))
            if bucket is None:
                self.skipped.append(name)
            else:
                self.by_bucket[bucket].append(item)
        self.by_bucket = {b: items for b, items in self.by_bucket.items() if items}
        if not self.by_bucket:
            raise InvalidParameter("data", str(folder), "at least one file that fits a bucket")

    def _stride(self, item: _Item) -> int:
        return max(1, round(item.fps / self.fps))

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_bucket.values())

    def weights(self) -> dict[Bucket, float]:
        """How often each bucket is drawn: in proportion to the files it holds."""
        return {b: float(len(items)) for b, items in self.by_bucket.items()}

    def get(self, bucket: Bucket, index: int) -> Clip:
        from cinepatch.io.video import read_image, read_video

        items = self.by_bucket[bucket]
        item = items[index % len(items)]
        if item.frames == 1:
            frames = read_image(item.path)[None]
        else:
            frames = read_video(item.path).frames
        stride = self._stride(item)
        span = (bucket.frames - 1) * stride + 1
        rng = np.random.default_rng([self.seed, index])
        start = int(rng.integers(0, len(frames) - span + 1))
        return Clip(fit_frames(frames[start : start + span : stride], bucket.width, bucket.height), item.caption)

"""`WorldVideoDataset`: an infinite, seeded, bucketed stream of world clips rendered on the fly.

It yields **whole batches**, each from one bucket ``(width, height, frames)``, so every batch
has one shape; wrap it in ``DataLoader(dataset, batch_size=None, num_workers=...)``. Each
worker of each rank draws from its own generator, seeded by ``(seed, rank, worker)``, so
nothing repeats across workers or ranks and a restart with the same seed replays the stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from cinepatch.errors import InvalidParameter
from cinepatch.world.captions import CAPTION_LEVELS, captions, random_scene
from cinepatch.world.render import check_canvas, render

__all__ = ["Bucket", "DEFAULT_BUCKETS", "WorldVideoDataset"]


@dataclass(frozen=True)
class Bucket:
    width: int
    height: int
    frames: int  # 1 is a still image; the models make 1 + 4k frames

    @property
    def is_image(self) -> bool:
        return self.frames == 1


# Small default buckets for the embedded model: stills and 17-frame clips at two aspects.
DEFAULT_BUCKETS = (
    Bucket(64, 64, 1),
    Bucket(64, 64, 17),
    Bucket(96, 64, 17),
    Bucket(128, 128, 1),
    Bucket(128, 128, 33),
)


@dataclass
class WorldVideoDataset(IterableDataset):
    """Batches ``{"video": (B, 3, T, H, W) float32 in −1..1, "caption": [str]*B, "scene":
    [dict]*B, "fps": float, "bucket": (W, H, T)}`` of freshly rendered random scenes.

    ``caption_probs`` gives how often each caption level is used (dense most of the time by
    default); ``bucket_weights`` how often each bucket is drawn (uniform if ``None``).
    """

    buckets: Sequence[Bucket] = DEFAULT_BUCKETS
    batch_size: int = 4
    fps: float = 8.0
    seed: int = 0
    caption_probs: dict[str, float] = field(default_factory=lambda: {"dense": 0.7, "medium": 0.15, "terse": 0.15})
    bucket_weights: Sequence[float] | None = None
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        super().__init__()
        self.buckets = tuple(b if isinstance(b, Bucket) else Bucket(*b) for b in self.buckets)
        if not self.buckets:
            raise InvalidParameter("buckets", self.buckets, "at least one (width, height, frames)")
        for b in self.buckets:
            check_canvas(width=b.width, height=b.height, fps=self.fps, frames=b.frames)
        if self.batch_size < 1:
            raise InvalidParameter("batch_size", self.batch_size, ">= 1")
        unknown = set(self.caption_probs) - set(CAPTION_LEVELS)
        if unknown or not self.caption_probs or min(self.caption_probs.values()) < 0:
            raise InvalidParameter("caption_probs", self.caption_probs, f"non-negative weights over {CAPTION_LEVELS}")
        if self.bucket_weights is not None and (
            len(self.bucket_weights) != len(self.buckets) or min(self.bucket_weights) < 0
        ):
            raise InvalidParameter("bucket_weights", self.bucket_weights, "one non-negative weight per bucket")
        if not 0 <= self.rank < self.world_size:
            raise InvalidParameter("rank", self.rank, f"0 to {self.world_size - 1}")

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        return np.random.default_rng([self.seed, self.rank, worker])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = self._generator()
        weights = np.ones(len(self.buckets)) if self.bucket_weights is None else np.asarray(self.bucket_weights, float)
        weights = weights / weights.sum()
        levels = list(self.caption_probs)
        level_p = np.array([self.caption_probs[k] for k in levels], float)
        level_p = level_p / level_p.sum()
        while True:
            bucket = self.buckets[int(rng.choice(len(self.buckets), p=weights))]
            yield self._batch(bucket, rng, levels, level_p)

    def _batch(self, bucket: Bucket, rng: np.random.Generator, levels: list[str], level_p: np.ndarray) -> dict[str, Any]:
        videos, texts, scenes = [], [], []
        for _ in range(self.batch_size):
            # A still cannot show an object entering (it would be off-canvas on its only frame).
            scene = random_scene(rng, exits=not bucket.is_image)
            frames = render(
                scene, width=bucket.width, height=bucket.height, fps=self.fps, frames=bucket.frames,
                seed=int(rng.integers(2**31)),
            )  # fmt: skip
            videos.append(torch.from_numpy(frames).permute(3, 0, 1, 2))  # (3, T, H, W) uint8
            texts.append(captions(scene, rng)[levels[int(rng.choice(len(levels), p=level_p))]])
            scenes.append(scene.to_dict())
        video = torch.stack(videos).float().div_(127.5).sub_(1.0)  # (B, 3, T, H, W) in −1..1
        return {
            "video": video,
            "caption": texts,
            "scene": scenes,
            "fps": self.fps,
            "bucket": (bucket.width, bucket.height, bucket.frames),
        }

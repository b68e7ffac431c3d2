"""The training stream: which bucket and which samples make the global batch of a step.

A step's batch is a pure function of ``(seed, step)``: a bucket drawn by weight, then the global
sample indices ``step·B … step·B + B − 1``. Rank ``r`` of ``W`` takes its contiguous slice, so a
run on ``W`` processes sees the same global batch as a run on one, and resuming needs only the
step number (the data stream's position *is* the step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cinepatch.data.buckets import Bucket
from cinepatch.data.folder import Clip

__all__ = ["Source", "StepBatch", "BatchStream"]


class Source(Protocol):
    def weights(self) -> dict[Bucket, float]: ...

    def get(self, bucket: Bucket, index: int) -> Clip: ...


@dataclass(frozen=True)
class StepBatch:
    step: int
    bucket: Bucket
    indices: list[int]  # this rank's global sample indices
    offset: int  # position of this rank's first sample in the global batch


class BatchStream:
    """Plans each step's batch; :meth:`clips` fetches this rank's part of it."""

    def __init__(self, source: Source, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by the world size {world_size}")
        self.source = source
        self.batch_size = batch_size
        self.local = batch_size // world_size
        self.seed = seed
        self.rank = rank
        weights = source.weights()
        self.buckets = sorted(weights)
        total = sum(weights[b] for b in self.buckets)
        self.probs = np.array([weights[b] / total for b in self.buckets])

    def plan(self, step: int) -> StepBatch:
        rng = np.random.default_rng([self.seed, step, 0xB0C])
        bucket = self.buckets[int(rng.choice(len(self.buckets), p=self.probs))]
        offset = self.rank * self.local
        first = step * self.batch_size + offset
        return StepBatch(step, bucket, list(range(first, first + self.local)), offset)

    def clips(self, plan: StepBatch) -> list[Clip]:
        return [self.source.get(plan.bucket, i) for i in plan.indices]

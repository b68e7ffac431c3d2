"""WorldVideoDataset: bucketed batch shapes, value range, captions, seeding per rank and worker."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader

from cinepatch.errors import InvalidParameter
from cinepatch.world import Bucket, Scene, WorldVideoDataset

BUCKETS = (Bucket(32, 32, 1), Bucket(48, 32, 5), Bucket(32, 48, 9))


def take(ds: WorldVideoDataset, n: int) -> list[dict]:
    return list(itertools.islice(iter(ds), n))


def test_batches_share_one_bucket_shape_and_range():
    batches = take(WorldVideoDataset(buckets=BUCKETS, batch_size=3, seed=0), 12)
    seen = set()
    for b in batches:
        w, h, t = b["bucket"]
        seen.add(b["bucket"])
        assert b["video"].shape == (3, 3, t, h, w) and b["video"].dtype == torch.float32
        assert b["video"].min() >= -1 and b["video"].max() <= 1
        assert len(b["caption"]) == 3 and all(isinstance(c, str) and c for c in b["caption"])
        assert all(isinstance(Scene.from_dict(s), Scene) for s in b["scene"])
        assert b["fps"] == 8.0
    assert len(seen) == 3  # every bucket drawn, stills included


def test_seeded_per_rank_and_reproducible():
    a = take(WorldVideoDataset(buckets=BUCKETS, batch_size=2, seed=5), 3)
    b = take(WorldVideoDataset(buckets=BUCKETS, batch_size=2, seed=5), 3)
    c = take(WorldVideoDataset(buckets=BUCKETS, batch_size=2, seed=5, rank=1, world_size=2), 3)
    assert all(torch.equal(x["video"], y["video"]) and x["caption"] == y["caption"] for x, y in zip(a, b))
    assert [x["caption"] for x in a] != [x["caption"] for x in c]


def test_caption_levels_follow_the_configured_probabilities():
    terse = take(WorldVideoDataset(buckets=BUCKETS[:1], batch_size=8, caption_probs={"terse": 1.0}), 2)
    dense = take(WorldVideoDataset(buckets=BUCKETS[:1], batch_size=8, caption_probs={"dense": 1.0}), 2)
    # Dense captions name the background and camera; terse ones never do.
    assert all("background" not in c and "backdrop" not in c for b in terse for c in b["caption"])
    assert all("camera" in c.lower() for b in dense for c in b["caption"])


def test_workers_draw_different_streams():
    ds = WorldVideoDataset(buckets=BUCKETS[:1], batch_size=2, seed=1)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    first, second = list(itertools.islice(iter(loader), 2))  # one batch from each worker
    assert first["caption"] != second["caption"]


@pytest.mark.parametrize(
    "kw",
    [dict(buckets=[(40, 32, 1)]), dict(batch_size=0), dict(caption_probs={"verbose": 1.0}),
     dict(bucket_weights=[1.0]), dict(rank=2, world_size=2)],
)  # fmt: skip
def test_bad_configuration_is_refused(kw):
    with pytest.raises(InvalidParameter):
        WorldVideoDataset(**({"buckets": BUCKETS} | kw))

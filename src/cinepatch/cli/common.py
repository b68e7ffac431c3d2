"""Arguments and helpers shared by the commands that make videos (generate, edit)."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from cinepatch.errors import InvalidParameter

__all__ = [
    "add_studio_arguments",
    "add_sampling_arguments",
    "build_request",
    "check_output",
    "create",
    "make_studio",
    "parse_size",
    "progress_bar",
    "show_warnings",
]


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 128x128")
    return int(match.group(1)), int(match.group(2))


def add_studio_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("installation")
    group.add_argument("--config", type=Path, help="settings file (YAML); default CONFIG_DIR/config.yaml")
    group.add_argument("--config-dir", type=Path, help="signing keys and presets (default ~/.config/cinepatch)")
    group.add_argument("--data-dir", type=Path, help="ledger and outputs (default ~/.local/share/cinepatch)")
    group.add_argument(
        "--no-visible-mark", action="store_true", help="leave out the corner mark (credentials and the invisible watermark stay)"
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("video")
    length = group.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="duration, fractions allowed (default 4)")
    length.add_argument("--frames", type=int, help="number of frames (instead of --seconds)")
    group.add_argument("--size", type=parse_size, metavar="WxH", help="default: the model's own (64x64 for the embedded model)")
    group.add_argument("--fps", type=int, help="frames per second (default: the preset's, else the model's)")
    group.add_argument("--model", default="default", help="model alias or folder (default: the embedded model)")
    group.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    group.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    group.add_argument("--negative", default="", help="what the video should not show")
    group.add_argument("--preset", help="style preset (built-in: cinematic, draft, crisp; or your presets.yaml)")
    group.add_argument(
        "--expand", action=argparse.BooleanOptionalAction, default=True,
        help="rewrite the prompt into the detailed caption style before encoding (default on)",
    )


def make_studio(args: argparse.Namespace):
    """The Studio for this installation: paths resolved here, at the edge."""
    import dataclasses

    from cinepatch.app import Studio
    from cinepatch.config import default_dirs, load_config

    config_dir, data_dir = default_dirs()
    config_dir = args.config_dir or config_dir
    data_dir = args.data_dir or data_dir
    config = load_config(args.config or config_dir / "config.yaml", config_dir=config_dir, data_dir=data_dir)
    if getattr(args, "no_visible_mark", False):
        config = dataclasses.replace(config, visible_mark=False)
    return Studio(config)


class progress_bar:
    """A tqdm bar driven by fractions 0..1 (what Studio.create reports)."""

    def __init__(self, label: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=100, desc=label, unit="%", file=sys.stderr, leave=False,
                         bar_format="{desc} {bar} {n:.0f}% [{elapsed}<{remaining}]")

    def __call__(self, fraction: float) -> None:
        self._bar.n = max(self._bar.n, min(100.0, fraction * 100))
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


@contextlib.contextmanager
def show_warnings() -> Iterator[None]:
    """Print the studio's warnings as plain ``cinepatch: warning: ...`` lines on stderr."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        print(f"cinepatch: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


def build_request(args: argparse.Namespace, *, prompt: str, seed: int | None, size: tuple[int, int] | None,
                  edit: str | None = None, sources: tuple[Path, ...] = (), params: dict | None = None):
    """A VideoRequest from the shared video arguments (add_sampling_arguments) and the edit's own."""
    from cinepatch.app import VideoRequest

    width, height = size if size is not None else (None, None)
    return VideoRequest(
        prompt=prompt,
        seconds=args.seconds if args.seconds is not None else 4.0,
        frames=args.frames,
        width=width,
        height=height,
        fps=args.fps,
        seed=seed,
        model=args.model,
        steps=args.steps,
        guidance=args.guidance,
        negative=args.negative,
        preset=args.preset,
        expand=args.expand,
        edit=edit,
        sources=sources,
        params=params or {},
    )


def create(studio, request, *, out: Path, label: str):  # noqa: ANN201 (VideoResult, imported lazily)
    """Run one request with a progress bar, print what was written and return the result."""
    bar = progress_bar(label)
    try:
        result = studio.create(request, out=out, progress=bar)
    finally:
        bar.close()
    if result.expanded_prompt != result.prompt:
        print(f"expanded prompt: {result.expanded_prompt}")
    print(
        f"wrote {result.path} ({result.width}x{result.height}, {result.frames} frames at {result.fps} fps, "
        f"{result.seconds:g} s, seed {result.seed}, model {result.model}, watermark {result.payload})"
    )
    return result


def check_output(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in ("", ".mp4", ".gif"):
        raise InvalidParameter("output", str(path), "a path ending in .mp4 or .gif, or a folder for PNG frames")

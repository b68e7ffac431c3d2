"""Style presets: named bundles of prompt decoration and sampling settings (``--preset``).

Built-in presets live in ``presets.yaml`` beside this file; a user's own ``presets.yaml`` in
the config folder adds to them or replaces them by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cinepatch.errors import InvalidParameter

if TYPE_CHECKING:
    from cinepatch.app import VideoRequest

__all__ = ["Preset", "load_presets", "apply_preset", "BUILTIN_PRESETS", "NO_PRESET"]

BUILTIN_PRESETS = Path(__file__).with_name("presets.yaml")


@dataclass(frozen=True)
class Preset:
    name: str
    prefix: str = ""
    suffix: str = ""
    negative: str = ""
    guidance: float | None = None
    steps: int | None = None
    fps: int | None = None

    def decorate(self, prompt: str) -> str:
        """The prompt the model encodes: decorated after expansion, so the expander and the
        moderation see only what the person wrote."""
        return f"{self.prefix}{prompt}{self.suffix}"


NO_PRESET = Preset(name="none")


def _read(path: Path) -> dict[str, Preset]:
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise InvalidParameter("presets", str(path), "a YAML mapping of preset names to settings")
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name"}
    presets = {}
    for name, values in raw.items():
        values = values or {}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise InvalidParameter(f"presets.{name}.{unknown[0]}", values[unknown[0]], f"one of {sorted(fields)}")
        presets[str(name)] = Preset(name=str(name), **values)
    return presets


def load_presets(user_path: Path | None = None) -> dict[str, Preset]:
    presets = _read(BUILTIN_PRESETS)
    if user_path is not None and user_path.exists():
        presets.update(_read(user_path))
    return presets


def apply_preset(
    request: VideoRequest, user_path: Path | None = None
) -> tuple[VideoRequest, Preset]:
    """The request with its preset's settings filled in, and the preset (to decorate the
    expanded prompt with). A request that names no preset comes back unchanged."""
    if request.preset is None:
        return request, NO_PRESET
    presets = load_presets(user_path)
    preset = presets.get(request.preset)
    if preset is None:
        raise InvalidParameter("preset", request.preset, f"one of {', '.join(sorted(presets))}")
    negative = ", ".join(part for part in (request.negative, preset.negative) if part)
    updated = dataclasses.replace(
        request,
        negative=negative,
        guidance=request.guidance if request.guidance is not None else preset.guidance,
        steps=request.steps if request.steps is not None else preset.steps,
        fps=request.fps if request.fps is not None else preset.fps,
    )
    return updated, preset

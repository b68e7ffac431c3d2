"""Settings of an installation, as typed frozen dataclasses read from one optional YAML file.

Paths are given explicitly: the CLI and the service resolve defaults (``~/.config/cinepatch``,
``~/.local/share/cinepatch``) at the edge and pass them in; nothing below reads ``os.environ``.
Unknown keys in the file are an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cinepatch.errors import InvalidParameter

__all__ = ["StudioConfig", "ExpansionConfig", "ModerationConfig", "default_dirs", "load_config"]

# Model aliases every installation has. A value is "embedded" (the shipped default model),
# "world" (the ground-truth oracle), or a path to a model folder.
DEFAULT_MODELS: dict[str, str] = {
    "default": "embedded",
    "cinepatch-1": "embedded",
    "oracle": "world",  # the world's renderer drawing the parsed prompt: a reference, not a model
    "world": "world",
    # Names OpenAI's clients send, mapped to the local default so they work unmodified.
    "sora-2": "embedded",
    "sora-2-pro": "embedded",
}


@dataclass(frozen=True)
class ExpansionConfig:
    backend: str = "world"  # "world" (offline, default) | "chat" (OpenAI-compatible endpoint)
    url: str = ""
    model: str = ""
    api_key: str = ""

    def __post_init__(self) -> None:
        if self.backend not in ("world", "chat"):
            raise InvalidParameter("expansion.backend", self.backend, "'world' or 'chat'")
        if self.backend == "chat" and not (self.url and self.model):
            raise InvalidParameter("expansion.url", self.url, "a URL and a model for backend 'chat'")


@dataclass(frozen=True)
class ModerationConfig:
    """An optional OpenAI-compatible moderation endpoint, asked beside the offline checks."""

    url: str = ""  # base URL: requests go to {url}/v1/moderations
    api_key: str = ""
    model: str = ""  # e.g. "omni-moderation-latest"
    fail_closed: bool = False  # refuse when the endpoint cannot be reached


@dataclass(frozen=True)
class StudioConfig:
    data_dir: Path  # ledger, service database, outputs
    config_dir: Path  # signing keys, user presets
    models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    visible_mark: bool = True
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    c2pa_cert: Path | None = None  # the user's own signing chain (PEM); None: a local CA
    c2pa_key: Path | None = None
    # Speed and memory settings for diffusers model folders, checked against
    # cinepatch.backends.diffusers.DiffusersSettings when such a model loads (docs/diffusers.md).
    diffusers: dict[str, Any] = field(default_factory=dict)

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def keys_dir(self) -> Path:
        return self.config_dir / "c2pa"

    @property
    def presets_path(self) -> Path:
        return self.config_dir / "presets.yaml"


def default_dirs(environ: dict[str, str] | None = None) -> tuple[Path, Path]:
    """``(config_dir, data_dir)`` by the XDG conventions; called only at the CLI/service edge."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME", "~")).expanduser()
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "cinepatch"
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "cinepatch"
    return config, data


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidParameter(f"{where}{unknown[0]}", values[unknown[0]], f"one of {sorted(known)}")
    return cls(**values)


def load_config(path: Path | None, *, config_dir: Path, data_dir: Path) -> StudioConfig:
    """Read ``path`` (YAML) if it exists; every key must be a field of :class:`StudioConfig`."""
    raw: dict[str, Any] = {}
    if path is not None and path.exists():
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise InvalidParameter("config", str(path), "a YAML mapping of settings")
    values: dict[str, Any] = {"config_dir": config_dir, "data_dir": data_dir}
    for key, value in raw.items():
        if key == "expansion":
            value = _build(ExpansionConfig, value, "expansion.")
        elif key == "moderation":
            value = _build(ModerationConfig, value, "moderation.")
        elif key == "diffusers":
            if not isinstance(value, dict):
                raise InvalidParameter("diffusers", value, "a mapping of DiffusersSettings fields")
        elif key == "models":
            value = {**DEFAULT_MODELS, **{str(k): str(v) for k, v in value.items()}}
        elif key in ("data_dir", "config_dir", "c2pa_cert", "c2pa_key"):
            value = Path(value).expanduser()
        values[key] = value
    return _build(StudioConfig, values, "")

"""What the service drives: any object with ``create(request, *, out, progress) -> result``.

The service never imports a model itself. Each worker process builds its generator once from
``ServiceConfig.generator`` ("module:callable", called with the config); the default is
cinepatch's own :class:`cinepatch.app.Studio`, so every request passes through the same
moderation, watermark and C2PA credentials as the CLI. Tests pass a tiny fast generator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cinepatch.errors import InvalidParameter

__all__ = ["Generator", "load_callable", "default_studio", "check_prompt", "request_type", "preset_names"]


class Generator(Protocol):
    def create(self, request: Any, *, out: Path, progress: Callable[[float], None] | None = None) -> Any: ...


def load_callable(spec: str) -> Callable[..., Any]:
    """``"package.module:name"`` → the object it names."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidParameter("generator", spec, "'module:callable'")
    return getattr(importlib.import_module(module_name), attr)


def request_type(generator: Generator) -> type:
    """The request class ``generator`` takes: its ``request_type`` or cinepatch's VideoRequest."""
    custom = getattr(generator, "request_type", None)
    if custom is not None:
        return custom
    from cinepatch.app import VideoRequest

    return VideoRequest


def default_studio(config: Any) -> Generator:
    """cinepatch's Studio; its ledger, signing keys and presets live under the data folder."""
    from cinepatch.app import Studio
    from cinepatch.config import load_config

    config_dir, data_dir = config.studio_dirs
    return Studio(load_config(config.studio_config, config_dir=config_dir, data_dir=data_dir))


def check_prompt(prompt: str) -> None:
    """cinepatch's offline prompt moderation (raises ``Refused``), run before a job is queued.

    The worker's ``Studio.create`` moderates again with the installation's full settings; this
    early check only lets a refused prompt fail at once, as a 400, instead of as a failed job.
    """
    from cinepatch import safety

    check = getattr(safety, "check_prompt", None)
    if check is not None:
        check(prompt)


def preset_names(config_dir: Path | None = None) -> tuple[str, ...]:
    """Built-in presets and the installation's own (``presets.yaml`` in its config folder)."""
    try:
        from cinepatch.presets import load_presets
    except ImportError:
        return ()
    user = config_dir / "presets.yaml" if config_dir is not None else None
    return tuple(sorted(load_presets(user if user is not None and user.exists() else None)))

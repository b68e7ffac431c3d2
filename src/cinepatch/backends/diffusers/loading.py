"""Open a local diffusers folder offline and choose the family from its ``model_index.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cinepatch.backends.diffusers.cogvideox import CogVideoXBackend
from cinepatch.backends.diffusers.common import DiffusersBackend
from cinepatch.backends.diffusers.ltx import LTXBackend
from cinepatch.backends.diffusers.settings import DiffusersSettings
from cinepatch.backends.diffusers.wan import WanBackend
from cinepatch.errors import ModelError

__all__ = ["load_diffusers_backend", "FAMILIES"]

# model_index.json's `_class_name` → the backend that drives it. Wan 2.2's two-expert models
# are WanPipeline / WanImageToVideoPipeline folders with a `transformer_2`.
FAMILIES: dict[str, type[DiffusersBackend]] = {
    "WanPipeline": WanBackend,
    "WanImageToVideoPipeline": WanBackend,
    "WanVideoToVideoPipeline": WanBackend,
    "LTXPipeline": LTXBackend,
    "LTXImageToVideoPipeline": LTXBackend,
    "LTXConditionPipeline": LTXBackend,
    "CogVideoXPipeline": CogVideoXBackend,
    "CogVideoXImageToVideoPipeline": CogVideoXBackend,
    "CogVideoXVideoToVideoPipeline": CogVideoXBackend,
}

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "vocab.json", "tokenizer_config.json")


def load_diffusers_backend(
    folder: str | Path, *, settings: DiffusersSettings | None = None
) -> DiffusersBackend:
    """The backend for a local diffusers folder, loaded without touching the network.

    Raises :class:`ModelError` for a folder that is not a diffusers pipeline, of a family
    cinepatch does not drive, or missing a component or its weights — before loading anything.
    """
    folder = Path(folder).expanduser()
    index = read_index(folder)
    class_name = index.get("_class_name")
    backend_class = FAMILIES.get(str(class_name))
    if backend_class is None:
        raise ModelError(
            f"{folder}: the pipeline {class_name!r} is not supported; supported: {', '.join(FAMILIES)}"
        )
    check_complete(folder, index)
    settings = settings or DiffusersSettings()
    try:
        import accelerate  # noqa: F401  (Wan's fp32-kept modules load only through accelerate)
        import diffusers
    except ImportError as error:
        raise ModelError(
            f"{folder} is a diffusers model and {error.name} is not installed: "
            "pip install 'cinepatch[diffusers]' (diffusers 0.42, transformers 5, accelerate)"
        ) from error
    device = settings.resolve_device()
    pipeline_class = getattr(diffusers, class_name)
    try:
        pipe = pipeline_class.from_pretrained(
            folder,
            local_files_only=True,  # HF_HUB_OFFLINE semantics: a local folder, never the network
            dtype=settings.torch_dtypes(device=device, family=backend_class.family),
        )
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, ImportError, AttributeError) as error:
        raise ModelError(f"{folder}: cannot load the {class_name} folder: {error}") from error
    pipe.set_progress_bar_config(disable=True)
    settings.prepare(pipe, device=device)
    return backend_class(pipe, folder=folder, class_name=class_name, settings=settings)


def read_index(folder: Path) -> dict[str, Any]:
    path = folder / "model_index.json"
    if not path.is_file():
        raise ModelError(f"{folder}: no model_index.json; not a diffusers pipeline folder")
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(index, dict):
        raise ModelError(f"{path}: not a JSON object")
    return index


def check_complete(folder: Path, index: dict[str, Any]) -> None:
    """Every component model_index.json names has its folder, config and weights."""
    problems = []
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
            continue
        kind = str(entry[1])
        part = folder / name
        if not part.is_dir():
            problems.append(f"{name}/ is missing")
        elif "Tokenizer" in kind:
            if not any((part / f).is_file() for f in TOKENIZER_FILES):
                problems.append(f"{name}/ has no tokenizer files")
        elif "Scheduler" in kind:
            if not (part / "scheduler_config.json").is_file():
                problems.append(f"{name}/scheduler_config.json is missing")
        elif "Processor" in kind:
            if not (part / "preprocessor_config.json").is_file():
                problems.append(f"{name}/preprocessor_config.json is missing")
        else:
            problems.extend(_weight_problems(name, part))
    if problems:
        raise ModelError(f"{folder}: incomplete diffusers folder: {'; '.join(problems)}")


def _weight_problems(name: str, part: Path) -> list[str]:
    if not (part / "config.json").is_file():
        return [f"{name}/config.json is missing"]
    for shard_index in part.glob("*.index.json"):
        try:
            shards = set(json.loads(shard_index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError):
            return [f"{name}/{shard_index.name} is not a readable shard index"]
        missing = sorted(shard for shard in shards if not (part / shard).is_file())
        if missing:
            return [f"{name}/ lacks the weight shards {', '.join(missing)}"]
        return []
    if not any(path.suffix in WEIGHT_SUFFIXES for path in part.iterdir()):
        return [f"{name}/ has no weights ({', '.join('*' + s for s in WEIGHT_SUFFIXES)})"]
    return []

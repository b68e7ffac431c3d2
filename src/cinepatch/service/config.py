"""The service's configuration: one frozen dataclass, defaults that run on a laptop.

``ServiceConfig.load(path)`` reads a TOML file whose keys are exactly the field names; an
unknown key is an error, not a silently ignored typo.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cinepatch import limits
from cinepatch.errors import InvalidParameter

__all__ = ["ServiceConfig", "OPENAI_SIZE_MAP"]

# OpenAI's Videos API sizes, mapped onto the sizes the embedded default model was trained at
# in the same orientation (64 px on the short side; 7:4 is the nearest multiple-of-16 shape
# to 16:9). Set ``size_map = {}`` to reject them instead, or map them to your model's sizes.
OPENAI_SIZE_MAP: dict[str, str] = {
    "720x1280": "64x112",
    "1280x720": "112x64",
    "1024x1792": "64x112",
    "1792x1024": "112x64",
}


@dataclass(frozen=True)
class ServiceConfig:
    # Videos, uploads and (with SQLite) the job store. Several hosts sharing one ``database``
    # must share this folder too (an NFS mount, say): every output is written atomically under
    # a name unique to its job and claim, so two hosts never write the same file.
    data_dir: Path
    # None: SQLite in data_dir, for one machine. A ``postgresql://`` URL: a job store that any
    # number of API servers and workers, on any hosts, can share.
    database: str | None = None
    # "module:callable" building the generator in each worker process; it is called with this
    # config and returns an object with ``create(request, *, out, progress) -> VideoResult``.
    generator: str = "cinepatch.service.generator:default_studio"
    generator_options: dict[str, object] = field(default_factory=dict)  # read by the factory
    # The default Studio's installation: its YAML settings, config folder (signing keys, user
    # presets) and data folder (ledger). None: folders under data_dir. `cinepatch serve` fills
    # them with the CLI's own folders, so both make videos as the same installation.
    studio_config: Path | None = None
    studio_config_dir: Path | None = None
    studio_data_dir: Path | None = None
    # "module:callable" run on the prompt before a job is queued (raises Refused), so a refused
    # prompt is a 400 at once rather than a failed job later. None: only the worker's check.
    prompt_check: str | None = "cinepatch.service.generator:check_prompt"
    workers: int = 1
    allow_anonymous: bool = False  # no key needed; only accepted when bound to loopback
    # API model name → model alias the studio understands.
    models: dict[str, str] = field(
        default_factory=lambda: {
            "sora-2": "sora-2", "sora-2-pro": "sora-2-pro", "default": "default",
            "cinepatch-1": "cinepatch-1", "world": "world",
        }
    )
    default_model: str = "sora-2"
    size_map: dict[str, str] = field(default_factory=lambda: dict(OPENAI_SIZE_MAP))
    default_size: str = "64x64"  # the embedded default model's native size
    min_side: int = 32
    max_side: int = 512
    max_seconds: float = 12.0
    default_seconds: float = 4.0
    presets: tuple[str, ...] = ()  # empty: the names cinepatch.presets knows
    max_prompt_chars: int = 2000
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_side: int = 4096
    concurrency_per_key: int = 2  # jobs queued or running at once
    daily_quota: int = 200  # jobs created per UTC day
    lease_seconds: float = 30.0  # a job whose worker stops heartbeating this long is requeued
    max_attempts: int = 2  # a job interrupted this many times is failed, not requeued
    poll_after_ms: int = 250  # hint sent to the openai client's poll helper

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "presets", tuple(self.presets))
        for name in ("studio_config", "studio_config_dir", "studio_data_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if self.database is not None and not self.database.startswith(("postgresql://", "postgres://")):
            raise InvalidParameter("database", self.database, "a postgresql://USER@HOST:PORT/NAME URL (or none, for SQLite)")
        if self.workers < 0:
            raise InvalidParameter("workers", self.workers, "0 or more")
        if self.default_model not in self.models:
            raise InvalidParameter("default_model", self.default_model, f"one of {sorted(self.models)}")
        if self.max_attempts < 1:
            raise InvalidParameter("max_attempts", self.max_attempts, "1 or more")
        # a service may allow less than the Studio renders, never more
        limits.SECONDS.check(self.max_seconds, name="max_seconds")
        limits.SECONDS.check(self.default_seconds, name="default_seconds")
        if self.default_seconds > self.max_seconds:
            raise InvalidParameter("default_seconds", self.default_seconds, f"at most max_seconds ({self.max_seconds:g})")
        if not 1 <= self.max_prompt_chars <= limits.PROMPT_CHARS.high:
            raise InvalidParameter("max_prompt_chars", self.max_prompt_chars, f"1 to {limits.PROMPT_CHARS.high:g}")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "service.sqlite3"

    def video_dir(self, video_id: str) -> Path:
        return self.data_dir / "videos" / video_id

    @property
    def studio_dirs(self) -> tuple[Path, Path]:
        """``(config_dir, data_dir)`` of the default Studio."""
        return (self.studio_config_dir or self.data_dir / "config", self.studio_data_dir or self.data_dir / "studio")

    def upload_dir(self, video_id: str) -> Path:
        return self.data_dir / "uploads" / video_id

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["data_dir"] = str(self.data_dir)
        for name in ("studio_config", "studio_config_dir", "studio_data_dir"):
            data[name] = str(getattr(self, name)) if getattr(self, name) else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        return cls(**json.loads(text))

    @classmethod
    def load(cls, path: Path | None, **overrides: object) -> ServiceConfig:
        """Read a TOML file (optional) and apply ``overrides`` (None values are skipped)."""
        values: dict[str, object] = {}
        if path is not None:
            values.update(tomllib.loads(Path(path).read_text()))
        values.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InvalidParameter("config", unknown, f"keys among {sorted(names)}")
        return cls(**values)  # type: ignore[arg-type]

"""Many videos at once: one per line of a JSONL file, on Ray or in local processes.

::

    prompts.jsonl ──► pending lines (manifest.jsonl says which are finished)
                        │ one task per line: Ray (local instance or a cluster) or local processes
                        ▼
                      generator.create(request)   the same entry as CLI and service: moderation,
                        │                         frame review, marks, C2PA, ledger
                        ▼
                      OUT/00007.mp4 (atomic)  +  one manifest record per line, appended by the driver

Each line is a JSON object: ``prompt`` and any ``VideoRequest`` field (``seconds``, ``frames``,
``size`` as "WxH" or ``width``/``height``, ``fps``, ``seed``, ``model``, ``steps``,
``guidance``, ``negative``, ``preset``, ``expand``, ``edit``, ``sources``, ``params``).

The manifest records each line's status — ``completed``, ``refused`` (moderation or frame
review said no: recorded, never retried) or ``failed`` — with its output, seed, model,
watermark and time. Only the driver writes it, so a task that Ray retries after its worker
died is recorded once. A re-run skips completed and refused lines and tries failed ones again;
at the end the manifest is rewritten with one record per line.

Ray is optional (``pip install -e ".[cluster]"``); ``run_tasks`` is also the engine of
``cinepatch world sample --ray``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cinepatch.errors import CinepatchError, InvalidParameter, Refused

__all__ = ["BatchConfig", "BatchLine", "Summary", "read_lines", "read_manifest", "run_batch", "run_tasks",
           "ray_available", "MANIFEST"]

MANIFEST = "manifest.jsonl"
FINISHED = ("completed", "refused")
# Fields a line may set: VideoRequest's, plus "size" ("WxH") and an optional "id" for the manifest.
REQUEST_FIELDS = ("prompt", "seconds", "frames", "width", "height", "fps", "seed", "model", "steps", "guidance",
                  "negative", "preset", "expand", "edit", "sources", "params")
LINE_FIELDS = (*REQUEST_FIELDS, "size", "id")
RAY_RETRIES = 3  # times Ray reruns a task whose worker process died


@dataclass(frozen=True)
class BatchConfig:
    prompts: Path
    out: Path
    address: str | None = None  # None: a local Ray instance; "auto" or "ray://HOST:PORT": a cluster
    workers: int = 2  # tasks running at once (and CPUs of a local Ray instance)
    use_ray: bool = True  # False: local processes even when Ray is installed
    # What makes the videos, as in the service: "module:callable", called with a ServiceConfig.
    generator: str = "cinepatch.service.generator:default_studio"
    generator_options: dict[str, object] = field(default_factory=dict)
    studio_config: Path | None = None
    studio_config_dir: Path | None = None
    studio_data_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 4096:
            raise InvalidParameter("workers", self.workers, "1 to 4096")
        if self.address is not None and self.address != "auto" and not self.address.startswith("ray://"):
            raise InvalidParameter("address", self.address, "'auto' or ray://HOST:PORT")

    def service_config(self) -> Any:
        """The settings the generator factory reads (the same factories the service uses)."""
        from cinepatch.service.config import ServiceConfig

        return ServiceConfig(
            data_dir=self.out, generator=self.generator, generator_options=dict(self.generator_options),
            studio_config=self.studio_config, studio_config_dir=self.studio_config_dir,
            studio_data_dir=self.studio_data_dir,
        )


@dataclass(frozen=True)
class BatchLine:
    number: int  # 1-based line number in the prompts file
    fields: dict[str, Any]

    @property
    def output(self) -> str:
        return f"{self.number:05d}.mp4"


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0  # finished by an earlier run
    completed: int = 0
    refused: int = 0
    failed: int = 0


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


# -- reading ----------------------------------------------------------------------------------


def _check_line(number: int, fields: Any, base: Path) -> dict[str, Any]:
    if not isinstance(fields, dict):
        raise InvalidParameter(f"line {number}", type(fields).__name__, "a JSON object with a 'prompt'")
    unknown = sorted(set(fields) - set(LINE_FIELDS))
    if unknown:
        raise InvalidParameter(f"line {number}", unknown, f"fields among {', '.join(LINE_FIELDS)}")
    if not isinstance(fields.get("prompt"), str) or not fields["prompt"].strip():
        raise InvalidParameter(f"line {number}: prompt", fields.get("prompt"), "a non-empty text")
    fields = dict(fields)
    size = fields.pop("size", None)
    if size is not None:
        try:
            fields["width"], fields["height"] = (int(v) for v in str(size).lower().split("x"))
        except ValueError:
            raise InvalidParameter(f"line {number}: size", size, "WIDTHxHEIGHT, e.g. 64x64") from None
    # Source files are named relative to the prompts file, so a batch folder can move as one.
    fields["sources"] = [str(base / s) for s in fields.get("sources", [])]
    return fields


def read_lines(path: Path) -> list[BatchLine]:
    """The prompts file's lines (blank lines skipped), each checked; errors name the line."""
    lines = []
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidParameter(f"line {number}", text[:60], f"one JSON object per line ({exc.msg})") from None
        lines.append(BatchLine(number, _check_line(number, fields, Path(path).parent)))
    if not lines:
        raise InvalidParameter("prompts", str(path), "a JSONL file with at least one line")
    return lines


def read_manifest(out: Path) -> dict[int, dict[str, Any]]:
    """Each line's latest record (a later run's record replaces an earlier one)."""
    path = Path(out) / MANIFEST
    records: dict[int, dict[str, Any]] = {}
    if path.exists():
        for text in path.read_text().splitlines():
            if text.strip():
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:  # a torn last line from a killed run: redo that line
                    continue
                records[int(record["line"])] = record
    return records


# -- one line, in a worker --------------------------------------------------------------------

_GENERATORS: dict[str, Any] = {}  # per worker process: the generator is built once, then reused


def render_line(config: BatchConfig, line: BatchLine) -> dict[str, Any]:
    """Make one line's video; returns its manifest record. Runs in a Ray or pool worker."""
    from cinepatch.service.generator import load_callable, request_type

    started = time.monotonic()
    record: dict[str, Any] = {"line": line.number, "prompt": line.fields["prompt"], "id": line.fields.get("id")}
    try:
        key = repr(config)
        if key not in _GENERATORS:
            service = config.service_config()
            _GENERATORS[key] = load_callable(service.generator)(service)
        generator = _GENERATORS[key]
        fields = {k: v for k, v in line.fields.items() if k in REQUEST_FIELDS}
        fields["sources"] = tuple(Path(s) for s in fields.get("sources", ()))
        request = request_type(generator)(**fields)
        result = generator.create(request, out=config.out / line.output)
        record.update(status="completed", output=line.output, seed=result.seed, model=result.model,
                      watermark=result.payload)
    except Refused as exc:
        record.update(status="refused", stage=exc.stage, category=exc.category, message=str(exc))
    except CinepatchError as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - one line's bug must not stop a thousand others
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    record["seconds"] = round(time.monotonic() - started, 3)
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record


# -- the engine -------------------------------------------------------------------------------


def run_tasks(fn: Callable[..., Any], arguments: Sequence[tuple], *, workers: int, use_ray: bool,
              address: str | None = None, say: Callable[[str], None] = print) -> Iterator[Any]:
    """``fn(*args)`` for each tuple, at most ``workers`` at once; results as they finish.

    On Ray (a local instance with ``workers`` CPUs, or the cluster at ``address``) a task
    whose worker process dies is run again, up to ``RAY_RETRIES`` times; its result comes back
    once. Without Ray, a pool of local processes.
    """
    if use_ray and ray_available():
        yield from _ray_tasks(fn, arguments, workers=workers, address=address, say=say)
        return
    if use_ray:
        say(f"Ray is not installed (pip install -e '.[cluster]'): running in {workers} local processes")
    else:
        say(f"running in {workers} local processes")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(fn, *args) for args in arguments]
        for future in as_completed(futures):
            yield future.result()


def _ray_tasks(fn: Callable[..., Any], arguments: Sequence[tuple], *, workers: int, address: str | None,
               say: Callable[[str], None]) -> Iterator[Any]:
    import ray

    if address is None:
        # Workers inherit this process's environment, so the same cinepatch is imported there.
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(_import_path())}})
        say(f"running on a local Ray instance with {workers} workers")
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        say(f"running on the Ray cluster at {address}, {workers} tasks at a time")
    try:
        remote = ray.remote(num_cpus=1, max_retries=RAY_RETRIES, retry_exceptions=False)(_call)
        waiting = list(arguments)[::-1]
        running: list[Any] = []
        while waiting or running:
            while waiting and len(running) < workers:
                running.append(remote.remote(fn, *waiting.pop()))
            done, running = ray.wait(running, num_returns=1)
            yield ray.get(done[0])
    finally:
        ray.shutdown()


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """The one Ray task: any callable (a partial too, which ``ray.remote`` refuses) and its arguments."""
    return fn(*args)


def _import_path() -> list[str]:
    """Where this process finds its modules (PYTHONPATH entries first), for Ray's workers."""
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    package_root = str(Path(__file__).resolve().parents[1])
    return [*entries, package_root] if package_root not in entries else entries


# -- the driver -------------------------------------------------------------------------------


def _append(handle: Any, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _compact(out: Path, lines: Iterable[BatchLine]) -> None:
    """Rewrite the manifest with one record per line, in line order (atomically)."""
    from cinepatch.io.atomic import write_bytes

    records = read_manifest(out)
    ordered = [records[line.number] for line in lines if line.number in records]
    write_bytes(out / MANIFEST, "".join(json.dumps(r) + "\n" for r in ordered).encode())


def run_batch(config: BatchConfig, *, say: Callable[[str], None] = print, bar: bool = True) -> Summary:
    """Make every unfinished line's video; returns what happened."""
    from tqdm import tqdm

    lines = read_lines(config.prompts)
    config.out.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(config.out)
    finished = {n for n, r in previous.items() if r.get("status") in FINISHED}
    pending = [line for line in lines if line.number not in finished]
    summary = Summary(total=len(lines), skipped=len(lines) - len(pending))
    if summary.skipped:
        say(f"{summary.skipped} of {len(lines)} lines already finished (see {config.out / MANIFEST})")
    if pending:
        progress = tqdm(total=len(pending), desc="batch", unit="video", disable=not bar)
        with open(config.out / MANIFEST, "a") as manifest:
            for record in run_tasks(render_line, [(config, line) for line in pending], workers=config.workers,
                                    use_ray=config.use_ray, address=config.address, say=say):
                _append(manifest, record)
                setattr(summary, record["status"], getattr(summary, record["status"]) + 1)
                progress.set_postfix(done=summary.completed, refused=summary.refused, failed=summary.failed)
                progress.update(1)
        progress.close()
    _sweep(config.out, lines)
    _compact(config.out, lines)
    return summary


def _sweep(out: Path, lines: Iterable[BatchLine]) -> None:
    """Remove the hidden files and folders a killed worker left beside a line's video while
    writing it (``.00007.…``): it could not clean up, and the line was made again."""
    for line in lines:
        for stale in out.glob(f".{Path(line.output).stem}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)

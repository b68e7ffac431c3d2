"""A worker process: claim a job, run the generator, write the previews, record the result.

Run by the supervisor as ``python -m cinepatch.service.worker --config JSON --worker-id ID``.
Generation happens here, never in the server's event loop. The worker dies with its parent
(``PR_SET_PDEATHSIG``), so after ``kill -9`` of the server no orphan keeps writing; the
restarted server requeues what was running.

On other hosts, ``cinepatch worker --db URL --storage DIR`` runs the same loop with no server
and no parent to follow (:func:`serve_jobs`); it sweeps expired leases itself, so a worker
that vanished mid-job is noticed even where no API server runs a supervisor.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from cinepatch.errors import Cancelled, CinepatchError, InvalidParameter, MediaError, Refused  # Cancelled: re-exported
from cinepatch.service.config import ServiceConfig
from cinepatch.service.generator import Generator, load_callable, request_type
from cinepatch.service.store import Job, JobStore, open_store

__all__ = ["run_job", "serve_jobs", "main", "files_of", "provenance_file", "write_provenance", "worker_name", "with_model", "Cancelled"]

log = logging.getLogger("cinepatch.service.worker")

# Each claim writes its own files (named with the claim's tag), and the job's result names the
# ones that count; so a worker presumed dead that wakes up late can never overwrite the files
# of the claim that completed the job.
VARIANT_FILES = {"video": "video.{tag}.mp4", "thumbnail": "thumbnail.{tag}.webp", "spritesheet": "spritesheet.{tag}.jpg"}
SPRITE_FRAMES = 10
GENERATION_SHARE = 95  # progress 0..95 is the generator's; 95..100 the previews and checks



def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the ppid check in the heartbeat covers it
        pass


def files_of(job: Job | None) -> dict[str, str]:
    """The file names of a completed job's variants (empty if it has none)."""
    return dict(((job.result or {}).get("files") or {}) if job is not None else {})


def provenance_file(video_file: str) -> str:
    return video_file.replace("video.", "provenance.", 1).removesuffix(".mp4") + ".json"


def source_paths(store: JobStore, config: ServiceConfig, spec: dict[str, Any]) -> tuple[Path, ...]:
    """The job's sources as files: earlier videos by id, or uploads saved with the job."""
    paths = []
    for source in spec.get("sources", []):
        if "video_id" in source:
            name = files_of(store.get(source["video_id"])).get("video", "missing.mp4")
            paths.append(config.video_dir(source["video_id"]) / name)
        else:
            paths.append(Path(source["path"]))
    return tuple(paths)


def build_request(generator: Generator, store: JobStore, config: ServiceConfig, spec: dict[str, Any]) -> Any:
    fields = {k: v for k, v in spec.items() if k not in ("sources", "params")}
    if fields.get("plan") is not None:  # stored as the JSON the API received, read strictly again
        from cinepatch.planning import ScenePlan

        fields["plan"] = ScenePlan.from_dict(fields["plan"])
    else:
        fields.pop("plan", None)  # a generator without plans never sees the field
    return request_type(generator)(
        **fields, sources=source_paths(store, config, spec), params=dict(spec.get("params", {}))
    )


def write_previews(folder: Path, files: dict[str, str]) -> dict[str, Any]:
    """Thumbnail (WebP, middle frame) and spritesheet (JPEG strip) beside the video."""
    from cinepatch.io.video import read_video, write_image, write_strip

    frames = read_video(folder / files["video"]).frames
    write_image(folder / files["thumbnail"], frames[len(frames) // 2], quality=85)
    write_strip(folder / files["spritesheet"], frames, n=SPRITE_FRAMES)
    return {"sprite_frames": min(SPRITE_FRAMES, len(frames))}


def write_provenance(folder: Path, video_file: str) -> dict[str, Any]:
    """The verify report of a finished file, written beside it (the file never changes after)."""
    from cinepatch.io.atomic import write_bytes

    try:
        from cinepatch.provenance import verify
    except ImportError:
        report: dict[str, Any] = {"available": False, "reason": "cinepatch.provenance.verify is not installed"}
    else:
        try:
            report = verify(folder / video_file).to_dict()
        except CinepatchError as exc:
            report = {"available": False, "reason": str(exc)}
    write_bytes(folder / provenance_file(video_file), json.dumps(report, indent=2, default=str).encode())
    return report


def _result_dict(result: Any, sprite: dict[str, Any]) -> dict[str, Any]:
    keys = ("width", "height", "fps", "frames", "seconds", "expanded_prompt", "model", "seed", "payload")
    out = {k: getattr(result, k, None) for k in keys}
    seconds = out.get("seconds")
    if isinstance(seconds, (int, float)):
        out["seconds_label"] = f"{round(float(seconds), 2):g}"
    out["warnings"] = [str(w) for w in getattr(result, "warnings", ())]
    plan = getattr(result, "plan", None)
    out["plan"] = plan.to_dict() if plan is not None else None  # GET /v1/videos/{id}/plan
    out.update(sprite)
    return out


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, Refused):
        return {"code": "moderation_blocked", "message": str(exc), "type": "invalid_request_error",
                "param": "prompt" if exc.stage == "prompt" else None}
    if isinstance(exc, InvalidParameter):
        return {"code": "invalid_value", "message": str(exc), "type": "invalid_request_error", "param": exc.name}
    if isinstance(exc, MediaError):
        return {"code": "invalid_media", "message": str(exc), "type": "invalid_request_error", "param": None}
    if isinstance(exc, CinepatchError):
        return {"code": "generation_failed", "message": str(exc), "type": "server_error", "param": None}
    return {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "type": "server_error", "param": None}


def run_job(store: JobStore, config: ServiceConfig, generator: Generator, job: Job, *,
            follow_parent: bool = True) -> str:
    """Run one claimed job to completion or failure; returns the final status.

    ``follow_parent``: exit at once if the process that started this one goes away (the
    supervisor's workers); a standalone worker has no such parent.
    """
    assert job.claim_token is not None
    token = job.claim_token
    folder = config.video_dir(job.id)
    folder.mkdir(parents=True, exist_ok=True)
    tag = token[:12]
    files = {variant: pattern.format(tag=tag) for variant, pattern in VARIANT_FILES.items()}
    stop = threading.Event()
    lost = threading.Event()
    parent = os.getppid()

    def beat() -> None:  # keeps the lease while the generator is busy between progress calls
        while not stop.wait(config.lease_seconds / 4):
            if follow_parent and os.getppid() != parent:
                os._exit(1)
            if not store.heartbeat(job.id, token, lease_seconds=config.lease_seconds):
                lost.set()

    last = [0.0, -1]

    def progress(fraction: float) -> None:
        if lost.is_set():
            raise Cancelled(job.id)
        percent = int(max(0.0, min(1.0, float(fraction))) * GENERATION_SHARE)
        now = time.monotonic()
        if percent != last[1] and (now - last[0] > 0.1 or percent >= GENERATION_SHARE):
            last[0], last[1] = now, percent
            if not store.heartbeat(job.id, token, lease_seconds=config.lease_seconds, progress=percent):
                lost.set()
                raise Cancelled(job.id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        request = build_request(generator, store, config, job.spec)
        result = generator.create(request, out=folder / files["video"], progress=progress)
        store.heartbeat(job.id, token, lease_seconds=config.lease_seconds, progress=GENERATION_SHARE + 1)
        sprite = write_previews(folder, files)
        if not store.complete(job.id, token, {**_result_dict(result, sprite), "files": files}):
            raise Cancelled(job.id)
        for stale in folder.iterdir():  # earlier, interrupted claims' leftovers
            if stale.is_file() and tag not in stale.name:
                stale.unlink(missing_ok=True)
        return "completed"
    except Cancelled:
        log.info("job %s was deleted or taken over; dropping this claim's files", job.id)
        if store.get(job.id) is None:  # deleted: remove everything
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for name in files.values():
                (folder / name).unlink(missing_ok=True)
        return "cancelled"
    except Exception as exc:  # every failure is recorded on the job, with its reason
        if not isinstance(exc, CinepatchError):
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        for name in files.values():  # a failed job keeps no half-made outputs
            (folder / name).unlink(missing_ok=True)
        store.fail(job.id, token, _error(exc))
        return "failed"
    finally:
        stop.set()


class _OneModel:
    """A generator whose every request uses one model: a host dedicated to that model."""

    def __init__(self, inner: Generator, model: str) -> None:
        self.inner = inner
        self.model = model
        self.request_type = request_type(inner)

    def create(self, request: Any, *, out: Path, progress: Any = None) -> Any:
        import dataclasses

        return self.inner.create(dataclasses.replace(request, model=self.model), out=out, progress=progress)


def with_model(generator: Generator, model: str) -> Generator:
    """``generator``, with every request's model replaced by ``model`` (``cinepatch worker --model``)."""
    return _OneModel(generator, model)


def worker_name() -> str:
    """A worker id that says where it runs: host, process and a random tail."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def serve_jobs(store: JobStore, config: ServiceConfig, generator: Generator, worker_id: str, *,
               stop: threading.Event, follow_parent: bool, sweep: bool, max_jobs: int | None = None) -> int:
    """Claim and run jobs until ``stop`` is set (or ``max_jobs`` ran); returns how many ran.

    ``sweep``: also requeue jobs whose lease expired (their worker vanished) every half lease.
    """
    from cinepatch.service.supervisor import sweep_expired

    parent = os.getppid()
    done = 0
    last_sweep = 0.0
    while not stop.is_set() and (max_jobs is None or done < max_jobs):
        if follow_parent and os.getppid() != parent:
            return done
        if sweep and time.monotonic() - last_sweep > config.lease_seconds / 2:
            last_sweep = time.monotonic()
            sweep_expired(store, config)
        try:
            job = store.claim(worker_id, lease_seconds=config.lease_seconds)
        except Exception as exc:  # noqa: BLE001 - a database restart must not end a remote worker
            log.warning("could not claim a job (%s); retrying in 2 s", exc)
            stop.wait(2.0)
            continue
        if job is None:
            stop.wait(0.2)
            continue
        log.info("claimed %s (attempt %d)", job.id, job.attempts)
        status = run_job(store, config, generator, job, follow_parent=follow_parent)
        log.info("%s %s", job.id, status)
        done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cinepatch.service.worker")
    parser.add_argument("--config", required=True, help="the ServiceConfig as JSON")
    parser.add_argument("--worker-id", required=True)
    args = parser.parse_args(argv)
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {args.worker_id} %(levelname)s %(message)s")
    config = ServiceConfig.from_json(args.config)
    store = open_store(config)
    generator = load_callable(config.generator)(config)
    print(f"ready {args.worker_id}", flush=True)
    serve_jobs(store, config, generator, args.worker_id, stop=threading.Event(), follow_parent=True, sweep=False)
    return 1  # only when the parent went away


if __name__ == "__main__":
    sys.exit(main())

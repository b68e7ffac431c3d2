"""Jobs per minute for 1 vs 2 workers on one PostgreSQL job store: is the queue the bottleneck?

    python benchmarks/queue_throughput.py [--jobs 40] [--job-seconds 0.25]

Starts a throwaway PostgreSQL server (as the tests do), then for 1 and 2 workers:

1. **through workers** — `cinepatch worker --db … --storage …` processes with the tests' fast
   stand-in generator, which sleeps ``--job-seconds`` per job (a GPU-bound worker leaves its CPU
   idle; on a shared 2-core machine a CPU-burning stand-in would measure CPU contention instead)
   and writes a real H.264 file and previews. Time from queueing ``--jobs`` jobs until the last
   one completes, with the workers already started;
2. **the queue alone** — processes that only claim and complete (no generation): the rate the
   store itself sustains, for comparison with (1).

If (1) doubles from 1 to 2 workers and (2) is far above it, the queue is not the bottleneck.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))

from postgres import remove_cluster, start_cluster  # noqa: E402  (the tests' throwaway server)

from cinepatch.service.store import connect  # noqa: E402


def job(i: int) -> dict:
    return {"id": f"video_{i:05d}", "owner": "bench", "model": "sora-2", "seconds": "1", "size": "64x64",
            "prompt": f"clip {i}", "kind": "create",
            "spec": {"prompt": f"clip {i}", "seconds": 1.0, "width": 64, "height": 64, "fps": 8, "model": "sora-2"}}


def queue(store, jobs: int) -> None:
    for i in range(jobs):
        store.create_job(job(i), concurrency=10**6, daily_quota=10**6)


def wait_done(store, jobs: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while store.counts().get("completed", 0) + store.counts().get("failed", 0) < jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {store.counts()}")
        time.sleep(0.02)
    if store.counts().get("failed"):
        raise RuntimeError(f"jobs failed: {store.counts()}")


def through_workers(url: str, workers: int, jobs: int, job_seconds: float, folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "service.toml"
    config.write_text('generator = "standin:make"\n'
                      f'generator_options = {{ step_seconds = {job_seconds / 10}, steps = 10 }}\n')
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "service"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "cinepatch", "worker", "--db", url, "--storage", str(folder / "data"),
                               "--config", str(config), "--log-level", "warning"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(workers)]
    try:
        for p in procs:
            p.stdout.readline()  # "cinepatch worker … ready"
        store = connect(url)
        started = time.perf_counter()
        queue(store, jobs)
        wait_done(store, jobs)
        elapsed = time.perf_counter() - started
        store.close()
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    return jobs / elapsed * 60


def _claim_loop(url: str, name: str, out: mp.Queue) -> None:
    store = connect(url)
    n = 0
    while (claimed := store.claim(name, lease_seconds=30)) is not None:
        store.complete(claimed.id, claimed.claim_token, {"seconds_label": "1"})
        n += 1
    store.close()
    out.put(n)


def queue_alone(url: str, processes: int, jobs: int) -> float:
    store = connect(url)
    queue(store, jobs)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_loop, args=(url, f"q{i}", out)) for i in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    total = sum(out.get(timeout=300) for _ in procs)
    elapsed = time.perf_counter() - started  # includes process start: a lower bound on the rate
    for p in procs:
        p.join()
    assert total == jobs and store.counts() == {"completed": jobs}
    store.close()
    return jobs / elapsed * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--job-seconds", type=float, default=0.25)
    parser.add_argument("--queue-jobs", type=int, default=1000)
    args = parser.parse_args()
    cluster = start_cluster()
    if cluster is None:
        sys.exit("no PostgreSQL server binaries (Debian: apt-get install postgresql)")
    try:
        print(f"{args.jobs} jobs, stand-in generator sleeping {args.job_seconds:g} s per job")
        print(f"{'':28}{'1 worker':>12}{'2 workers':>12}{'ratio':>8}")
        with tempfile.TemporaryDirectory() as tmp:
            rates = [through_workers(cluster.new_database(), n, args.jobs, args.job_seconds, Path(tmp) / f"w{n}")
                     for n in (1, 2)]
        print(f"{'through workers (jobs/min)':28}{rates[0]:>12.0f}{rates[1]:>12.0f}{rates[1] / rates[0]:>8.2f}")
        ideal = 60 / args.job_seconds
        print(f"{'  ideal: generation only':28}{ideal:>12.0f}{2 * ideal:>12.0f}{2:>8.2f}")
        alone = [queue_alone(cluster.new_database(), n, args.queue_jobs) for n in (1, 2)]
        print(f"{'queue alone (jobs/min)':28}{alone[0]:>12.0f}{alone[1]:>12.0f}{alone[1] / alone[0]:>8.2f}")
    finally:
        remove_cluster(cluster)


if __name__ == "__main__":
    main()

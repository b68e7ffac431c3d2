"""Load on the studio service: N clients poll a running job and list videos for D seconds.

    python benchmarks/service_load.py [--clients 50] [--seconds 30] [--generator standin:make]

Each client pauses --interval between requests (default 250 ms, the `openai-poll-after-ms`
hint the API sends; 0 runs flat out, which measures throughput rather than latency). Starts a real `cinepatch serve` on loopback (a temporary data folder), fills the library with
30 finished videos, starts one long generation that keeps a worker busy on the CPU, then runs
the clients: each alternates GET /v1/videos/{running id} and GET /v1/videos?limit=20 as fast as
it can. Prints p50/p90/p99/max latency per request kind, the request rate, and every error.
The clients share the machine with the server; on a small machine their own cost is part of
the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "service"))

from harness import make_server  # noqa: E402  (the tests' real-server harness)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def client(http: httpx.AsyncClient, running: str, start: float, until: float, interval: float, out: dict) -> None:
    await asyncio.sleep(max(0.0, start - time.time()) + random.uniform(0, interval))
    turn = 0
    while time.time() < until:
        if turn:
            await asyncio.sleep(interval)
        kind, path = ("poll", f"/v1/videos/{running}") if turn % 2 == 0 else ("list", "/v1/videos?limit=20")
        turn += 1
        began = time.perf_counter()
        try:
            response = await http.get(path)
            elapsed = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                out["errors"].append(f"{kind}: HTTP {response.status_code} {response.text[:120]}")
            else:
                out[kind].append(elapsed)
                timing = response.headers.get("server-timing", "app;dur=nan")
                out["server"].append(float(timing.split("dur=")[1]))
        except httpx.HTTPError as exc:
            out["errors"].append(f"{kind}: {type(exc).__name__}: {exc}")


async def _load(base: str, key: str, running: str, n: int, start: float, until: float, interval: float) -> dict:
    # Every client is made (TLS context and all) before the clock starts, so building them is
    # not counted as latency; each has its own connection, as separate programs would.
    out: dict = {"poll": [], "list": [], "server": [], "errors": []}
    clients = [httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)
               for _ in range(n)]
    try:
        await asyncio.gather(*(client(http, running, start, until, interval, out) for http in clients))
    finally:
        for http in clients:
            await http.aclose()
    return out


def load_process(base: str, key: str, running: str, n: int, start: float, until: float, interval: float,
                 queue) -> None:
    queue.put(asyncio.run(_load(base, key, running, n, start, until, interval)))


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="cinepatch-load-") as tmp:
        server = make_server(
            Path(tmp), generator=args.generator, concurrency_per_key=100, daily_quota=100000,
            generator_options={"step_seconds": 0.1, "steps": 1, "burn": True},
        )
        server.start()
        try:
            key = server.new_key("load")
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
                ids = [(await http.post("/v1/videos", json={"prompt": f"clip {i}", "seconds": 1})).json()["id"]
                       for i in range(30)]
                while (await http.get(f"/v1/videos/{ids[-1]}")).json()["status"] != "completed":
                    await asyncio.sleep(0.2)
                # One long generation, burning a CPU core, for the whole run.
                steps = int((args.seconds + 20) / 0.1)
                running = (await http.post("/v1/videos", json={"prompt": "the long one", "seconds": 1,
                                                               "steps": min(steps, 500)})).json()["id"]
                while (await http.get(f"/v1/videos/{running}")).json()["status"] != "in_progress":
                    await asyncio.sleep(0.1)
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            start = time.time() + 3.0  # time for the load processes to start and build their clients
            until = start + args.seconds
            shares = [args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)]
            procs = [ctx.Process(target=load_process,
                                 args=(server.url, key, running, n, start, until, args.interval, queue))
                     for n in shares]
            cpu_before = cpu_seconds(server.process.pid)
            for proc in procs:
                proc.start()
            parts = [queue.get(timeout=args.seconds + 120) for _ in procs]
            for proc in procs:
                proc.join()
            wall = time.time() - start
            server_cpu = cpu_seconds(server.process.pid) - cpu_before
            out = {kind: [x for part in parts for x in part[kind]] for kind in ("poll", "list", "server", "errors")}
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
                status = (await http.get(f"/v1/videos/{running}")).json()
        finally:
            server.stop()
    total = len(out["poll"]) + len(out["list"])
    print(f"clients={args.clients} (in {args.procs} processes, {args.interval * 1000:.0f} ms between requests) duration={wall:.1f}s requests={total} rate={total / wall:.0f}/s "
          f"errors={len(out['errors'])}")
    print(f"server process CPU: {server_cpu:.1f} s over the run = {server_cpu / max(1, total) * 1000:.2f} ms per request;"
          f" machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"generation during the run: status={status['status']} progress={status['progress']}%")
    for kind in ("poll", "list"):
        values = out[kind]
        if values:
            print(f"{kind:5s} n={len(values):6d} p50={statistics.median(values):6.1f}ms "
                  f"p90={percentile(values, 90):6.1f}ms p99={percentile(values, 99):6.1f}ms max={max(values):6.1f}ms")
    both = out["poll"] + out["list"]
    if both:
        print(f"all   n={len(both):6d} p50={statistics.median(both):6.1f}ms p99={percentile(both, 99):6.1f}ms")
    if out["server"]:
        values = out["server"]
        print(f"inside the app (Server-Timing): p50={statistics.median(values):6.2f}ms p99={percentile(values, 99):6.2f}ms"
              f" max={max(values):6.1f}ms — the rest is waiting for a CPU, the network stack and the clients")
    for error in out["errors"][:10]:
        print("error:", error)
    return 0 if not out["errors"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generating processes")
    parser.add_argument("--interval", type=float, default=0.25,
                        help="pause between a client's requests (the poll hint the API sends is 250 ms; 0: flat out)")
    parser.add_argument("--generator", default="standin:make")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

"""DiT forward and train-step throughput on this machine, against a plain matmul.

    nice -n 10 /work/venv/bin/python benchmarks/dit_throughput.py            # tiny + small, eager + compiled
    nice -n 10 /work/venv/bin/python benchmarks/dit_throughput.py --presets tiny --no-compile

For each preset: forward (inference) and train step (flow loss, backward, AdamW) in tokens/s
and clips/s, and the achieved GFLOP/s (matmul FLOPs from ``forward_flops``; a train step is
counted as 3× a forward) as a fraction of a plain ``torch.matmul`` of the model's MLP shape
``(B·N, width) @ (width, 4·width)`` measured in the same run. Timings are medians of several
repeats after warm-up; the machine is shared, so the matmul reference is re-measured next to
each model. Prints one line per measurement and a markdown table at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from cinepatch.flow import flow_loss
from cinepatch.models.dit import PRESETS, DiT, count_params, forward_flops


def timed_against(
    fn: Callable[[], object], ref: Callable[[], object], *, repeats: int, warmup: int = 2
) -> tuple[float, float]:
    """Median seconds per call of ``fn`` and of ``ref``, measured alternately.

    The machine is shared; alternating the two puts both under the same load, so their
    ratio means more than either number alone.
    """
    for _ in range(warmup):
        fn()
        ref()
    fn_times, ref_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        fn_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(5):
            ref()
        ref_times.append((time.perf_counter() - start) / 5)
    return statistics.median(fn_times), statistics.median(ref_times)


def bench(name: str, args: argparse.Namespace, compiled: bool) -> list[dict]:
    config = PRESETS[name]
    latent, batch, text_len = tuple(args.latent), args.batch, args.text_len
    flops = forward_flops(config, latent, text_len=text_len, batch=batch)
    tokens = flops["tokens"] * batch
    torch.manual_seed(0)
    model = DiT(config)
    with torch.no_grad():  # random weights: a zero-initialised model would skip nothing, but be honest
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    c = config.in_channels
    x0 = torch.randn(batch, c, *latent)
    t = torch.rand(batch)
    text = {
        "text_states": torch.randn(batch, text_len, config.text_dim),
        "text_mask": torch.ones(batch, text_len, dtype=torch.bool),
    }
    fn = model
    compile_s = 0.0
    if compiled:
        fn = torch.compile(model)
        start = time.perf_counter()
        with torch.no_grad():
            fn.eval()(x0, t, **text)
        compile_s = time.perf_counter() - start

    # Reference: a plain matmul of the model's MLP shape, (B·N, width) @ (width, 4·width).
    a, b = torch.randn(tokens, config.width), torch.randn(config.width, config.mlp_width)
    ref_flops = 2 * tokens * config.width * config.mlp_width

    def matmul() -> None:
        torch.matmul(a, b)

    def forward() -> None:
        with torch.no_grad():
            fn(x0, t, **text)

    rows = []
    model.eval()
    seconds, ref_seconds = timed_against(forward, matmul, repeats=args.repeats)
    rows.append(("forward", seconds, flops["flops"], ref_flops / ref_seconds / 1e9))

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step() -> None:
        loss = flow_loss(fn, x0, text=text)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if compiled:
        start = time.perf_counter()
        train_step()
        compile_s += time.perf_counter() - start
    seconds, ref_seconds = timed_against(train_step, matmul, repeats=args.repeats)
    rows.append(("train step", seconds, 3 * flops["flops"], ref_flops / ref_seconds / 1e9))

    out = []
    for kind, seconds, work, ref in rows:
        gflops = work / seconds / 1e9
        row = {
            "preset": name, "params": count_params(config), "mode": "compiled" if compiled else "eager",
            "kind": kind, "batch": batch, "tokens": tokens, "ms": 1e3 * seconds,
            "tokens/s": tokens / seconds, "clips/s": batch / seconds, "GFLOP/s": gflops,
            "matmul GFLOP/s": ref, "fraction": gflops / ref, "compile s": compile_s,
        }
        print(
            f"{name:<6} {row['mode']:<8} {kind:<10} batch {batch} × {flops['tokens']} tokens: "
            f"{row['ms']:8.1f} ms  {row['tokens/s']:9.0f} tokens/s  {row['clips/s']:7.1f} clips/s  "
            f"{gflops:6.1f} GFLOP/s = {row['fraction']:.0%} of matmul ({ref:.0f})"
            + (f"  [compile {compile_s:.0f} s]" if compiled else ""),
            flush=True,
        )
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=sorted(PRESETS))
    parser.add_argument("--latent", type=int, nargs=3, default=[5, 8, 8], metavar=("T", "H", "W"),
                        help="latent size (default 5 8 8: a 17-frame 64×64 clip)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--text-len", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, "
          f"latent {'×'.join(map(str, args.latent))}, batch {args.batch}, text {args.text_len} tokens")
    rows = []
    for name in args.presets:
        for compiled in (False,) if args.no_compile else (False, True):
            rows += bench(name, args, compiled)
    print("\n| preset | mode | pass | tokens/s | clips/s | GFLOP/s | matmul GFLOP/s | fraction |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} ({r['params'] / 1e6:.1f}M) | {r['mode']} | {r['kind']} | {r['tokens/s']:.0f} | "
              f"{r['clips/s']:.1f} | {r['GFLOP/s']:.1f} | {r['matmul GFLOP/s']:.0f} | {r['fraction']:.0%} |")


if __name__ == "__main__":
    main()

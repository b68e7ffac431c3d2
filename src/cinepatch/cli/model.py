"""`cinepatch model presets | export | recut`: the named DiT sizes, their parameters and
FLOPs; a training run turned into a model folder; a model folder re-cut to start another run.

Counting builds each model on torch's meta device, so even the 15-billion-parameter preset
is counted without allocating a byte of weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cinepatch.errors import InvalidParameter

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model", help="inspect the diffusion transformer", description="Inspect the DiT."
    )
    commands = parser.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    presets = commands.add_parser(
        "presets",
        help="list the named sizes with parameters and FLOPs",
        description="Each preset's parameter count, matmul FLOPs per token (linear layers), "
        "and for one clip size the token count and FLOPs of one forward pass (attention "
        "included). The clip's latent size follows the VAE preset named by --vae (default base: "
        "t = 1 + (frames-1)//4, h = height//8, w = width//8), unless --latent gives it directly.",
    )
    presets.add_argument("--frames", type=int, default=17, help="video frames (default 17)")
    presets.add_argument("--width", type=int, default=256, help="video width (default 256)")
    presets.add_argument("--height", type=int, default=256, help="video height (default 256)")
    presets.add_argument("--vae", default="base", help="VAE preset whose compression maps the clip to latents "
                         "(default base; world keeps every frame and compresses 4x in space)")
    presets.add_argument("--latent", type=int, nargs=3, metavar=("T", "H", "W"),
                         help="latent size instead of --frames/--width/--height")
    presets.add_argument("--text-len", type=int, default=77,
                         help="prompt tokens for the cross-attention (default 77)")
    presets.add_argument("--batch", type=int, default=1, help="clips per forward (default 1)")
    presets.set_defaults(func=run_presets)

    export = commands.add_parser(
        "export",
        help="turn a training run into a model folder to ship or share",
        description="Copy a run's EMA pipeline (RUN/pipeline, or any pipeline folder) to OUT with "
        "the facts generation needs stated in its config's serving section: the model's name, "
        "native size and frame rate, and how many frames one pass makes. --bf16 stores the DiT in bfloat16 "
        "(half the size; how the default model ships).",
    )
    export.add_argument("run", type=Path, help="a training run folder, or a pipeline folder")
    export.add_argument("--out", type=Path, required=True, help="the model folder to write")
    export.add_argument("--name", required=True, help="the model's name in outputs, credentials and the ledger")
    export.add_argument("--size", required=True, help="native WIDTHxHEIGHT, e.g. 64x64")
    export.add_argument("--fps", type=int, required=True, help="native frame rate")
    export.add_argument("--max-frames", type=int, required=True, help="frames one pass makes (longer: windows)")
    export.add_argument("--steps", type=int, help="default sampling steps (else the run's)")
    export.add_argument("--guidance", type=float, help="default guidance scale (else the run's)")
    export.add_argument("--shift", type=float, help="default timestep shift of the sampler (else the run's)")
    export.add_argument("--bf16", action="store_true", help="store the DiT's weights in bfloat16")
    export.set_defaults(func=run_export)

    recut = commands.add_parser(
        "recut",
        help="re-cut a model's patches, prediction or cell head to start another training run",
        description="Write a model folder whose DiT starts from RUN's with smaller patches (each "
        "new side a divisor of the old: more tokens, finer detail), another prediction "
        "(the output layer starts again from zero) and/or a per-cell layout head (starts at zero). "
        "Train from it with --set init_from=OUT and the same dit.patch / dit.prediction / "
        "dit.layout_head.",
    )
    recut.add_argument("run", type=Path, help="a training run folder, or a model folder")
    recut.add_argument("--out", type=Path, required=True, help="the model folder to write")
    recut.add_argument("--patch", help="new patch size T,H,W, e.g. 2,2,2")
    recut.add_argument("--prediction", choices=("v", "x"), help="what the new output layer predicts")
    recut.add_argument("--layout-head", type=int, help="width of a per-cell layout head (0: none)")
    recut.set_defaults(func=run_recut)


def _si(x: float, units: str = "PTGMk") -> str:
    for unit, scale in zip(units, (1e15, 1e12, 1e9, 1e6, 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def run_presets(args: argparse.Namespace) -> int:
    from cinepatch.models.dit import PRESETS, count_params, forward_flops
    from cinepatch.models.vae import PRESETS as VAE_PRESETS

    if args.latent:
        latent = tuple(args.latent)
        if min(latent) < 1:
            raise InvalidParameter("--latent", latent, "three positive ints T H W")
    else:
        if args.vae not in VAE_PRESETS:
            raise InvalidParameter("--vae", args.vae, ", ".join(VAE_PRESETS))
        k, s = VAE_PRESETS[args.vae].temporal_compression, VAE_PRESETS[args.vae].spatial_compression
        if args.frames < 1 or (args.frames - 1) % k:
            raise InvalidParameter("--frames", args.frames, f"1 + {k}k ({', '.join(str(1 + k * i) for i in range(3))}, …)")
        for name in ("width", "height"):
            if getattr(args, name) < 2 * s or getattr(args, name) % (2 * s):
                raise InvalidParameter(f"--{name}", getattr(args, name), f"a multiple of {2 * s} (VAE × patch)")
        latent = (1 + (args.frames - 1) // k, args.height // s, args.width // s)
    if args.text_len < 0 or args.batch < 1:
        raise InvalidParameter("--text-len/--batch", (args.text_len, args.batch), "≥ 0 / ≥ 1")

    t, h, w = latent
    print(f"latent {t}×{h}×{w} (t×h×w), text {args.text_len} tokens, batch {args.batch}")
    header = (f"{'preset':<7} {'params':>9} {'width':>5} {'depth':>5} {'heads':>5} {'patch':>7} "
              f"{'FLOP/token':>11} {'tokens':>7} {'FLOP/forward':>13} {'attention':>9}")
    print(header)
    print("-" * len(header))
    for name, config in PRESETS.items():
        f = forward_flops(config, latent, text_len=args.text_len, batch=args.batch)
        patch = "×".join(str(p) for p in config.patch)
        print(
            f"{name:<7} {_si(count_params(config), 'QTBMk'):>9} {config.width:>5} {config.depth:>5} "
            f"{config.heads:>5} {patch:>7} {_si(f['flops_per_token']):>11} {f['tokens']:>7} "
            f"{_si(f['flops']):>13} {f['attention_flops'] / f['flops']:>9.1%}"
        )
    print("FLOP/token: linear layers only (2 per multiply-add); FLOP/forward adds attention, "
          "text and per-clip conditioning. Training costs ≈ 3× a forward.")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from cinepatch.pipeline import Pipeline, ServingConfig

    folder = _model_folder(args.run)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InvalidParameter("--size", args.size, "WIDTHxHEIGHT, e.g. 64x64") from None
    if args.fps < 1 or args.max_frames < 1:
        raise InvalidParameter("--fps/--max-frames", (args.fps, args.max_frames), "positive whole numbers")
    pipe = Pipeline.from_pretrained(folder)
    if args.steps is not None and not 1 <= args.steps <= 500:
        raise InvalidParameter("--steps", args.steps, "1 to 500")
    if args.guidance is not None and not 0 <= args.guidance <= 30:
        raise InvalidParameter("--guidance", args.guidance, "0 to 30")
    if args.shift is not None and not 0 < args.shift <= 100:
        raise InvalidParameter("--shift", args.shift, "above 0, at most 100")
    given = {"steps": args.steps, "guidance": args.guidance, "shift": args.shift}
    pipe.sampler = dataclasses.replace(pipe.sampler, **{k: v for k, v in given.items() if v is not None})
    pipe.check_shape(frames=pipe.frame_step * ((args.max_frames - 1) // pipe.frame_step) + 1, width=width, height=height)
    serving = ServingConfig(
        name=args.name, default_size=(width, height), default_fps=args.fps, max_frames=args.max_frames,
        latent_step=pipe.frame_step,
    )
    pipe.save_pretrained(args.out, serving=serving, dit_dtype=torch.bfloat16 if args.bf16 else None)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    print(f"wrote {args.out} ({size:.1f} MB): {args.name}, {width}x{height} at {args.fps} fps, {args.max_frames} frames per pass")
    return 0


def _model_folder(run: Path) -> Path:
    """A run's EMA model folder (RUN/pipeline), or RUN itself when it is a model folder."""
    return run / "pipeline" if (run / "pipeline" / "config.json").is_file() else run


def run_recut(args: argparse.Namespace) -> int:
    from cinepatch.models.dit import recut
    from cinepatch.pipeline import Pipeline

    if args.patch is None and args.prediction is None and args.layout_head is None:
        raise InvalidParameter("--patch/--prediction/--layout-head", None, "at least one of them")
    patch = None
    if args.patch is not None:
        try:
            patch = tuple(int(v) for v in args.patch.split(","))
        except ValueError:
            raise InvalidParameter("--patch", args.patch, "three whole numbers T,H,W, e.g. 2,2,2") from None
        if len(patch) != 3 or min(patch) < 1:
            raise InvalidParameter("--patch", args.patch, "three positive whole numbers T,H,W")
    pipe = Pipeline.from_pretrained(_model_folder(args.run))
    dit = recut(pipe.dit, patch=patch, prediction=args.prediction, layout_head=args.layout_head)
    Pipeline(
        dit=dit, vae=pipe.vae, text_encoder=pipe.text_encoder, text_spec=pipe.text_spec, sampler=pipe.sampler,
        metadata=pipe.metadata, serving=pipe.serving,
    ).save_pretrained(args.out)
    patch_text = "×".join(str(p) for p in dit.config.patch)
    head = f", a {dit.config.layout_head}-wide cell head" if dit.config.layout_head else ""
    print(f"wrote {args.out}: patches {patch_text}, predicts {dit.config.prediction}{head}")
    return 0

"""Speed and memory settings of a diffusers backend, as one typed frozen dataclass.

Everything here is applied either once at load time (dtype, device, offloading, VAE tiling and
slicing, compilation) or around each generation and undone afterwards (step caches, attention
backend), so two backends in one process never see each other's choices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinepatch.errors import InvalidParameter, ModelError

__all__ = ["DiffusersSettings", "DTYPES", "OFFLOADS", "CACHES"]

DTYPES = ("auto", "float32", "bfloat16", "float16")
OFFLOADS = ("none", "model", "group")
CACHES = ("none", "first_block", "pab", "magcache")
GROUP_OFFLOAD_TYPES = ("block_level", "leaf_level")


@dataclass(frozen=True)
class DiffusersSettings:
    """How to run a diffusers pipeline. The defaults are right for a CPU and safe on a GPU."""

    device: str = "auto"  # "auto": cuda, else mps, else cpu
    dtype: str = "auto"  # transformers + text encoder; "auto": bfloat16 on an accelerator, float32 on CPU
    vae_dtype: str = "auto"  # "auto": float32 for Wan (its VAE needs it), else the same as dtype
    vae_tiling: bool = False  # decode/encode in overlapping tiles: less memory for large frames
    vae_slicing: bool = False  # decode a batch one video at a time
    offload: str = "none"  # "model": whole components to the GPU in turn (accelerator only);
    # "group": groups of blocks onloaded as needed (works CPU→CPU, and CPU→disk with group_offload_disk)
    group_offload_type: str = "block_level"  # or "leaf_level" (least memory, slowest)
    group_offload_blocks: int = 1  # blocks per group for block_level
    group_offload_disk: Path | None = None  # offload parameters to this folder instead of RAM
    cache: str = "none"  # step cache: "first_block", "pab" (pyramid attention broadcast), "magcache"
    cache_threshold: float | None = None  # first_block (default 0.05) and magcache (default 0.06)
    pab_skip: int = 2  # pab: recompute spatial attention every `pab_skip` steps (timesteps 100..800)
    mag_ratios: tuple[float, ...] = ()  # magcache: the checkpoint's calibrated magnitude ratios
    compile: bool = False  # torch.compile the repeated transformer blocks (fullgraph)
    attention_backend: str | None = None  # e.g. "native", "_native_math", "flash", "sage"; None: unchanged

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("dtype", self.dtype, DTYPES),
            ("vae_dtype", self.vae_dtype, DTYPES),
            ("offload", self.offload, OFFLOADS),
            ("cache", self.cache, CACHES),
            ("group_offload_type", self.group_offload_type, GROUP_OFFLOAD_TYPES),
        ):
            if value not in allowed:
                raise InvalidParameter(f"diffusers.{name}", value, f"one of {', '.join(allowed)}")
        if not isinstance(self.group_offload_blocks, int) or self.group_offload_blocks < 1:
            raise InvalidParameter("diffusers.group_offload_blocks", self.group_offload_blocks, "1 or more")
        if not isinstance(self.pab_skip, int) or self.pab_skip < 2:
            raise InvalidParameter("diffusers.pab_skip", self.pab_skip, "2 or more")
        if self.cache_threshold is not None and not 0 < self.cache_threshold < 1:
            raise InvalidParameter(
                "diffusers.cache_threshold", self.cache_threshold, "more than 0, less than 1"
            )
        if self.cache == "magcache" and not self.mag_ratios:
            raise InvalidParameter(
                "diffusers.mag_ratios", self.mag_ratios,
                "the checkpoint's calibrated ratios (one per step) when cache is 'magcache'",
                hint="MagCache ratios are model-specific; see docs/diffusers.md",
            )
        if self.attention_backend is not None:
            from diffusers.models.attention_dispatch import AttentionBackendName

            known = sorted(name.value for name in AttentionBackendName)
            if self.attention_backend not in known:
                raise InvalidParameter(
                    "diffusers.attention_backend", self.attention_backend, f"one of {', '.join(known)}"
                )
            if self.attention_backend.endswith("_hub"):
                raise InvalidParameter(
                    "diffusers.attention_backend", self.attention_backend,
                    "a backend installed locally (the *_hub ones download kernels; loading is offline)",
                )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DiffusersSettings:
        """Build from a config mapping; an unknown key is an error naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise InvalidParameter(f"diffusers.{key}", values[key], f"one of {', '.join(sorted(known))}")
        values = dict(values)
        if values.get("group_offload_disk") is not None:
            values["group_offload_disk"] = Path(values["group_offload_disk"]).expanduser()
        if "mag_ratios" in values:
            values["mag_ratios"] = tuple(float(x) for x in values["mag_ratios"])
        return cls(**values)

    # -- load time --------------------------------------------------------------------------

    def resolve_device(self) -> Any:
        import torch

        if self.device != "auto":
            return torch.device(self.device)
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    def torch_dtypes(self, *, device: Any, family: str) -> dict[str, Any]:
        """``from_pretrained``'s per-component dtypes: transformers and encoders, and the VAE."""
        import torch

        names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        main = names[self.dtype] if self.dtype != "auto" else (
            torch.float32 if device.type == "cpu" else torch.bfloat16
        )
        if self.vae_dtype != "auto":
            vae = names[self.vae_dtype]
        else:
            vae = torch.float32 if family == "wan" else main
        return {"default": main, "vae": vae, "image_encoder": torch.float32 if family == "wan" else main}

    def prepare(self, pipe: Any, *, device: Any) -> None:
        """Place the pipeline and apply the load-time options (once, on the loaded pipeline)."""
        if self.offload == "model":
            if device.type == "cpu":
                raise ModelError(
                    "diffusers.offload='model' moves whole components to an accelerator in turn and "
                    "this machine has none; use offload='group' (with group_offload_disk to save "
                    "RAM) or 'none'"
                )
            pipe.enable_model_cpu_offload(device=device)
        elif self.offload == "group":
            import torch

            pipe.enable_group_offload(
                onload_device=device,
                offload_device=torch.device("cpu"),
                offload_type=self.group_offload_type,
                num_blocks_per_group=(
                    self.group_offload_blocks if self.group_offload_type == "block_level" else None
                ),
                use_stream=device.type == "cuda",
                offload_to_disk_path=str(self.group_offload_disk) if self.group_offload_disk else None,
            )
        else:
            pipe.to(device)
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            if self.vae_tiling:
                vae.enable_tiling()
            if self.vae_slicing:
                vae.enable_slicing()
        if self.compile:
            for transformer in _transformers(pipe):
                transformer.compile_repeated_blocks(fullgraph=True)

    # -- around each generation -------------------------------------------------------------

    @contextmanager
    def around_call(self, pipe: Any, *, steps: int) -> Iterator[None]:
        """Enable the step cache and attention backend for one call of ``pipe``; undo both after."""
        transformers = _transformers(pipe)
        with _attention(transformers, self.attention_backend):
            config = self._cache_config(pipe, steps=steps)
            if config is None:
                yield
                return
            for transformer in transformers:
                transformer.enable_cache(config)
            try:
                yield
            finally:
                for transformer in transformers:
                    transformer.disable_cache()

    def _cache_config(self, pipe: Any, *, steps: int) -> Any:
        if self.cache == "first_block":
            from diffusers import FirstBlockCacheConfig

            return FirstBlockCacheConfig(threshold=self.cache_threshold or 0.05)
        if self.cache == "pab":
            from diffusers import PyramidAttentionBroadcastConfig

            return PyramidAttentionBroadcastConfig(
                spatial_attention_block_skip_range=self.pab_skip,
                spatial_attention_timestep_skip_range=(100, 800),
                current_timestep_callback=lambda: pipe.current_timestep,
            )
        if self.cache == "magcache":
            from diffusers import MagCacheConfig

            return MagCacheConfig(
                threshold=self.cache_threshold or 0.06,
                num_inference_steps=steps,
                mag_ratios=list(self.mag_ratios),
            )
        return None


def _transformers(pipe: Any) -> list[Any]:
    found = (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None))
    return [module for module in found if module is not None]


@contextmanager
def _attention(transformers: list[Any], backend: str | None) -> Iterator[None]:
    """Use ``backend`` in these transformers for one call, then restore what was there before.

    ``ModelMixin.set_attention_backend`` also changes diffusers' process-wide active backend, and
    ``reset_attention_backend`` does not undo that, so both the per-processor choices and the
    process-wide default are saved here and put back.
    """
    if backend is None:
        yield
        return
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    previous_default = _AttentionBackendRegistry._active_backend
    previous = [
        (processor, processor._attention_backend)
        for transformer in transformers
        for module in transformer.modules()
        if (processor := getattr(module, "processor", None)) is not None
        and hasattr(processor, "_attention_backend")
    ]
    try:
        for transformer in transformers:
            transformer.set_attention_backend(backend)
        yield
    finally:
        for processor, value in previous:
            processor._attention_backend = value
        _AttentionBackendRegistry.set_active_backend(previous_default)

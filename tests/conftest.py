"""Fixtures shared across the suite: a tiny embedded model folder and a fresh installation."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer DiT + tiny VAE pipeline saved as a model folder (random weights, nudged so
    the DiT's zero-initialised output does something)."""
    import torch

    from cinepatch.models.dit import DiT, DiTConfig
    from cinepatch.models.text import MiniLMEncoder
    from cinepatch.models.vae import PRESETS as VAE_PRESETS
    from cinepatch.models.vae import CausalVAE
    from cinepatch.pipeline import Pipeline, SamplerConfig

    torch.manual_seed(0)
    encoder = MiniLMEncoder()
    dit = DiT(DiTConfig(in_channels=VAE_PRESETS["tiny"].latent_channels, width=32, depth=2, heads=2, text_dim=encoder.dim))
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pipe = Pipeline(dit=dit, vae=CausalVAE(VAE_PRESETS["tiny"]), text_encoder=encoder,
                    sampler=SamplerConfig(steps=3, guidance=2.0))
    folder = tmp_path_factory.mktemp("models") / "tiny"
    pipe.save_pretrained(
        folder, training={"name": "cinepatch-tiny-test", "max_frames": 17, "default_size": [48, 32], "default_fps": 6}
    )
    return folder


@pytest.fixture()
def studio_config(tmp_path: Path, tiny_model_dir: Path):
    from cinepatch.config import load_config

    config = load_config(None, config_dir=tmp_path / "config", data_dir=tmp_path / "data")
    config.models["tiny"] = str(tiny_model_dir)
    return config

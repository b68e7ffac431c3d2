"""CausalVAE: shapes, causality, chunked == unchunked, tiling, save/load, validation, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.models.vae import PRESETS, CausalVAE, VAEConfig, _shuffle, _tiled, _unshuffle


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These tensors are tiny: a second OpenMP thread only adds barrier waits, and on a
    # shared, oversubscribed CPU those waits made the module ~5x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vae() -> CausalVAE:
    torch.manual_seed(0)
    model = CausalVAE(PRESETS["tiny"]).eval()
    # Non-trivial stats so normalisation is exercised on both sides.
    model.set_latent_stats(torch.linspace(-0.5, 0.5, 4), torch.linspace(0.5, 2.0, 4))
    return model


def squares(batch: int, frames: int, size: int, *, seed: int = 0) -> torch.Tensor:
    """A tiny local stand-in for the world: coloured squares moving over a flat background."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(batch, 3, frames, size, size)
    for b in range(batch):
        bg = torch.rand(3, generator=g) * 2 - 1
        fg = torch.rand(3, generator=g) * 2 - 1
        x[b] = bg.view(3, 1, 1, 1)
        y0, x0 = (torch.randint(0, size // 2, (2,), generator=g)).tolist()
        vy, vx = (torch.randint(-1, 2, (2,), generator=g)).tolist()
        s = size // 4
        for t in range(frames):
            y, xx = (y0 + vy * t) % (size - s), (x0 + vx * t) % (size - s)
            x[b, :, t, y : y + s, xx : xx + s] = fg.view(3, 1, 1)
    return x


@torch.no_grad()
@pytest.mark.parametrize("frames", [1, 5, 9, 13])
def test_shapes_for_images_and_clips(vae: CausalVAE, frames: int) -> None:
    x = torch.rand(2, 3, frames, 16, 24) * 2 - 1
    z = vae.encode(x)
    assert z.shape == (2, 4, 1 + (frames - 1) // 4, 2, 3)
    assert vae.latent_shape(frames, 16, 24) == tuple(z.shape[1:])
    assert vae.decode(z).shape == x.shape


@torch.no_grad()
def test_encoder_is_causal(vae: CausalVAE) -> None:
    x = torch.rand(1, 3, 13, 16, 16) * 2 - 1
    later_changed = x.clone()
    later_changed[:, :, 5:] = torch.rand(1, 3, 8, 16, 16)  # frames 5.. → latents 2.. may change
    z, z2 = vae.encode(x), vae.encode(later_changed)
    assert torch.equal(z[:, :, :2], z2[:, :, :2])
    assert not torch.allclose(z[:, :, 2:], z2[:, :, 2:])
    # Frame 0 alone gives the same first latent: an image is a 1-frame video.
    assert torch.allclose(vae.encode(x[:, :, :1]), z[:, :, :1], atol=1e-6)


@torch.no_grad()
def test_decoder_is_causal(vae: CausalVAE) -> None:
    z = torch.randn(1, 4, 4, 2, 2)
    z2 = z.clone()
    z2[:, :, 2:] = torch.randn(1, 4, 2, 2, 2)  # latent 2.. feeds pixel frames 5..
    x, x2 = vae.decode(z), vae.decode(z2)
    assert torch.equal(x[:, :, :5], x2[:, :, :5])
    assert not torch.allclose(x[:, :, 5:], x2[:, :, 5:])
    assert torch.allclose(vae.decode(z[:, :, :1]), x[:, :, :1], atol=1e-6)


@torch.no_grad()
def test_chunked_equals_unchunked(vae: CausalVAE) -> None:
    x = squares(2, 29, 16)
    whole = vae.encode(x, chunk_frames=None)
    for chunk in (4, 8, 12):
        assert torch.allclose(vae.encode(x, chunk_frames=chunk), whole, atol=1e-5)
    pixels = vae.decode(whole, chunk_frames=None)
    for chunk in (1, 2, 3):
        assert torch.allclose(vae.decode(whole, chunk_frames=chunk), pixels, atol=1e-5)
    # A chunk the temporal stride cannot align is refused, not silently wrong.
    with pytest.raises(InvalidParameter, match="chunk_frames"):
        vae.encode(x, chunk_frames=6)


def test_tiles_blend_exactly_for_a_local_map() -> None:
    # For a map with no spatial context the blended tiles must reproduce the whole exactly:
    # this checks tile placement and weights independently of the network's receptive field.
    x = torch.randn(1, 3, 2, 64, 96)
    down = lambda p: torch.nn.functional.avg_pool3d(p, (1, 8, 8))  # noqa: E731
    up = lambda p: torch.nn.functional.interpolate(p, scale_factor=(1, 8, 8))  # noqa: E731
    assert torch.allclose(_tiled(down, x, tile=32, overlap=16, step=8, scale=1 / 8), down(x), atol=1e-6)
    assert torch.allclose(_tiled(up, x, tile=24, overlap=8, step=1, scale=8), up(x), atol=1e-6)


@torch.no_grad()
def test_tiled_model_output_has_right_shape_and_stays_close(vae: CausalVAE) -> None:
    x = squares(1, 5, 64)
    z = vae.encode(x, tile=None)
    z_tiled = vae.encode(x, tile=32, tile_overlap=16)
    assert z_tiled.shape == z.shape
    assert (z_tiled - z).abs().mean() < (z.abs().mean())  # blended, not garbage
    assert vae.decode(z, tile=4, tile_overlap=2).shape == x.shape


@torch.no_grad()
def test_save_load_round_trip(vae: CausalVAE, tmp_path) -> None:
    vae.save_pretrained(tmp_path / "vae")
    assert sorted(p.name for p in (tmp_path / "vae").iterdir()) == ["config.json", "model.safetensors"]
    loaded = CausalVAE.from_pretrained(tmp_path / "vae")
    assert loaded.config == vae.config
    x = squares(1, 5, 16)
    assert torch.equal(loaded.encode(x), vae.encode(x))
    assert torch.equal(loaded.decode(vae.encode(x)), vae.decode(vae.encode(x)))
    assert torch.equal(loaded.latent_scale, vae.latent_scale)


def test_load_errors(tmp_path, vae: CausalVAE) -> None:
    with pytest.raises(ModelError, match="missing"):
        CausalVAE.from_pretrained(tmp_path)
    vae.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["latent_channels"] = 6
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="does not match"):
        CausalVAE.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("shape", "name"),
    [
        ((1, 3, 4, 16, 16), "frames"),  # 4 is not 1 + 4k
        ((1, 3, 6, 16, 16), "frames"),
        ((1, 3, 5, 12, 16), "height"),  # not a multiple of 8
        ((1, 3, 5, 16, 20), "width"),
        ((1, 4, 5, 16, 16), "x.shape"),  # RGB only
        ((3, 5, 16, 16), "x.shape"),  # no batch axis
    ],
)
def test_bad_shapes_raise(vae: CausalVAE, shape: tuple[int, ...], name: str) -> None:
    with pytest.raises(InvalidParameter, match=name) as info:
        vae.encode(torch.zeros(shape))
    if name == "frames":
        assert "1 + 4k" in str(info.value)


def test_bad_latent_shape_and_config_raise(vae: CausalVAE) -> None:
    with pytest.raises(InvalidParameter, match="z.shape"):
        vae.decode(torch.zeros(1, 3, 2, 2, 2))
    with pytest.raises(InvalidParameter, match="widths"):
        VAEConfig(widths=(8, 8))
    with pytest.raises(InvalidParameter, match="temporal_compression"):
        VAEConfig(temporal_compression=3)
    for patch in (0, 3, 8):
        with pytest.raises(InvalidParameter, match="patch_size"):
            VAEConfig(patch_size=patch, widths=(8, 8))
    with pytest.raises(InvalidParameter, match="temporal_compression"):  # one level left after a 4× stem
        VAEConfig(patch_size=4, widths=(8, 8), temporal_compression=4)


def test_pixel_unshuffle_stem_is_exact_and_local() -> None:
    x = torch.arange(2 * 3 * 2 * 4 * 6, dtype=torch.float32).view(2, 3, 2, 4, 6)
    packed = _unshuffle(x, 2)
    assert packed.shape == (2, 12, 2, 2, 3)
    assert torch.equal(_shuffle(packed, 2), x)
    # Position (i, j) of the packed map holds exactly the 2×2 block at (2i, 2j) of each channel.
    block = x[1, 0, 1, 2:4, 4:6].flatten()
    assert torch.equal(packed[1, 0:4, 1, 1, 2], block)


@torch.no_grad()
def test_patched_vae_is_causal_and_chunks_exactly() -> None:
    torch.manual_seed(0)
    vae = CausalVAE(VAEConfig(latent_channels=4, patch_size=2, widths=(8, 16, 16))).eval()
    x = squares(1, 13, 16)
    z = vae.encode(x, chunk_frames=None)
    assert z.shape == (1, 4, 4, 2, 2)
    assert torch.allclose(vae.encode(x, chunk_frames=4), z, atol=1e-5)
    assert torch.allclose(vae.encode(x[:, :, :1]), z[:, :, :1], atol=1e-6)
    assert torch.allclose(vae.decode(z, chunk_frames=1), vae.decode(z, chunk_frames=None), atol=1e-5)
    assert vae.decode(z).shape == x.shape


def test_sampling_is_seeded_and_differs_from_mean(vae: CausalVAE) -> None:
    x = squares(1, 5, 16)
    with torch.no_grad():
        a = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
        b = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b)
        assert not torch.equal(a, vae.encode(x))


def test_training_reduces_loss_and_resumes(tmp_path) -> None:
    from cinepatch import train_vae

    def batcher(rng: np.random.Generator, batch: int, frames: int) -> torch.Tensor:
        return squares(batch, frames, 16, seed=int(rng.integers(1 << 30)))

    out = tmp_path / "ckpt"
    args = ["--preset", "tiny", "--out", str(out), "--batch", "2", "--frames", "5", "--lr", "3e-3"]
    args += ["--warmup", "3", "--stats-batches", "2", "--log-every", "1000", "--ckpt-every", "10"]
    torch.manual_seed(0)
    fresh = CausalVAE(PRESETS["tiny"]).eval()
    x = squares(4, 5, 16, seed=123)
    with torch.no_grad():
        before = float((fresh.decode(fresh.encode(x)) - x).pow(2).mean())
    train_vae.main([*args, "--steps", "20"], batcher=batcher)
    trained = CausalVAE.from_pretrained(out)
    with torch.no_grad():
        z = trained.encode(x)
        after = float((trained.decode(z) - x).pow(2).mean())
    assert after < 0.5 * before
    assert abs(float(z.std()) - 1.0) < 0.5  # the stored shift/scale normalise the latents
    assert torch.load(out / "train_state.pt", weights_only=False)["step"] == 20
    # Running again with a longer schedule resumes at step 20 instead of starting over.
    train_vae.main([*args, "--steps", "22"], batcher=batcher)
    assert torch.load(out / "train_state.pt", weights_only=False)["step"] == 22


def test_decoder_only_keeps_the_encoder_and_its_statistics(tmp_path) -> None:
    from cinepatch import train_vae

    def batcher(rng: np.random.Generator, batch: int, frames: int) -> torch.Tensor:
        return squares(batch, frames, 16, seed=int(rng.integers(1 << 30)))

    base = tmp_path / "base"
    common = ["--preset", "tiny", "--batch", "2", "--frames", "5", "--lr", "3e-3", "--warmup", "2",
              "--stats-batches", "2", "--log-every", "1000"]
    train_vae.main([*common, "--out", str(base), "--steps", "6"], batcher=batcher)
    first = CausalVAE.from_pretrained(base)
    train_vae.main([*common, "--out", str(tmp_path / "dec"), "--steps", "15", "--init", str(base), "--decoder-only"],
                   batcher=batcher)
    tuned = CausalVAE.from_pretrained(tmp_path / "dec")
    x = squares(4, 5, 16, seed=7)
    with torch.no_grad():
        assert torch.equal(first.encode(x), tuned.encode(x))  # same latents: a DiT trained on them still fits
        before = float((first.decode(first.encode(x)) - x).pow(2).mean())
        after = float((tuned.decode(tuned.encode(x)) - x).pow(2).mean())
    assert after < before
    with pytest.raises(SystemExit):
        train_vae.parse_args(["--out", str(tmp_path / "x"), "--decoder-only"])  # needs --init


def test_the_committed_world_vae_keeps_a_128px_world_clip_at_35_db() -> None:
    # checkpoints/vae-world-128 is the planned model's VAE; its bar is 35 dB at 128×128.
    import math
    from pathlib import Path

    import numpy as np

    from cinepatch.io.video import to_tensor
    from cinepatch.world import parse_prompt, render

    folder = Path(__file__).resolve().parents[2] / "checkpoints" / "vae-world-128"
    vae = CausalVAE.from_pretrained(folder).eval()
    scene = parse_prompt("a small white triangle moves right and a large red circle bounces on a striped navy background")
    x = to_tensor(np.ascontiguousarray(render(scene, width=128, height=128, fps=8, frames=5, seed=1)))
    with torch.no_grad():
        mse = float((vae.decode(vae.encode(x)) - x).pow(2).mean())
    assert 10 * math.log10(4.0 / mse) >= 35.0

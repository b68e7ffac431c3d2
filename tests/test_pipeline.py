"""Pipeline: generation, conditioning, remix, validation, and the model folder round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cinepatch.errors import InvalidParameter, ModelError
from cinepatch.models.dit import DiT, DiTConfig
from cinepatch.models.text import MiniLMEncoder
from cinepatch.models.vae import PRESETS as VAE_PRESETS, CausalVAE
from cinepatch.pipeline import Conditioning, Pipeline, SamplerConfig, latent_index, read_dit


@pytest.fixture(scope="module")
def encoder():
    return MiniLMEncoder()


@pytest.fixture()
def pipe(encoder):
    torch.manual_seed(0)
    dit = DiT(DiTConfig(in_channels=4, width=32, depth=2, heads=2, text_dim=encoder.dim))
    # A fresh DiT predicts v = 0 (zero-initialised output); give it weights that do something.
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vae = CausalVAE(VAE_PRESETS["tiny"])
    return Pipeline(dit=dit, vae=vae, text_encoder=encoder, sampler=SamplerConfig(steps=4, guidance=3.0))


def _gen(pipe, prompts=("a red circle",), **kw):
    args = dict(frames=5, width=32, height=32, fps=8, seed=0, steps=4, guidance=3.0, negative=None, progress=False)
    args.update(kw)
    return pipe.generate(list(prompts), **args)


def test_generate_shapes_and_is_deterministic_for_a_seed(pipe):
    a = _gen(pipe, ["a red circle", "a blue square"], width=48)
    assert len(a) == 2 and all(v.shape == (5, 32, 48, 3) and v.dtype == np.uint8 for v in a)
    b = _gen(pipe, ["a red circle", "a blue square"], width=48)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], _gen(pipe, ["a red circle"], width=48, seed=7)[0])
    assert not np.array_equal(a[0], a[1])  # prompt i uses seed + i, and another prompt
    image = _gen(pipe, frames=1)[0]
    assert image.shape == (1, 32, 32, 3)


def test_several_seeds_for_one_prompt_and_batching(pipe):
    videos = _gen(pipe, seed=[3, 4, 5], batch_size=2)
    assert len(videos) == 3
    alone = _gen(pipe, seed=4)[0]
    assert np.abs(videos[1].astype(int) - alone.astype(int)).max() <= 1  # same seed, other batch


def test_guidance_and_negative_change_the_result(pipe):
    plain = _gen(pipe, guidance=1.0)[0]
    guided = _gen(pipe, guidance=5.0)[0]
    negative = _gen(pipe, guidance=5.0, negative="a blue square")[0]
    assert not np.array_equal(plain, guided)
    assert not np.array_equal(guided, negative)


def test_progress_and_callback_once_per_step(pipe):
    seen, done = [], []
    _gen(pipe, ["a", "b", "c"], steps=3, batch_size=2, callback=lambda i, t, z: seen.append((i, t, z.shape)),
         progress=lambda d, total: done.append((d, total)))
    assert [i for i, _, _ in seen] == [0, 1, 2, 0, 1, 2]  # two batches of three steps
    assert seen[-1][1] == 0.0 and seen[0][2] == (2, 4, 2, 4, 4)
    assert done[-1] == (6, 6)
    _gen(pipe, progress=True)  # a tqdm bar, to stderr


def test_the_dit_samples_whole_temporal_patches_and_the_held_frame_has_noise_of_its_own(encoder):
    # A DiT with 2-frame patches trains on clips held to whole patches (a still is a held
    # two-frame clip), so the sampler gives it the same: one more latent frame, its own noise.
    torch.manual_seed(0)
    dit = DiT(DiTConfig(in_channels=4, width=32, depth=2, heads=2, text_dim=encoder.dim, patch=(2, 2, 2)))
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pipe = Pipeline(dit=dit, vae=CausalVAE(VAE_PRESETS["tiny"]), text_encoder=encoder, sampler=SamplerConfig(steps=2))
    seen, given = [], []
    forward = dit.forward
    dit.forward = lambda x, t, **kw: (seen.append(x.clone()), forward(x, t, **kw))[1]
    video = _gen(pipe, frames=9, steps=2, guidance=1.0, callback=lambda i, t, z: given.append(z.shape))[0]
    assert video.shape == (9, 32, 32, 3)  # 3 latent frames, sampled as 4
    assert seen[0].shape[2] == 4 and not torch.equal(seen[0][:, :, 3], seen[0][:, :, 2])
    assert given == [(1, 4, 3, 4, 4)] * 2  # a step's latents are the video's own frames
    # The video's own frames start from the same noise as without the held one.
    own = torch.randn((4, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[0][0, :, :3], own)
    assert _gen(pipe, frames=1, steps=2, guidance=1.0)[0].shape == (1, 32, 32, 3)


def test_bad_parameters_raise_invalid_parameter(pipe):
    cases = {
        "frames": dict(frames=6),
        "width": dict(width=40),
        "height": dict(height=0),
        "steps": dict(steps=0),
        "guidance": dict(guidance=-1.0),
        "fps": dict(fps=0),
        "seed": dict(seed=-1),
        "noise_strength": dict(noise_strength=0.0),
        "init": dict(noise_strength=0.5),
        "negative": dict(negative=["x", "y"]),
    }
    for name, kw in cases.items():
        with pytest.raises(InvalidParameter) as info:
            _gen(pipe, **kw)
        assert info.value.name == name, (name, str(info.value))
    with pytest.raises(InvalidParameter, match=r"1 \+ 4k"):
        _gen(pipe, frames=8)
    with pytest.raises(InvalidParameter, match="multiple of 16"):
        _gen(pipe, width=24)
    with pytest.raises(InvalidParameter):
        _gen(pipe, prompts=[])
    with pytest.raises(InvalidParameter):
        _gen(pipe, seed=[1, 2], prompts=["a", "b", "c"])


def test_released_frames_follow_their_reference_down_to_their_release(pipe):
    """A released frame is its reference noised to the sampler's level until the level falls to
    its release, then free; release 0 ends on the reference, 1 is a free frame."""
    from cinepatch.flow import timestep_schedule

    ref = torch.randn(4, 3, 4, 4)
    cond = Conditioning(mask=torch.zeros(3), latents=ref, release=torch.tensor([0.0, 0.5, 1.0]))
    mask, resolved, release = pipe.resolve_conditioning(cond, frames=9, width=32, height=32)
    assert mask.sum() == 0 and release.tolist() == [0.0, 0.5, 1.0]
    assert torch.equal(resolved[:, :2], ref[:, :2]) and resolved[:, 2].abs().sum() == 0  # a free frame's is ignored
    levels, states = [], []
    _gen(pipe, frames=9, cond=cond, steps=6, callback=lambda i, t, z: (levels.append(t), states.append(z[0].clone())))
    assert levels == timestep_schedule(6, shift=pipe.sampler.shift).tolist()[1:]
    assert torch.allclose(states[-1][:, 0], ref[:, 0], atol=1e-5)  # release 0: the reference at the end
    assert not torch.allclose(states[0][:, 0], ref[:, 0], atol=1e-2)  # ... noised before it
    # release 0.5: the reference noised (with one noise) while the level is above 0.5, then free
    noise = (states[0][:, 1] - (1 - levels[0]) * ref[:, 1]) / levels[0]
    held = [(1 - t) * ref[:, 1] + t * noise for t in levels]
    assert all(torch.allclose(z[:, 1], h, atol=1e-4) == (t >= 0.5) for t, z, h in zip(levels, states, held))
    with pytest.raises(InvalidParameter, match="cond.release"):
        _gen(pipe, frames=9, cond=Conditioning(mask=torch.zeros(3), latents=ref, release=torch.tensor([1.5, 0.0, 0.0])))


def test_conditioning_keeps_given_frames_exactly(pipe):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ref = pipe.encode_frames(image)  # (C, 1, h, w)
    latents = torch.zeros(4, 3, 4, 4)
    latents[:, 0] = latents[:, 2] = ref[:, 0]  # the first and the last latent frame: a loop
    mask, resolved, _ = pipe.resolve_conditioning(
        Conditioning(mask=torch.tensor([1.0, 0.0, 1.0]), latents=latents), frames=9, width=32, height=32
    )
    assert mask.tolist() == [1.0, 0.0, 1.0]
    assert torch.equal(resolved[:, 0], ref[:, 0]) and torch.equal(resolved[:, 2], ref[:, 0])
    final = []
    first = Conditioning(mask=torch.tensor([1.0, 0.0, 0.0]), latents=latents)
    _gen(pipe, frames=9, cond=first, callback=lambda i, t, z: final.append(z))
    assert torch.equal(final[-1][0, :, 0], ref[:, 0])  # frame 0 is the reference at every step
    # Latents where the mask is 0 are ignored.
    direct = Conditioning(mask=torch.tensor([0.0, 1.0, 0.0]), latents=torch.randn(4, 3, 4, 4))
    mask, latents, release = pipe.resolve_conditioning(direct, frames=9, width=32, height=32)
    assert latents[:, 0].abs().sum() == 0 and latents[:, 1].abs().sum() > 0 and release is None
    assert [latent_index(i, 4) for i in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    with pytest.raises(InvalidParameter, match="cond.mask shape"):
        _gen(pipe, frames=5, cond=first)  # 3 latent frames given for a clip of 2
    with pytest.raises(InvalidParameter, match="cond.mask"):
        _gen(pipe, frames=9, cond=Conditioning(mask=torch.tensor([0.5, 0.0, 0.0]), latents=latents))


def test_noise_strength_starts_from_the_noised_source(pipe):
    rng = np.random.default_rng(1)
    source = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    recon = pipe.decode_latents(pipe.encode_frames(source)[None])[0].astype(float)
    steps = []
    light = _gen(pipe, init=source, noise_strength=0.1, steps=10, callback=lambda i, t, z: steps.append(t))[0]
    full = _gen(pipe, steps=10)[0]
    assert len(steps) == 1 and steps[-1] == 0.0  # round(10 × 0.1) steps, ending at t = 0
    assert np.abs(light - recon).mean() < 0.5 * np.abs(full - recon).mean()


def test_save_load_round_trip_gives_identical_frames(pipe, tmp_path):
    before = _gen(pipe, ["a green triangle"], frames=9, seed=5)[0]
    folder = pipe.save_pretrained(tmp_path / "model", training={"step": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "dit.safetensors", "vae.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["text_encoder"]["kind"] == "minilm" and config["training"] == {"step": 3}
    loaded = Pipeline.from_pretrained(folder)
    assert loaded.sampler == pipe.sampler
    assert np.array_equal(before, _gen(loaded, ["a green triangle"], frames=9, seed=5)[0])
    pipe.save_pretrained(folder)  # over an existing folder: replaced whole
    assert not list(tmp_path.glob(".model*"))


def test_dit_stored_in_bfloat16_is_half_the_size_and_loads_as_float32(pipe, tmp_path):
    full = pipe.save_pretrained(tmp_path / "fp32")
    half = pipe.save_pretrained(tmp_path / "bf16", dit_dtype=torch.bfloat16)
    assert (half / "dit.safetensors").stat().st_size < 0.6 * (full / "dit.safetensors").stat().st_size
    loaded = Pipeline.from_pretrained(half)
    weights = dict(loaded.dit.named_parameters())
    assert all(w.dtype == torch.float32 for w in weights.values())
    for name, original in pipe.dit.named_parameters():  # rounded to bfloat16, nothing more
        assert torch.equal(weights[name], original.detach().to(torch.bfloat16).float())


def test_from_pretrained_errors_name_the_problem(pipe, tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        Pipeline.from_pretrained(tmp_path / "nothing")
    folder = pipe.save_pretrained(tmp_path / "m")
    (folder / "dit.safetensors").unlink()
    with pytest.raises(ModelError, match="missing dit.safetensors"):
        Pipeline.from_pretrained(folder)
    folder = pipe.save_pretrained(tmp_path / "m")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        Pipeline.from_pretrained(folder)
    folder = pipe.save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["dit"]["width"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="does not match"):
        Pipeline.from_pretrained(folder)
    folder = pipe.save_pretrained(tmp_path / "m")
    (folder / "vae.safetensors").write_bytes(b"truncated")
    with pytest.raises(ModelError, match="vae.safetensors"):
        Pipeline.from_pretrained(folder)


def test_read_dit_is_the_one_reader_of_a_folders_dit(pipe, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "m")
    dit = read_dit(folder)
    assert dit.config == pipe.dit.config and not dit.training
    x, t = torch.randn(2, 4, 3, 4, 4), torch.rand(2)
    text = torch.randn(2, 5, pipe.dit.config.text_dim)
    with torch.no_grad():
        assert torch.equal(dit(x, t, text_states=text), pipe.dit(x, t, text_states=text))
    with pytest.raises(ModelError, match="missing"):
        read_dit(tmp_path)  # an empty folder
    config = json.loads((folder / "config.json").read_text())
    config["dit"]["bogus"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="bogus"):
        read_dit(folder)

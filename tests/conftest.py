"""Fixtures shared across the suite: a tiny embedded model folder, a fresh installation, and a
real OpenAI-compatible chat endpoint on loopback answering what each test tells it to."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
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


class ChatServer:
    """``POST /v1/chat/completions`` answering ``reply`` in the chat-completions shape."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                answer = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": owner.reply}}
                    ],
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def chat_server() -> Iterator:
    servers: list[ChatServer] = []

    def start(reply: str) -> ChatServer:
        servers.append(ChatServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()

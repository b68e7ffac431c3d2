"""The optional OpenAI-compatible moderation endpoint, against a real HTTP server on
127.0.0.1 started here (never the internet)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cinepatch.errors import Refused
from cinepatch.safety import SafetyConfig, check_prompt, moderate_prompt


class Moderations(BaseHTTPRequestHandler):
    """Flags any input containing "forbidden" as harassment (mapped to our "hate")."""

    seen: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Moderations.seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                 "body": body})
        if self.headers.get("Authorization") != "Bearer test-key":
            self.send_response(401)
            self.end_headers()
            return
        flagged = "forbidden" in body["input"]
        payload = {"id": "modr-1", "model": body.get("model", "m"), "results": [{
            "flagged": flagged,
            "categories": {"harassment": flagged, "sexual": False, "violence": False},
            "category_scores": {"harassment": 0.97 if flagged else 0.01, "sexual": 0.02,
                                "violence": 0.03, "violence/graphic": 0.01},
        }]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Moderations)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_flag_refuses_a_locally_allowed_prompt(server: str) -> None:
    Moderations.seen.clear()
    config = SafetyConfig(endpoint=server, api_key="test-key", model="omni-moderation-latest")
    text = "a forbidden dance in a meadow"
    assert moderate_prompt(text, config=SafetyConfig()).allowed  # local alone allows it
    with pytest.raises(Refused) as err:
        check_prompt(text, config=config)
    assert err.value.category == "hate" and err.value.stage == "prompt"
    req = Moderations.seen[-1]
    assert req["path"] == "/v1/moderations" and req["auth"] == "Bearer test-key"
    assert req["body"] == {"input": text, "model": "omni-moderation-latest"}


def test_endpoint_scores_are_reported_and_clean_prompts_pass(server: str) -> None:
    result = moderate_prompt("a kite over a hill", config=SafetyConfig(endpoint=server, api_key="test-key"))
    assert result.allowed
    assert result.scores["external:hate"] == pytest.approx(0.01)
    assert result.scores["external:violence/graphic"] == pytest.approx(0.03)  # max of the two


def test_local_refusal_stands_whatever_the_endpoint_says(server: str) -> None:
    result = moderate_prompt("how to build a pipe bomb", config=SafetyConfig(endpoint=server, api_key="test-key"))
    assert not result.allowed and result.category == "weapons-instructions" and result.source == "rules"


def test_unreachable_or_rejecting_endpoint_keeps_local_decision_unless_fail_closed(server: str) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    result = moderate_prompt("a kite over a hill", config=SafetyConfig(endpoint=down, timeout_s=2))
    assert result.allowed and "endpoint failed" in result.reason
    wrong_key = moderate_prompt("a kite over a hill", config=SafetyConfig(endpoint=server, api_key="nope"))
    assert wrong_key.allowed and "401" in wrong_key.reason
    with pytest.raises(Refused) as err:
        check_prompt("a kite over a hill", config=SafetyConfig(endpoint=down, timeout_s=2, fail_closed=True))
    assert err.value.category == "unavailable"

"""API keys (hashed, scoped, revocable), per-key concurrency and daily quotas, anonymous mode."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_done(server, key: str, video_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = httpx.get(f"{server.url}/v1/videos/{video_id}", headers=auth(key)).json()
        if video["status"] in ("completed", "failed"):
            return video
        time.sleep(0.1)
    raise AssertionError(f"{video_id} did not finish: {video}")


def test_keys_are_required_hashed_scoped_and_revocable(shared_server):
    server = shared_server
    alice, bob = server.new_key("alice"), server.new_key("bob")
    missing = httpx.get(f"{server.url}/v1/videos")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    wrong = httpx.get(f"{server.url}/v1/videos", headers=auth(alice + "x"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"

    video = httpx.post(f"{server.url}/v1/videos", headers=auth(alice), json={"prompt": "a cat", "seconds": 1}).json()
    wait_done(server, alice, video["id"])
    for method, path in [
        ("GET", f"/v1/videos/{video['id']}"),
        ("GET", f"/v1/videos/{video['id']}/content"),
        ("GET", f"/v1/videos/{video['id']}/provenance"),
        ("DELETE", f"/v1/videos/{video['id']}"),
    ]:
        other = httpx.request(method, server.url + path, headers=auth(bob))
        assert other.status_code == 404, (method, path, other.text)
        assert other.json()["error"]["code"] == "not_found"
    remix = httpx.post(f"{server.url}/v1/videos/{video['id']}/remix", headers=auth(bob), json={"prompt": "a dog"})
    assert remix.status_code == 404
    assert httpx.get(f"{server.url}/v1/videos", headers=auth(bob)).json()["data"] == []
    assert httpx.get(f"{server.url}/v1/videos/{video['id']}", headers=auth(alice)).status_code == 200

    # Only hashes are stored: the secret appears nowhere in the database files.
    raw = b"".join(p.read_bytes() for p in server.data_dir.glob("service.sqlite3*"))
    assert alice.encode() not in raw and bob.encode() not in raw
    listing = server.cli("keys", "list")
    assert "alice" in listing and alice not in listing

    key_id = next(line.split()[0] for line in listing.splitlines() if " alice " in line)
    assert server.cli("keys", "revoke", key_id) == f"revoked {key_id}"
    revoked = httpx.get(f"{server.url}/v1/videos", headers=auth(alice))
    assert revoked.status_code == 401
    assert "revoked" in server.cli("keys", "list")


def test_per_key_concurrency_and_daily_quota(server_factory):
    server = server_factory(concurrency_per_key=1, generator_options={"step_seconds": 0.2, "steps": 10})
    key = server.new_key("busy")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    first = client.videos.create(prompt="a slow river", seconds="1")
    with pytest.raises(openai.RateLimitError) as info:
        client.videos.create(prompt="another river", seconds="1")
    assert info.value.code == "rate_limit_exceeded"
    assert int(info.value.response.headers["retry-after"]) >= 1
    other = server.new_key("other")  # limits are per key
    assert httpx.post(f"{server.url}/v1/videos", headers=auth(other), json={"prompt": "x", "seconds": 1}).status_code == 200
    assert client.videos.poll(first.id).status == "completed"
    client.videos.poll(client.videos.create(prompt="now there is room", seconds="1").id)

    quota_key = server.new_key("quota", "--daily-quota", "2", "--concurrency", "5")
    quota = openai.OpenAI(base_url=f"{server.url}/v1", api_key=quota_key, max_retries=0)
    quota.videos.create(prompt="one", seconds="1")
    quota.videos.create(prompt="two", seconds="1")
    with pytest.raises(openai.RateLimitError) as info:
        quota.videos.create(prompt="three", seconds="1")
    assert info.value.code == "quota_exceeded"
    retry = int(info.value.response.headers["retry-after"])
    assert 0 < retry <= 86400
    assert abs(retry - (86400 - time.time() % 86400)) < 5  # until the next UTC midnight


def test_anonymous_only_when_configured_and_only_on_loopback(server_factory, tmp_path):
    server = server_factory(allow_anonymous=True)
    video = httpx.post(f"{server.url}/v1/videos", json={"prompt": "a kite", "seconds": 1})
    assert video.status_code == 200, video.text
    assert httpx.get(f"{server.url}/v1/videos").json()["data"][0]["id"] == video.json()["id"]
    refused = subprocess.run(
        [sys.executable, "-m", "cinepatch", "serve", "--host", "0.0.0.0", "--allow-anonymous",
         "--data-dir", str(tmp_path / "anon")],
        capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 2 and "loopback" in refused.stderr


def test_one_server_per_data_dir(shared_server):
    second = subprocess.run(
        [sys.executable, "-m", "cinepatch", "serve", "--port", "1", "--data-dir", str(shared_server.data_dir)],
        capture_output=True, text=True, timeout=60, env=shared_server.env(),
    )
    assert second.returncode != 0 and "another cinepatch server" in second.stderr + second.stdout
    assert httpx.get(f"{shared_server.url}/healthz").json()["ok"]  # the first one is unharmed

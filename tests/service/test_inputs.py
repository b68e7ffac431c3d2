"""Input limits before any work starts; content types, ranges and the event stream."""

from __future__ import annotations

import io
import json
import time

import httpx
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    from harness import make_server

    server = make_server(tmp_path_factory.mktemp("limits"), max_upload_bytes=200_000, max_image_side=256,
                         max_prompt_chars=100, concurrency_per_key=8)
    server.start()
    server.key = server.new_key()
    yield server
    server.stop()


def post(server, path: str = "/v1/videos", headers: dict | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.key}", **(headers or {})}
    return httpx.post(server.url + path, headers=headers, timeout=30, **kwargs)


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def test_limits_are_enforced_before_work_starts(limited):
    too_long = post(limited, json={"prompt": "x" * 101})
    assert too_long.status_code == 400 and error(too_long)["param"] == "prompt"
    empty = post(limited, json={"prompt": "  "})
    assert empty.status_code == 400 and error(empty)["code"] == "missing_required_parameter"

    big = post(limited, files={"input_reference": ("big.png", b"\0" * 300_000, "image/png")}, data={"prompt": "p"})
    assert big.status_code == 413 and error(big)["code"] == "payload_too_large"

    wide = post(limited, files={"input_reference": ("wide.png", png(300, 40), "image/png")}, data={"prompt": "p"})
    assert wide.status_code == 400 and "256" in error(wide)["message"]

    corrupt_bytes = png(64, 64)[:200]
    corrupt = post(limited, files={"input_reference": ("c.png", corrupt_bytes, "image/png")}, data={"prompt": "p"})
    assert corrupt.status_code == 400 and error(corrupt)["code"] == "invalid_image"
    garbage = post(limited, files={"input_reference": ("g.png", b"not an image at all", "image/png")}, data={"prompt": "p"})
    assert garbage.status_code == 400 and error(garbage)["param"] == "input_reference"

    no_boundary = post(limited, content=b"--xyz\r\n\r\nhi", headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 400 and "malformed" in error(no_boundary)["message"]
    no_name = post(limited, content=b"--xyz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--xyz--\r\n",
                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert no_name.status_code == 400 and "malformed" in error(no_name)["message"], no_name.text
    not_json = post(limited, content=b"{prompt:", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in error(not_json)["message"]

    listing = httpx.get(f"{limited.url}/v1/videos", headers={"Authorization": f"Bearer {limited.key}"}).json()
    assert listing["data"] == []  # none of these made a job
    assert not (limited.data_dir / "uploads").exists() or not any((limited.data_dir / "uploads").iterdir())


def test_events_ranges_and_content_types(limited):
    headers = {"Authorization": f"Bearer {limited.key}"}
    video = post(limited, json={"prompt": "a lamp", "seconds": 2}).json()
    seen: list[dict] = []
    done = None
    with httpx.stream("GET", f"{limited.url}/v1/videos/{video['id']}/events", headers=headers, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "video":
                seen.append(json.loads(line[6:]))
            elif line.startswith("data: ") and event == "done":
                done = json.loads(line[6:])
                break
    progress = [v["progress"] for v in seen]
    assert done == {"id": video["id"], "status": "completed"}
    assert progress == sorted(progress) and progress[-1] == 100 and len(set(progress)) >= 3, progress

    url = f"{limited.url}/v1/videos/{video['id']}/content"
    whole = httpx.get(url, headers=headers)
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    tail = httpx.get(url, headers={**headers, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    beyond = httpx.get(url, headers={**headers, "Range": f"bytes={len(whole.content) + 10}-"})
    assert beyond.status_code == 416
    assert httpx.get(url + "?variant=thumbnail", headers=headers).headers["content-type"] == "image/webp"
    assert httpx.get(url + "?variant=spritesheet", headers=headers).headers["content-type"] == "image/jpeg"
    bad = httpx.get(url + "?variant=gif", headers=headers)
    assert bad.status_code == 400 and error(bad)["param"] == "variant"
    report = httpx.get(f"{limited.url}/v1/videos/{video['id']}/provenance", headers=headers, timeout=120).json()
    assert report["object"] == "video.provenance" and "path" not in report["report"]
    assert report["report"]["made_by_cinepatch"] is False  # the stand-in neither marks nor signs


def test_extra_edits_take_references(limited):
    headers = {"Authorization": f"Bearer {limited.key}"}

    def finish(response: httpx.Response) -> dict:
        assert response.status_code == 200, response.text
        video_id = response.json()["id"]
        for _ in range(300):
            video = httpx.get(f"{limited.url}/v1/videos/{video_id}", headers=headers).json()
            if video["status"] in ("completed", "failed"):
                return video
            time.sleep(0.1)
        raise AssertionError(video)

    a = finish(post(limited, json={"prompt": "a sunrise", "seconds": 1}))
    b = finish(post(limited, json={"prompt": "a sunset", "seconds": 1}))
    loop = finish(post(limited, "/v1/videos/loops", json={"video": {"id": a["id"]}}))
    assert loop["status"] == "completed" and loop["cinepatch"]["edit"] == "loop" and loop["prompt"] == "a sunrise"
    form_ref = finish(post(limited, "/v1/videos/loops", data={"video[id]": a["id"], "bridge": "0.5"}))
    assert form_ref["cinepatch"]["sources"] == [a["id"]] and form_ref["cinepatch"]["params"] == {"bridge": 0.5}
    blend = finish(post(limited, "/v1/videos/blends", json={"videos": [{"id": a["id"]}, {"id": b["id"]}]}))
    assert blend["cinepatch"]["sources"] == [a["id"], b["id"]] and "becoming" in blend["prompt"]
    recut = finish(post(limited, "/v1/videos/recuts", json={"video": {"id": a["id"]}, "start": 0.25, "end": 0.75}))
    assert recut["cinepatch"]["params"] == {"ranges": [[0.25, 0.75]]}
    bad_cut = post(limited, "/v1/videos/recuts", json={"video": {"id": a["id"]}, "start": 2, "end": 1})
    assert bad_cut.status_code == 400 and error(bad_cut)["param"] == "end"
    board = finish(post(limited, "/v1/videos/storyboards", json={
        "cards": [{"prompt": "a door opens", "seconds": 1}, {"prompt": "a bird flies out", "seconds": 1.5}],
        "size": "128x128",
    }))
    assert board["seconds"] == "2.5"
    assert board["cinepatch"]["params"]["cards"][1] == {"at": 1.0, "prompt": "a bird flies out", "seconds": 1.5}
    too_long = post(limited, "/v1/videos/storyboards", json={"cards": [{"prompt": "x", "seconds": 10}] * 2})
    assert too_long.status_code == 400 and error(too_long)["param"] == "seconds"
    missing = post(limited, "/v1/videos/loops", json={"video": {"id": "video_nope"}})
    assert missing.status_code == 404


def test_edit_requests_that_could_only_fail_as_jobs_are_refused_at_once(limited):
    import numpy as np

    from cinepatch.io.video import write_video

    clip = write_video(limited.data_dir.parent / "upload.mp4", np.zeros((8, 32, 32, 3), np.uint8), fps=8)
    loop = post(limited, "/v1/videos/loops", files={"video": ("u.mp4", clip.read_bytes(), "video/mp4")})
    assert loop.status_code == 400 and error(loop)["param"] == "prompt"
    for strength in ("0", "1.5"):
        bad = post(limited, "/v1/videos/edits", data={"prompt": "p", "strength": strength},
                   files={"video": ("u.mp4", clip.read_bytes(), "video/mp4")})
        assert bad.status_code == 400 and error(bad)["param"] == "strength", bad.text

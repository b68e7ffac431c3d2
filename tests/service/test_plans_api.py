"""Scene plans over the Videos API (a real server driving cinepatch's Studio on the world oracle):
every output's plan is served at ``GET /v1/videos/{id}/plan``; a ``plan`` on a create or an
edit is followed; an invalid plan is a 400 naming the field."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from cinepatch.editing.reading import read_frames
from cinepatch.io.video import read_video

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _done(client: httpx.Client, video: dict) -> dict:
    assert "id" in video, video
    for _ in range(600):
        video = client.get(f"/v1/videos/{video['id']}").json()
        if video["status"] in ("completed", "failed"):
            assert video["status"] == "completed", video.get("error")
            return video
        time.sleep(0.1)
    raise AssertionError("the video did not finish in 60 s")


def _frames(client: httpx.Client, video_id: str, tmp_path) -> np.ndarray:
    path = tmp_path / f"{video_id}.mp4"
    path.write_bytes(client.get(f"/v1/videos/{video_id}/content").content)
    return read_video(path).frames


def test_plans_are_served_and_a_moved_plan_is_followed(real, tmp_path) -> None:
    client = httpx.Client(base_url=real.url, headers={"Authorization": f"Bearer {real.new_key()}"}, timeout=60)
    base = {"size": "128x128", "fps": 8, "seed": 1}
    first = _done(client, client.post("/v1/videos", json={"prompt": "a red circle moves slowly right", "seconds": 2,
                                                          **base}).json())
    plan = client.get(f"/v1/videos/{first['id']}/plan").json()["plan"]
    assert plan["canvas"] == {"width": 128, "height": 128, "fps": 8, "frames": 16}

    # An extension plans its output from the source; that plan is served too.
    ext = _done(client, client.post("/v1/videos/extensions", json={"video": {"id": first["id"]}, "prompt": "a red circle", "seconds": 1}).json())
    ext_plan = client.get(f"/v1/videos/{ext['id']}/plan").json()["plan"]
    assert ext_plan["canvas"]["frames"] == 24

    # Move the extension's end point and re-render the edit with that plan.
    obj = ext_plan["objects"][0]
    boxes = obj.pop("boxes", None) or [k["box"] for k in obj.pop("keyframes")]
    obj["keyframes"] = [{"frame": 0, "box": boxes[0]}, {"frame": 15, "box": boxes[-1] if len(boxes) < 24 else boxes[15]},
                        {"frame": 23, "box": [0.1, 0.7, 0.1 + boxes[0][2] - boxes[0][0], 0.7 + boxes[0][3] - boxes[0][1]]}]
    again = _done(client, client.post("/v1/videos/extensions", json={"video": {"id": first["id"]}, "prompt": "a red circle", "seconds": 1,
                                                                     "plan": ext_plan}).json())
    got = read_frames(_frames(client, again["id"], tmp_path), fps=8).plan.objects[0].track
    centre = (got[-1, :2] + got[-1, 2:]) / 2
    size = boxes[0][2] - boxes[0][0]
    assert np.allclose(centre, [0.1 + size / 2, 0.7 + size / 2], atol=0.02)  # it ends where the plan was moved


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/v1/videos", {"prompt": "a red circle", "plan": {"version": 1}}, "plan.canvas"),
        ("/v1/videos", {"prompt": "a red circle", "plan": {"version": 1, "canvas": {"width": 128, "height": 128, "fps": 8,
                        "frames": 2}, "objects": [{"phrase": "red circle", "boxes": [[0, 0, 2, 1], [0, 0, 0.1, 0.1]]}]}},
         "plan.objects[0].boxes[0]"),
        ("/v1/videos/extensions", {"video": {"id": "video_x"}, "plan": "not a plan"}, "plan"),
    ],
)
def test_an_invalid_plan_is_a_400_naming_the_field(real, path: str, body: dict, field: str) -> None:
    client = httpx.Client(base_url=real.url, headers={"Authorization": f"Bearer {real.new_key()}"}, timeout=30)
    reply = client.post(path, json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"].startswith(field), reply.json()


def test_a_plan_of_an_unfinished_or_unknown_video(real) -> None:
    client = httpx.Client(base_url=real.url, headers={"Authorization": f"Bearer {real.new_key()}"}, timeout=30)
    assert client.get("/v1/videos/video_nothere/plan").status_code == 404

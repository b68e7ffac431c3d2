"""Trajectory control in the web studio, in headless Chromium against a real server driving the
Studio on the world oracle: the plan is drawn over the player and scrubs with it; dragging a
path's end point and pressing Regenerate makes a video whose object follows the moved path.
Screenshots are saved under the test's tmp dir (the path is printed) and in test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from cinepatch.editing.reading import read_frames
from cinepatch.io.video import read_video
from harness import ARTIFACTS, make_server
from test_browser import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture
def oracle_server(tmp_path: Path):
    (tmp_path / "server").mkdir()
    server = make_server(
        tmp_path / "server",
        studio_config_dir=str(tmp_path / "studio-config"),
        studio_data_dir=str(tmp_path / "studio-data"),
        generator="cinepatch.service.generator:default_studio",
        prompt_check="cinepatch.service.generator:check_prompt",
        models={"sora-2": "world", "world": "world"},
        default_model="sora-2",
        lease_seconds=60.0,
    )
    server.start()
    yield server
    server.stop()


def _track(frames: np.ndarray, fps: int) -> np.ndarray:
    obj = read_frames(frames, fps=fps).plan.objects[0].track
    return (obj[:, :2] + obj[:, 2:]) / 2


def test_drag_an_end_point_and_regenerate(oracle_server, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    server = oracle_server
    key = server.new_key("browser")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"screenshots: {shots}")
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / name))
            shutil.copy(shots / name, ARTIFACTS / name)

        page.goto(server.url + "/")
        page.wait_for_selector("#login[open]")
        page.fill("#login-key", key)
        page.click("#login-go")
        page.wait_for_selector("#empty:not([hidden])")
        page.fill("#prompt", "a large red square moves slowly right on a navy background")
        page.select_option("#size", "256x144")
        page.fill("#seed", "3")
        page.click("#generate")
        page.wait_for_selector(".card.completed", timeout=60_000)
        page.locator(".card").first.click()
        page.wait_for_selector("#detail[open]")
        page.wait_for_selector("#plan-overlay:not([hidden]) rect.box", timeout=30_000)
        page.wait_for_function("() => document.querySelector('#player').readyState >= 2", timeout=30_000)

        # The box scrubs with the video: at the start and at the end it is in different places.
        page.evaluate("() => { const v = document.querySelector('#player'); v.pause(); v.currentTime = 0; }")
        page.wait_for_timeout(300)
        x_start = float(page.get_attribute("#plan-overlay rect.box", "x"))
        page.evaluate("() => { const v = document.querySelector('#player'); v.currentTime = v.duration - 0.01; }")
        page.wait_for_timeout(300)
        x_end = float(page.get_attribute("#plan-overlay rect.box", "x"))
        assert x_end > x_start + 5, (x_start, x_end)
        shot("plan-overlay.png")

        # Drag the path's end point down-left, by a quarter of the frame's height and width.
        plan = page.evaluate("window.__studio.plan.data")
        width, height = plan["canvas"]["width"], plan["canvas"]["height"]
        end = page.locator("#plan-overlay circle.end").bounding_box()
        picture = page.locator("#plan-overlay").bounding_box()
        scale = min(picture["width"] / width, picture["height"] / height)  # screen px per video px
        cx, cy = end["x"] + end["width"] / 2, end["y"] + end["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        for i in range(1, 11):
            page.mouse.move(cx - i * 0.025 * width * scale, cy + i * 0.025 * height * scale)
        page.mouse.up()
        wanted = np.array(page.evaluate("window.__studio.plan.tracks[0]"))
        shot("plan-dragged.png")
        assert page.is_enabled("#regen-go")
        before = page.locator(".card").count()
        page.click("#regen-go")
        page.wait_for_function(f"() => document.querySelectorAll('.card.completed').length > {before - 1}"
                               f" && document.querySelectorAll('.card').length > {before}", timeout=60_000)
        page.wait_for_function("() => !document.querySelector('.stage').classList.contains('waiting')", timeout=60_000)
        page.wait_for_selector("#plan-overlay:not([hidden]) rect.box", timeout=30_000)
        shot("plan-regenerated.png")
        new_id = page.evaluate("window.__studio.plan.video.id")
        browser.close()
    assert not errors, errors

    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    path = tmp_path / "regenerated.mp4"
    path.write_bytes(client.get(f"/v1/videos/{new_id}/content").content)
    frames = read_video(path).frames
    got = _track(frames, plan["canvas"]["fps"])
    target = (wanted[:, :2] + wanted[:, 2:]) / 2
    assert len(got) == len(target)
    # the bar: within 10% of the frame's width of the edited box centres on ≥ 90% of frames
    distance = np.hypot((got[:, 0] - target[:, 0]) * width, (got[:, 1] - target[:, 1]) * height) / width
    assert (distance <= 0.10).mean() >= 0.9, distance
    assert target[-1, 1] - target[0, 1] > 0.15  # the path really was moved down

"""The web studio in headless Chromium (Debian's, driven by Playwright): create, watch, play, remix."""

from __future__ import annotations

import shutil

import pytest

from harness import ARTIFACTS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory):
    from harness import make_server

    server = make_server(tmp_path_factory.mktemp("browser"), generator_options={"step_seconds": 0.12, "steps": 12})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def page(studio_server):
    playwright = pytest.importorskip("playwright.sync_api")
    server = studio_server
    server.key = server.new_key("browser")  # a fresh key: an empty library for each test
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # the page must work under the service's Content-Security-Policy (no inline script or
        # style): Chromium reports each blocked resource or attribute on the console
        page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.server = server
        page.errors = errors
        yield page
        context.close()
        browser.close()
    assert not errors, errors


def test_create_watch_play_and_remix(page):
    server = page.server
    page.goto(server.url + "/")
    page.wait_for_selector("#login[open]")
    page.fill("#login-key", "cpk_not_a_key")
    page.click("#login-go")
    page.wait_for_selector("#login-error:has-text('Incorrect API key')")
    page.fill("#login-key", server.key)
    page.click("#login-go")
    page.wait_for_selector("#empty:not([hidden])")
    assert "key_" in page.text_content("#who")

    page.fill("#prompt", "a red ball bouncing across a meadow")
    page.select_option("#size", "256x144")
    page.fill("#seed", "7")
    page.click("#generate")
    card = page.locator(".card").first
    card.locator(".pct").wait_for()
    page.wait_for_function("() => window.__studio.progressLog.some(([, p]) => p > 0 && p < 100)")
    page.screenshot(path=str(ARTIFACTS / "studio-progress.png"))
    page.wait_for_function("() => window.__studio.progressLog.some(([, p]) => p === 100)", timeout=60_000)
    progress = [p for _, p in page.evaluate("window.__studio.progressLog")]
    assert progress == sorted(progress) and progress[-1] == 100 and len(set(progress)) >= 3, progress
    page.wait_for_function("() => getComputedStyle(document.querySelector('.card .thumb')).backgroundImage.includes('thumbnail')")

    # Hover preview scrubs the spritesheet.
    box = card.locator(".thumb").bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + box["height"] / 2)
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)
    page.wait_for_selector(".card .sprite.ready")
    assert "spritesheet" in card.locator(".sprite").evaluate("n => n.style.backgroundImage")
    page.screenshot(path=str(ARTIFACTS / "studio-library.png"))

    card.click()
    page.wait_for_selector("#detail[open]")
    page.wait_for_function("() => document.querySelector('#player').readyState >= 2", timeout=30_000)
    page.evaluate("document.querySelector('#player').play()")
    page.wait_for_function("() => document.querySelector('#player').currentTime > 0.2", timeout=30_000)
    assert page.evaluate("document.querySelector('#player').videoWidth") == 256
    assert "in tiny colours" in page.text_content("#d-expanded")
    page.wait_for_selector("#d-prov-badge:not(:has-text('…'))")
    assert "[object Object]" not in page.text_content("#d-prov-body")
    page.screenshot(path=str(ARTIFACTS / "studio-detail.png"))

    page.fill("#remix-prompt", "a blue ball bouncing across a meadow")
    page.click("#remix-go")
    page.wait_for_selector("#d-prompt:has-text('a blue ball')")
    page.wait_for_function(
        "() => document.querySelector('#player').readyState >= 2"
        " && !document.querySelector('.stage').classList.contains('waiting')",
        timeout=60_000,
    )
    page.screenshot(path=str(ARTIFACTS / "studio-remix.png"))

    page.click("#loop-go")  # the other edit buttons post to the extra endpoints the same way
    page.wait_for_selector(".card .tag.kind:has-text('loop')")
    page.wait_for_function("() => !document.querySelector('.stage').classList.contains('waiting')", timeout=60_000)
    page.click("#close")
    assert page.locator(".card").count() == 3
    assert [page.locator(".card .tag.kind").nth(i).text_content() for i in range(2)] == ["loop", "remix"]
    assert page.locator(".card.completed").count() == 3


def test_storyboard_editor(page):
    server = page.server
    page.context.request.post(server.url + "/studio/session", data={"key": server.key})
    page.goto(server.url + "/")
    page.click("#tab-storyboard")
    page.wait_for_selector(".sb-card")
    assert page.locator(".sb-card").count() == 2
    page.click("#sb-add")
    cards = page.locator(".sb-card")
    assert cards.count() == 3
    cards.nth(2).locator("textarea").fill("the ball rests in the grass")
    seconds = cards.nth(2).locator("input")
    seconds.fill("3")
    seconds.dispatch_event("change")
    assert page.text_content("#sb-total").startswith("7.0 s")
    widths = [cards.nth(i).bounding_box()["width"] for i in range(3)]
    assert widths[2] > widths[0]  # longer shot, wider card
    page.screenshot(path=str(ARTIFACTS / "studio-storyboard.png"))
    page.click("#sb-render")
    page.wait_for_selector(".card .tag.kind:has-text('storyboard')")
    page.wait_for_selector(".card.completed", timeout=60_000)
    assert page.locator(".card .tag").nth(1).text_content().startswith("7s")


def test_page_runs_under_its_security_policy_and_shows_c2pa_actions_as_rows(page):
    server = page.server
    response = page.goto(server.url + "/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    page.wait_for_selector("#login[open]")
    # an inline script is refused by the policy (the browser really enforces it) …
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';
                             document.body.append(s); }""")
    assert page.evaluate("window.__inline") is None
    page.errors.clear()  # … and that refusal was the test's own doing
    # the provenance panel's rows: each C2PA action in words, as `cinepatch verify` prints it
    rows = page.evaluate("""() => flatten({manifest: {state: 'valid', actions: [
        {action: 'c2pa.opened', parameters: {ingredientIds: ['a']}},
        {action: 'c2pa.edited', digitalSourceType: 'http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia',
         softwareAgent: {name: 'cinepatch', version: '0.1'}, parameters: {model: 'world', edit: 'loop'}}]}})""")
    assert rows[0] == ["manifest.state", "valid"]
    assert rows[1] == ["manifest.actions 1", "c2pa.opened"]
    assert rows[2] == ["manifest.actions 2",
                       "c2pa.edited (trainedAlgorithmicMedia) · model=world · edit=loop · cinepatch 0.1"]

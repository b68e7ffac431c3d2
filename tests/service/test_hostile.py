"""Hostile input never breaks the service: each defect found by trying it as an attacker would
is a test here, against the real server on loopback (issue 23)."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time

import httpx
import pytest


def error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


@pytest.fixture
def api(shared_server):
    """An httpx client with a fresh key (an empty library) on the module's server."""
    key = shared_server.new_key("hostile")
    with httpx.Client(base_url=shared_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        client.key = key
        yield client


def finish(api: httpx.Client, response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    for _ in range(300):
        video = api.get(f"/v1/videos/{response.json()['id']}").json()
        if video["status"] in ("completed", "failed"):
            return video
        time.sleep(0.1)
    raise AssertionError(video)


def raw_json(api: httpx.Client, path: str, text: str) -> httpx.Response:
    """A body as written: Infinity, 1e999 and lone surrogates do not survive json.dumps."""
    return api.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def assert_library_empty(api: httpx.Client) -> None:
    listing = api.get("/v1/videos")
    assert listing.status_code == 200 and listing.json()["data"] == [], listing.text


def test_unservable_numbers_and_text_are_refused_before_anything_is_stored(api):
    source = finish(api, api.post("/v1/videos", json={"prompt": "a sunrise", "seconds": 1}))
    ref = json.dumps({"id": source["id"]})
    cases = [
        ("/v1/videos/recuts", f'{{"video": {ref}, "start": 0, "end": 1e999}}', "end"),
        ("/v1/videos/extensions", f'{{"video": {ref}, "direction": "\\ud800"}}', "direction"),
        ("/v1/videos", '{"prompt": "a kite", "seed": 1e999}', "seed"),
        ("/v1/videos", '{"prompt": "a kite", "fps": Infinity}', "body"),
        ("/v1/videos", '{"prompt": "a kite", "steps": -Infinity}', "body"),
        ("/v1/videos", '{"prompt": "a kite", "seconds": NaN}', "body"),
        ("/v1/videos", '{"prompt": "a kite \\ud800"}', "prompt"),
        ("/v1/videos", '{"prompt": "a kite \\u0000"}', "prompt"),
        ("/v1/videos/loops", f'{{"video": {ref}, "prompt": "\\udfff loop"}}', "prompt"),
    ]
    for path, text, param in cases:
        response = raw_json(api, path, text)
        assert response.status_code == 400, (text, response.text)
        assert error(response)["param"] == param, (text, response.json())
    listing = api.get("/v1/videos").json()["data"]
    assert [v["id"] for v in listing] == [source["id"]]  # nothing else was stored; the list loads


def test_loose_spellings_are_refused_not_reinterpreted(api):
    for fields, param in [
        ({"prompt": "p", "size": "64X64"}, "size"),
        ({"prompt": "p", "size": "６４x６４"}, "size"),
        ({"prompt": "p", "seconds": "1_0"}, "seconds"),
        ({"prompt": "p", "seconds": "２"}, "seconds"),
        ({"prompt": "p", "seconds": "1e1"}, "seconds"),
        ({"prompt": "p", "seconds": " 2"}, "seconds"),
        ({"prompt": "p", "seed": "0x10"}, "seed"),
        ({"prompt": "p", "seed": "1e999"}, "seed"),
        ({"prompt": "p", "fps": "Infinity"}, "fps"),
        ({"prompt": "p", "steps": "NaN"}, "steps"),
        ({"prompt": "p", "steps": "99999999999999999999999"}, "steps"),
        ({"prompt": "p", "colour": "red"}, "colour"),  # an unknown field is not silently dropped
    ]:
        response = api.post("/v1/videos", data=fields)  # a form, as the official clients send
        assert response.status_code == 400 and error(response)["param"] == param, (fields, response.text)
    assert_library_empty(api)


def test_a_multipart_body_cut_before_its_closing_boundary_is_refused(api):
    body = (b"--b0\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na kite\r\n"
            b"--b0\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n1")
    response = api.post("/v1/videos", content=body, headers={"Content-Type": "multipart/form-data; boundary=b0"})
    assert response.status_code == 400 and "closing boundary" in error(response)["message"]
    complete = body + b"\r\n--b0--\r\n"
    made = api.post("/v1/videos", content=complete, headers={"Content-Type": "multipart/form-data; boundary=b0"})
    assert made.status_code == 200 and made.json()["seconds"] == "1"  # not the 4 s default


def test_edit_fields_are_checked_before_a_job_exists(api):
    source = finish(api, api.post("/v1/videos", json={"prompt": "a sunrise", "seconds": 1}))
    ref = {"id": source["id"]}
    for path, fields, param in [
        ("/v1/videos/recuts", {"video": ref, "ranges": [[0, 5]]}, "ranges"),  # past the 1 s source
        ("/v1/videos/recuts", {"video": ref, "ranges": [[0.5, 0.2]]}, "ranges"),
        ("/v1/videos/recuts", {"video": ref, "ranges": [[0, 0.5, 1]]}, "ranges"),
        ("/v1/videos/recuts", {"video": ref, "ranges": "[[0, 1e999]]"}, "ranges"),
        ("/v1/videos/extensions", {"video": ref, "direction": "sideways"}, "direction"),
        ("/v1/videos/loops", {"video": ref, "bridge": 0}, "bridge"),
        ("/v1/videos/edits", {"video": ref, "prompt": "p", "strength": 1.5}, "strength"),
        ("/v1/videos/blends", {"videos": [ref, ref], "mode": "mix"}, "with"),
        ("/v1/videos/blends", {"videos": [ref], "mode": "join"}, "videos"),
        ("/v1/videos/storyboards", {"cards": [{"prompt": "x", "seconds": -1}]}, "cards.0.seconds"),
        ("/v1/videos/storyboards", {"cards": []}, "cards"),
    ]:
        response = api.post(path, json=fields)
        assert response.status_code == 400 and error(response)["param"].startswith(param), (path, fields, response.text)
    assert [v["id"] for v in api.get("/v1/videos").json()["data"]] == [source["id"]]


def test_a_record_that_cannot_be_served_reads_as_failed_and_the_rest_loads(api, shared_server):
    good = finish(api, api.post("/v1/videos", json={"prompt": "a sunrise", "seconds": 1}))
    bad = api.post("/v1/videos", json={"prompt": "a sunset", "seconds": 1}).json()
    damaged = finish(api, api.post("/v1/videos", json={"prompt": "a moonrise", "seconds": 1}))
    with sqlite3.connect(shared_server.data_dir / "service.sqlite3") as db:  # as older servers stored them
        db.execute("UPDATE jobs SET spec = ? WHERE id = ?",
                   ('{"params": {"ranges": [[0, Infinity]]}, "direction": "\\ud800"}', bad["id"]))
        db.execute("UPDATE jobs SET result = ? WHERE id = ?", ("{not json", damaged["id"]))
    listing = api.get("/v1/videos")
    assert listing.status_code == 200, listing.text
    by_id = {v["id"]: v for v in listing.json()["data"]}
    assert by_id[good["id"]]["status"] == "completed"
    source = finish(api, api.post("/v1/videos", json={"prompt": "a moonset", "seconds": 1}))
    with sqlite3.connect(shared_server.data_dir / "service.sqlite3") as db:  # a completed one, too
        db.execute("UPDATE jobs SET spec = ? WHERE id = ?", ('{"seconds": Infinity, "width": 64}', source["id"]))
    assert api.get(f"/v1/videos/{source['id']}").json()["error"]["code"] == "unreadable_record"
    edit = api.post(f"/v1/videos/{source['id']}/remix", json={"prompt": "a moonset"})
    assert edit.status_code == 409 and error(edit)["code"] == "video_not_ready"  # not a 500
    assert api.delete(f"/v1/videos/{source['id']}").status_code == 200
    for video_id in (bad["id"], damaged["id"]):
        assert by_id[video_id]["status"] == "failed" and by_id[video_id]["error"]["code"] == "unreadable_record"
        one = api.get(f"/v1/videos/{video_id}")
        assert one.status_code == 200 and one.json()["status"] == "failed"
        assert api.delete(f"/v1/videos/{video_id}").status_code == 200  # the client can clean up
    assert [v["id"] for v in api.get("/v1/videos").json()["data"]] == [good["id"]]


def test_cookie_authenticated_changes_must_come_from_this_origin(shared_server):
    key = shared_server.new_key("cookie")
    url = shared_server.url
    with httpx.Client(base_url=url, timeout=30) as browser:
        login = browser.post("/studio/session", json={"key": key}, headers={"Origin": url})
        assert login.status_code == 200 and browser.cookies.get("cinepatch_key") == key
        for origin in ("http://127.0.0.1:1", "http://evil.example", "null"):
            forged = browser.post("/v1/videos", json={"prompt": "a kite", "seconds": 1}, headers={"Origin": origin})
            assert forged.status_code == 403 and error(forged)["code"] == "cross_origin"
        no_origin = browser.post("/v1/videos", json={"prompt": "a kite", "seconds": 1})
        assert no_origin.status_code == 403
        same = browser.post("/v1/videos", json={"prompt": "a kite", "seconds": 1}, headers={"Origin": url})
        assert same.status_code == 200, same.text
        fetch_meta = browser.delete(f"/v1/videos/{same.json()['id']}", headers={"Sec-Fetch-Site": "same-origin"})
        assert fetch_meta.status_code == 200
        assert browser.get("/v1/videos").status_code == 200  # reads need no Origin
    # a bearer key is no ambient credential: other origins may use it (the OpenAI clients do)
    other = httpx.post(f"{url}/v1/videos", json={"prompt": "a kite", "seconds": 1}, timeout=30,
                       headers={"Authorization": f"Bearer {key}", "Origin": "http://elsewhere.example"})
    assert other.status_code == 200


def test_security_headers_health_and_the_data_folder(shared_server):
    url = shared_server.url
    for path in ("/", "/v1/videos", "/static/app.js", "/healthz"):
        headers = httpx.get(url + path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    assert httpx.get(url + "/healthz").json() == {"ok": True, "workers": 1}  # nothing per key
    page = httpx.get(url + "/").text
    assert "<script>" not in page and "<style>" not in page and " style=" not in page and " on" + "click=" not in page
    assert httpx.get(url + "/docs").status_code == 404  # Swagger would come from a CDN
    data = shared_server.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    made = api_video(shared_server)  # so there are videos, previews and a -wal file to look at
    assert made["status"] == "completed"
    paths = list(data.rglob("*"))
    assert any(p.suffix == ".mp4" for p in paths) and (data / "service.sqlite3").is_file()
    for path in paths:  # nothing of the service's is readable by other users
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))


def api_video(server) -> dict:
    key = server.new_key("files")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        return finish(client, client.post("/v1/videos", json={"prompt": "a kite", "seconds": 1}))


def test_errors_have_openai_shape_everywhere(api, shared_server):
    wrong_method = api.put("/v1/videos")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET, POST"
    assert error(wrong_method)["code"] == "method_not_allowed"
    assert error(api.get("/nowhere"))["code"] == "not_found"
    assert error(api.get("/v1/videos", params={"limit": "1e999"}))["param"] == "limit"
    video = finish(api, api.post("/v1/videos", json={"prompt": "a kite", "seconds": 1}))
    content = f"/v1/videos/{video['id']}/content"
    size = len(api.get(content).content)
    part = api.get(content, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10
    beyond = api.get(content, headers={"Range": f"bytes={size + 10}-{size + 20}"})
    assert beyond.status_code == 416 and error(beyond)["code"] == "range_not_satisfiable"
    assert beyond.headers["content-range"] == f"bytes */{size}"
    malformed = api.get(content, headers={"Range": "pages=1-2"})
    assert malformed.status_code == 400 and error(malformed)["param"] == "Range"


def test_a_second_server_is_refused_in_one_line(shared_server):
    second = subprocess.run(
        [sys.executable, "-m", "cinepatch", "serve", "--port", "1", "--data-dir", str(shared_server.data_dir)],
        capture_output=True, text=True, timeout=60, env=shared_server.env(),
    )
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0 and "Traceback" not in second.stderr
    assert "another cinepatch server" in second.stderr


def test_the_video_names_the_model_that_made_it(api):
    queued = api.post("/v1/videos", json={"prompt": "a kite", "seconds": 1, "model": "sora-2"})
    assert queued.json()["model"] == "sora-2"  # asked for; nothing has made it yet
    done = finish(api, queued)
    assert done["model"] == "tiny-standin" and done["cinepatch"]["requested_model"] == "sora-2"


def test_the_openapi_document_describes_bodies_errors_and_the_bearer_scheme(shared_server):
    doc = httpx.get(f"{shared_server.url}/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    error_shape = "#/components/schemas/ErrorBody"
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            statuses = operation["responses"]
            assert "422" not in statuses, (method, path)  # validation errors are 400s here
            for status, reply in statuses.items():
                if status.startswith(("4", "5")):
                    assert reply["content"]["application/json"]["schema"]["$ref"] == error_shape, (method, path, status)
            if method == "post":
                content = operation["requestBody"]["content"]
                assert "application/json" in content, (method, path)
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearer": []}] and "401" in statuses, (method, path)
    create = doc["paths"]["/v1/videos"]["post"]["requestBody"]["content"]
    form = create["multipart/form-data"]["schema"]["properties"]
    assert form["input_reference"] == {"type": "string", "format": "binary"}
    seed = doc["components"]["schemas"]["CreateVideo"]["properties"]["seed"]["anyOf"][0]
    assert seed == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}

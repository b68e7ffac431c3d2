"""The official openai package, unmodified, against a real uvicorn server on loopback."""

from __future__ import annotations

import io

import av
import openai
import pytest
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def server(shared_server):
    return shared_server


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.new_key(), max_retries=0)


def test_create_and_poll_then_download_every_variant(client, server):
    video = client.videos.create_and_poll(prompt="a red ball bouncing", seconds="2", size="128x128")
    assert video.status == "completed", video
    assert video.progress == 100 and video.completed_at >= video.created_at
    assert video.size == "128x128" and video.seconds == "2"
    extra = video.model_extra["cinepatch"]
    # the model that made it, not the alias the client sent (which is kept as such)
    assert video.model == "tiny-standin" and extra["requested_model"] == "sora-2"
    assert extra["expanded_prompt"].startswith("a red ball bouncing") and extra["frames"] == 16

    mp4 = client.videos.download_content(video.id, variant="video").read()
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (128, 128)
        assert sum(1 for _ in container.decode(stream)) == 16
    default = client.videos.download_content(video.id).read()
    assert default == mp4
    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumb.format == "WEBP" and thumb.size == (128, 128)
    sprite = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sprite.format == "JPEG" and sprite.size == (128 * 10, 128)


def test_openai_sizes_are_mapped_and_bad_sizes_rejected(client):
    video = client.videos.create(prompt="a boat", size="1280x720")
    assert video.size == "112x64"
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="a boat", size="100x100")
    assert info.value.status_code == 400
    assert info.value.body["param"] == "size" and "multiple of 16" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="a boat", seconds="90")
    assert info.value.body["param"] == "seconds"
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="a boat", model="sora-9")
    assert info.value.body["param"] == "model"


def test_moderation_refusal_is_a_typed_error(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="something forbidden happens")
    assert info.value.code == "moderation_blocked"
    assert info.value.body["param"] == "prompt"
    assert client.videos.list().data == []  # nothing was queued


def test_unknown_id_and_bad_key_are_typed_errors(client, server):
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content("video_doesnotexist")
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="cpk_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.videos.list()
    assert info.value.code == "invalid_api_key"


def test_remix_extend_and_edit(client):
    first = client.videos.create_and_poll(prompt="a green cube", seconds="1", size="128x128")
    remix = client.videos.remix(first.id, prompt="a blue cube")
    assert remix.remixed_from_video_id == first.id and remix.status == "queued"
    remix = client.videos.poll(remix.id)
    assert remix.status == "completed" and remix.prompt == "a blue cube" and remix.size == first.size

    # openai 3.54's extend() rejects video={"id": ...} client-side (its file extraction wants a
    # file at `video`), so the SDK path is an upload; a reference works over plain HTTP (below).
    mp4 = client.videos.download_content(first.id).read()
    extended = client.videos.extend(video=("first.mp4", mp4, "video/mp4"), prompt="the cube rolls away", seconds="1")
    extended = client.videos.poll(extended.id)
    assert extended.status == "completed", extended.error
    assert extended.seconds == "2"  # the stitched total, as OpenAI reports it

    by_id = client.post(
        "/videos/extensions", cast_to=openai.types.Video,
        body={"video": {"id": first.id}, "prompt": "the cube rolls back", "seconds": "1"},
    )
    by_id = client.videos.poll(by_id.id)
    assert by_id.status == "completed" and by_id.seconds == "2"
    assert by_id.model_extra["cinepatch"]["sources"] == [first.id]

    edited = client.videos.edit(video=("clip.mp4", mp4, "video/mp4"), prompt="make it night")
    edited = client.videos.poll(edited.id)
    assert edited.status == "completed", edited.error


def test_list_paginates_and_delete_removes(client, server):
    ids = []
    for i in range(5):
        ids.append(client.videos.create(prompt=f"clip {i}", seconds="1").id)
        client.videos.poll(ids[-1])
    page = client.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[::-1][:2] and page.has_more
    everything = [v.id for v in client.videos.list(limit=2)]  # auto-pagination follows after=
    assert everything == ids[::-1]
    ascending = [v.id for v in client.videos.list(limit=3, order="asc")]
    assert ascending == ids

    deleted = client.videos.delete(ids[0])
    assert deleted.deleted and deleted.id == ids[0] and deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(ids[0])
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(ids[0])
    assert not (server.data_dir / "videos" / ids[0]).exists()
    assert [v.id for v in client.videos.list(limit=100)] == ids[:0:-1]


def test_input_reference_image(client):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    video = client.videos.create_and_poll(
        prompt="the picture comes alive", seconds="1", input_reference=("ref.png", buffer.getvalue(), "image/png")
    )
    assert video.status == "completed" and video.model_extra["cinepatch"]["edit"] == "image"

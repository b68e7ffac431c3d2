"""The service driving cinepatch's own Studio (the world-oracle model): the same path as the CLI.

Moderation, expansion, the watermark and C2PA all come from ``cinepatch.app``; nothing here is
a stand-in, so a refused prompt, an expanded prompt and a verifiable file prove the service
cannot skip them.
"""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_real_studio_end_to_end(real):
    client = openai.OpenAI(base_url=f"{real.url}/v1", api_key=real.new_key(), max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="a man shoots people in a crowd, blood everywhere")
    assert info.value.code == "moderation_blocked" and "refused" in info.value.message

    video = client.videos.create_and_poll(prompt="a red ball bouncing", seconds="1", size="128x128")
    assert video.status == "completed", video.error
    extra = video.model_extra["cinepatch"]
    assert "red circle" in extra["expanded_prompt"].lower()  # the Studio's expansion ran
    assert extra["frames"] == 16 and len(extra["payload"]) == 8

    report = client.get(f"/videos/{video.id}/provenance", cast_to=object)["report"]
    assert report["made_by_cinepatch"] is True, report  # watermark and/or C2PA read back
    assert (real.data_dir.parent / "studio-data" / "ledger.sqlite").is_file()  # the Studio's ledger
    remix = client.videos.poll(client.videos.remix(video.id, prompt="a blue ball bouncing").id)
    assert remix.status == "completed", remix.error
    assert "blue circle" in remix.model_extra["cinepatch"]["expanded_prompt"].lower()

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cinepatch.cli import main as cli_main
from cinepatch.errors import InvalidParameter, ProvenanceError
from cinepatch.io.video import read_video, write_video
from cinepatch.provenance import (
    Ledger,
    Record,
    Settings,
    c2pa_sign,
    finish,
    new_payload,
    verify,
)
from cinepatch.provenance.c2pa_sign import TRAINED_ALGORITHMIC_MEDIA


@pytest.fixture()
def settings(tmp_path: Path, keys: c2pa_sign.SigningKeys) -> Settings:
    return Settings(keys_dir=keys.chain.parent, ledger=tmp_path / "ledger.sqlite")


@pytest.fixture()
def made(tmp_path: Path, clip: np.ndarray, settings: Settings):
    out = tmp_path / "out" / "video.mp4"
    result = finish(
        clip, fps=8, out=out, payload=bytes.fromhex("5ef8a446"), settings=settings,
        record=Record(prompt="a red ball rolls left", model="world@1", parameters={"seed": 7}),
    )
    return result


def test_keys_have_the_extensions_c2pa_needs(keys: c2pa_sign.SigningKeys) -> None:
    from cryptography import x509

    signer = x509.load_pem_x509_certificate(keys.chain.read_bytes())
    root = x509.load_pem_x509_certificate(keys.root.read_bytes())
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert signer.issuer == root.subject and root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (signer.not_valid_after_utc - signer.not_valid_before_utc).days > 365 * 10
    assert oct(keys.key.stat().st_mode & 0o777) == "0o600"
    assert c2pa_sign.ensure_keys(keys.chain.parent) == keys  # made once, reused


def test_signed_output_is_trusted_with_the_local_root(made, keys, settings) -> None:
    report = verify(made.path, ledger=settings.ledger, trust_root=keys.root)
    m = report.manifest
    assert m.state == "trusted", m
    created = [a for a in m.actions if a["action"] == "c2pa.created"]
    assert created and created[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert created[0]["softwareAgent"]["name"] == "cinepatch"
    assert created[0]["parameters"]["model"] == "world@1"
    assert m.generation["watermark_payload"] == "5ef8a446"
    assert report.watermark.found and report.watermark.payload == 0x5EF8A446
    assert report.ledger is not None and report.ledger.prompt == "a red ball rolls left"
    assert report.ledger.sha256 == report.sha256 == made.sha256
    assert report.ledger.parameters["seed"] == 7
    assert made.psnr >= 38.0
    # Without the root the signature still checks out, but nothing vouches for the signer.
    assert verify(made.path).manifest.state == "valid"


def test_flipped_bytes_in_mdat_make_the_manifest_invalid(made, keys, tmp_path) -> None:
    data = bytearray(made.path.read_bytes())
    at = data.find(b"mdat") + 64
    data[at] ^= 0xFF
    data[at + 1] ^= 0xFF
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    report = verify(tampered, trust_root=keys.root)
    assert report.manifest.state == "invalid"
    assert any("mismatch" in f for f in report.manifest.failures)


def test_reencoded_copy_loses_the_manifest_but_keeps_the_watermark(made, keys, settings, tmp_path) -> None:
    copy = tmp_path / "copy.mp4"
    write_video(copy, read_video(made.path).frames, fps=8, crf=28, b_frames=True)
    report = verify(copy, ledger=settings.ledger, trust_root=keys.root)
    assert report.manifest.state == "absent"
    assert report.watermark.found and report.watermark.payload == 0x5EF8A446
    assert report.ledger is not None and report.ledger.prompt == "a red ball rolls left"
    assert report.made_by_cinepatch and report.notes  # says the file differs from the recorded one


def test_edit_records_opened_and_edited_with_the_source_as_ingredient(made, clip, keys, settings, tmp_path) -> None:
    out = finish(
        clip[::-1], fps=8, out=tmp_path / "edit.mp4", payload=new_payload(), settings=settings,
        record=Record(prompt="reverse it", model="world@1", action="c2pa.edited", edit="remix",
                      sources=(str(made.path),)),
    )
    m = verify(out.path, trust_root=keys.root).manifest
    assert m.state == "trusted"
    assert [a["action"] for a in m.actions] == ["c2pa.opened", "c2pa.edited"]
    assert m.ingredients[0]["title"] == "video.mp4" and m.ingredients[0]["relationship"] == "parentOf"
    assert m.ingredients[0]["has_manifest"]  # the source's own credentials travel with it


def test_edit_without_a_source_is_signed_as_created(clip, keys, settings, tmp_path) -> None:
    # A loop or a mix from prompts alone has no ingredient: C2PA needs `created` first.
    out = finish(
        clip, fps=8, out=tmp_path / "loop.mp4", payload=new_payload(), settings=settings,
        record=Record(prompt="a loop", model="world@1", action="c2pa.created", edit="loop"),
    )
    m = verify(out.path, trust_root=keys.root).manifest
    assert m.state == "trusted"
    assert [a["action"] for a in m.actions] == ["c2pa.created"]
    assert m.actions[0]["parameters"]["edit"] == "loop" and not m.ingredients


def test_failed_signing_leaves_nothing_behind(clip, tmp_path, keys) -> None:
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    settings = Settings(keys_dir=None, cert=keys.chain, key=bad_key, ledger=tmp_path / "ledger.sqlite")
    out = tmp_path / "out" / "video.mp4"
    with pytest.raises(ProvenanceError):
        finish(clip, fps=8, out=out, payload=new_payload(), settings=settings,
               record=Record(prompt="x", model="world@1"))
    assert sorted(p.name for p in out.parent.iterdir()) == []
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert len(ledger) == 0


def test_failed_signing_keeps_an_earlier_output(clip, tmp_path, keys) -> None:
    out = tmp_path / "video.mp4"
    out.write_bytes(b"earlier")
    settings = Settings(keys_dir=None, cert=keys.chain, key=keys.root, ledger=None)  # a cert, not a key
    with pytest.raises(ProvenanceError):
        finish(clip, fps=8, out=out, payload=new_payload(), settings=settings,
               record=Record(prompt="x", model="world@1"))
    assert out.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["video.mp4"]


def test_visible_mark_is_on_by_default_and_can_be_turned_off(clip, tmp_path, settings) -> None:
    on = finish(clip, fps=8, out=tmp_path / "on.gif", payload=new_payload(), settings=settings,
                record=Record(prompt="x", model="m"))
    off_settings = Settings(keys_dir=settings.keys_dir, ledger=settings.ledger, visible_mark=False)
    off = finish(clip, fps=8, out=tmp_path / "off.gif", payload=new_payload(), settings=off_settings,
                 record=Record(prompt="x", model="m"))
    a, b = read_video(on.path).frames, read_video(off.path).frames
    corner = np.abs(a[:, -10:, -16:].astype(int) - b[:, -10:, -16:]).mean()  # "cp" at 128²
    elsewhere = np.abs(a[:, :64, :64].astype(int) - b[:, :64, :64]).mean()
    assert corner > 10 * max(elsewhere, 0.5)
    assert verify(on.path).watermark.found and verify(off.path).watermark.found
    assert not on.signed  # GIFs carry the watermark and the ledger row, not C2PA


def test_small_frames_get_the_short_mark_in_their_corner() -> None:
    from cinepatch.provenance.visible import apply_visible_mark

    frames = np.full((2, 64, 64, 3), 60, np.uint8)
    changed = np.argwhere((apply_visible_mark(frames) != frames).any(axis=(0, 3)))  # (n, 2) y, x
    assert len(changed) > 10
    assert changed[:, 1].min() > 64 - 64 / 3 - 2 and changed[:, 0].min() > 64 / 2  # a corner, not a banner
    wide = np.full((2, 64, 384, 3), 60, np.uint8)  # room for the word within 3 % of the frame
    assert np.argwhere((apply_visible_mark(wide) != wide).any(axis=(0, 3)))[:, 1].min() < 384 - 40  # the word


def test_ledger_rejects_a_reused_payload_and_looks_up_by_hash(made, clip, settings) -> None:
    with Ledger(settings.ledger) as ledger:
        entry = ledger.get(made.payload)
        assert entry.model == "world@1" and entry.sha256 == made.sha256
        assert ledger.find_sha256(made.sha256).payload == made.payload
        assert ledger.get(made.payload ^ 1) is None
        mode = ledger._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    with pytest.raises(ProvenanceError):
        finish(clip, fps=8, out=made.path.with_name("again.mp4"), payload=made.payload, settings=settings,
               record=Record(prompt="x", model="m"))
    assert not made.path.with_name("again.mp4").exists()


def test_bad_settings_fail_before_any_work(clip, tmp_path, keys) -> None:
    with pytest.raises(InvalidParameter):
        finish(clip, fps=8, out=tmp_path / "v.mp4", payload=1, record=Record(prompt="x", model="m"),
               settings=Settings(keys_dir=None, cert=keys.chain, key=None))
    with pytest.raises(InvalidParameter):
        finish(clip, fps=8, out=tmp_path / "v.mp4", payload=b"\x00", record=Record(prompt="x", model="m"),
               settings=Settings(keys_dir=tmp_path / "k"))
    assert list(tmp_path.iterdir()) == []


def test_cli_verify_json_and_exit_codes(made, keys, settings, tmp_path, capsys, clip) -> None:
    code = cli_main(["verify", str(made.path), "--json", "--trust-root", str(keys.root),
                     "--ledger", str(settings.ledger)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["c2pa"]["state"] == "trusted"
    assert report["watermark"]["payload_hex"] == "5ef8a446"
    assert report["ledger"]["prompt"] == "a red ball rolls left"

    plain = tmp_path / "plain.mp4"
    write_video(plain, clip, fps=8)
    code = cli_main(["verify", str(plain), "--config-dir", str(tmp_path / "none"),
                     "--data-dir", str(tmp_path / "none")])
    text = capsys.readouterr().out
    assert code == 1 and "watermark   not found" in text and "C2PA        none" in text

    assert cli_main(["verify", str(tmp_path / "missing.mp4")]) == 2


@pytest.mark.parametrize("size", [(64, 64), (128, 128), (128, 224), (224, 128), (720, 1280)])
def test_the_mark_covers_at_most_three_percent_of_the_frame(size) -> None:
    from cinepatch.provenance.visible import apply_visible_mark

    frames = np.full((1, *size, 3), 90, np.uint8)
    ys, xs = np.nonzero((apply_visible_mark(frames) != frames).any(axis=(0, 3)))
    assert len(ys), "no mark drawn"
    box = (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
    assert box <= 0.03 * size[0] * size[1]

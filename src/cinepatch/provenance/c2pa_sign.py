"""C2PA Content Credentials: signing keys, signing an MP4 offline, and reading a manifest back.

Keys: on first use :func:`ensure_keys` makes a local root CA and a signer certificate (ECDSA
P-256, SHA-256) under the folder it is given (the CLI passes ``~/.config/cinepatch/c2pa/``)::

    root.pem        the root CA certificate — give it to :func:`read_manifest` as the trust anchor
    root.key        the root CA's private key (mode 0600), kept to issue a new signer later
    signer.pem      chain: the signer certificate (KeyUsage digitalSignature, EKU
                    emailProtection, valid 20 years — there is no timestamp, so validity is
                    judged at read time)
    signer.key      the signer's private key (mode 0600)

A user with their own certificate passes :class:`SigningKeys` pointing at their chain and key.
Signing needs no network (no timestamp authority). It writes to a temporary file beside the
output and renames it onto the output, so a failure leaves the unsigned input untouched and no
partial file behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cinepatch import __version__
from cinepatch.errors import InvalidParameter, ProvenanceError
from cinepatch.io.atomic import atomic_write, write_bytes

__all__ = [
    "TRAINED_ALGORITHMIC_MEDIA",
    "SigningKeys",
    "ManifestInfo",
    "ManifestReport",
    "ensure_keys",
    "sign_file",
    "read_manifest",
]

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_MIME = {".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/mp4"}
_CUSTOM_LABEL = "org.cinepatch.generation"


@dataclass(frozen=True)
class SigningKeys:
    """A certificate chain (PEM, signer first, root left out) and its private key."""

    chain: Path
    key: Path
    alg: str = "es256"
    root: Path | None = None  # the trust anchor, when known (the local root for generated keys)


@dataclass(frozen=True)
class ManifestInfo:
    """What the manifest says about an output.

    ``model``: the model identifier (preset or checkpoint name and hash). ``sources``: for an
    edit, the input files (the first is the parent); empty for a new generation.
    ``watermark_payload``: the invisible watermark's payload, recorded so the two can be tied.
    """

    model: str
    title: str = ""
    prompt_recorded: bool = False
    watermark_payload: int | None = None
    sources: tuple[Path, ...] = ()
    edit: str = ""  # name of the edit operation ("remix", "extend", …) when sources are given
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ManifestReport:
    """A C2PA manifest read back: ``state`` is ``absent``, ``invalid``, ``valid`` or ``trusted``."""

    state: str
    title: str | None = None
    claim_generator: str | None = None
    signer: str | None = None
    actions: tuple[dict, ...] = ()
    ingredients: tuple[dict, ...] = ()
    generation: dict | None = None
    failures: tuple[str, ...] = ()
    error: str | None = None

    @property
    def present(self) -> bool:
        return self.state != "absent"

    def to_dict(self) -> dict:
        return {
            "present": self.present,
            "state": self.state,
            "title": self.title,
            "claim_generator": self.claim_generator,
            "signer": self.signer,
            "actions": list(self.actions),
            "ingredients": list(self.ingredients),
            "generation": self.generation,
            "failures": list(self.failures),
            "error": self.error,
        }


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def ensure_keys(folder: str | Path) -> SigningKeys:
    """Return the signing keys in ``folder``, creating a root CA and a signer there if missing."""
    folder = Path(folder).expanduser()
    keys = SigningKeys(
        chain=folder / "signer.pem", key=folder / "signer.key", root=folder / "root.pem"
    )
    if keys.chain.exists() and keys.key.exists() and keys.root.exists():
        return keys
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cinepatch (local installation)"),
            ]
        )

    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = name("cinepatch local root CA")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * 30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(name("cinepatch content signer"))
        .issuer_name(root_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * 20))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )

    def pem_key(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    for path, data, private in (
        (folder / "root.key", pem_key(root_key), True),
        (keys.key, pem_key(signer_key), True),
        (keys.root, root.public_bytes(serialization.Encoding.PEM), False),
        (keys.chain, signer.public_bytes(serialization.Encoding.PEM), False),
    ):
        write_bytes(path, data)
        os.chmod(path, 0o600 if private else 0o644)
    return keys


# ---------------------------------------------------------------------------------------------
# Signing
# ---------------------------------------------------------------------------------------------


def _manifest_json(
    info: ManifestInfo, *, title: str, mime: str, ingredient_ids: list[str], unlisted: list[str]
) -> dict:
    agent = {"name": "cinepatch", "version": __version__}
    parameters = {"model": info.model}
    if info.edit and ingredient_ids:
        actions = [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ingredient_ids[:1]}},
            {
                "action": "c2pa.edited",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": agent,
                "description": f"cinepatch {info.edit}",
                "parameters": {**parameters, "edit": info.edit, "ingredientIds": ingredient_ids},
            },
        ]
    else:  # made from prompts alone (an edit without a hashable source, e.g. a loop from a prompt, is too)
        actions = [
            {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": agent,
                "parameters": {**parameters, "edit": info.edit} if info.edit else parameters,
            }
        ]
    generation = {"model": info.model, "software": f"cinepatch {__version__}", **info.extra}
    if unlisted:
        generation["sources_not_hashed"] = unlisted  # formats C2PA cannot take as ingredients
    if info.watermark_payload is not None:
        generation["watermark_payload"] = f"{info.watermark_payload:08x}"
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": _CUSTOM_LABEL, "data": generation},
        ],
    }


def sign_file(
    path: str | Path, info: ManifestInfo, keys: SigningKeys, *, dest: str | Path | None = None
) -> Path:
    """Sign the MP4 at ``path`` with a C2PA manifest, writing ``dest`` (default: ``path`` itself).

    The signed file is written beside ``dest`` and renamed onto it, so on any failure ``dest`` is
    left as it was and nothing partial remains. Returns ``dest``.
    """
    import c2pa

    path = Path(path)
    dest = path if dest is None else Path(dest)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise InvalidParameter("path", str(path), "an .mp4, .m4v or .mov file to sign")
    if not path.is_file():
        raise ProvenanceError(f"{path}: no such file to sign")
    try:
        chain, key = keys.chain.read_bytes(), keys.key.read_bytes()
    except OSError as exc:
        raise ProvenanceError(f"signing key or certificate unreadable: {exc}") from exc
    supported = set(c2pa.Builder.get_supported_mime_types())
    ingredients = []  # (id, path, format) of sources C2PA can hash; others are only listed
    unlisted = []
    for i, source in enumerate(Path(s) for s in info.sources):
        fmt = _MIME.get(source.suffix.lower()) or source.suffix.lstrip(".").lower()
        if source.is_file() and fmt in supported:
            ingredients.append((f"source{i}", source, fmt))
        else:
            unlisted.append(source.name)
    manifest = _manifest_json(
        info,
        title=info.title or path.name,
        mime=mime,
        ingredient_ids=[ident for ident, _, _ in ingredients],
        unlisted=unlisted,
    )
    try:
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(keys.alg.encode(), chain, key, None)
        )
        with signer, c2pa.Builder(manifest) as builder:
            for n, (ident, source, fmt) in enumerate(ingredients):
                ingredient = {
                    "title": source.name,
                    "relationship": "parentOf" if n == 0 else "componentOf",
                    "label": ident,
                }
                with open(source, "rb") as stream:
                    builder.add_ingredient(ingredient, fmt, stream)
            with atomic_write(dest) as tmp, open(path, "rb") as src, open(tmp, "w+b") as dst:
                builder.sign(signer, mime, src, dst)
    except (c2pa.C2paError, OSError, ValueError) as exc:
        raise ProvenanceError(f"{path}: C2PA signing failed: {exc}") from exc
    return dest


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_manifest(path: str | Path, *, trust_root: str | Path | None = None) -> ManifestReport:
    """Read and validate the C2PA manifest embedded in ``path``.

    ``trust_root``: a PEM file of trusted root certificates; a valid manifest signed under one of
    them reads ``trusted``, otherwise ``valid``. A broken hash or signature reads ``invalid``.
    """
    import c2pa

    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"{path}: no such file")
    settings: dict = {"verify": {"verify_trust": trust_root is not None}}
    if trust_root is not None:
        settings["trust"] = {"trust_anchors": Path(trust_root).read_text()}
    try:
        context = c2pa.Context.from_dict(settings)
        with context, open(path, "rb") as stream:
            fmt = _MIME.get(path.suffix.lower()) or path.suffix.lstrip(".").lower() or "video/mp4"
            try:
                reader = c2pa.Reader(fmt, stream, context=context)
            except c2pa.C2paError.ManifestNotFound:
                return ManifestReport(state="absent")
            with reader:
                store = json.loads(reader.json())
                state = (reader.get_validation_state() or "").lower()
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in text or "NotSupported" in text:
            return ManifestReport(state="absent", error=text)
        return ManifestReport(state="invalid", error=text)
    return _report(store, state)


def _report(store: dict, state: str) -> ManifestReport:
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    failures = tuple(
        f"{s.get('code')}: {s.get('explanation', '')}".strip()
        for s in store.get("validation_status", []) or []
    )
    results = store.get("validation_results", {}).get("activeManifest", {}) or {}
    failures += tuple(
        f"{s.get('code')}: {s.get('explanation', '')}".strip() for s in results.get("failure", []) or []
    )
    failures = tuple(dict.fromkeys(failures))
    if state not in ("trusted", "valid", "invalid"):
        state = "invalid" if failures else "valid"
    actions: list[dict] = []
    generation = None
    for assertion in active.get("assertions", []):
        label = assertion.get("label", "")
        if label.startswith("c2pa.actions"):
            actions.extend(assertion.get("data", {}).get("actions", []))
        elif label == _CUSTOM_LABEL:
            generation = assertion.get("data")
    ingredients = tuple(
        {
            "title": ing.get("title"),
            "relationship": ing.get("relationship"),
            "format": ing.get("format"),
            "has_manifest": bool(ing.get("active_manifest") or ing.get("manifest_data")),
        }
        for ing in active.get("ingredients", [])
    )
    generator = active.get("claim_generator_info") or []
    signature = active.get("signature_info", {}) or {}
    return ManifestReport(
        state=state,
        title=active.get("title"),
        claim_generator=" ".join(f"{g.get('name')} {g.get('version', '')}".strip() for g in generator)
        or active.get("claim_generator"),
        signer=signature.get("common_name") or signature.get("issuer"),
        actions=tuple(actions),
        ingredients=ingredients,
        generation=generation,
        failures=failures,
    )

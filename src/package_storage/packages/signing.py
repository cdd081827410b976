"""OpenPGP keys and armored detached signatures (``<name>-<version>.zip.sig``), over pysequoia.

Kibana (Fleet) verifies a package zip with ``openpgp.readSignature({armoredSignature})`` and
``openpgp.verify`` against the one public key it is configured with
(``xpack.fleet.packageVerification.gpgKeyPath``), looking only at the first signature of the
``.sig`` file. So a signature made here is:

* ASCII-armored (``-----BEGIN PGP SIGNATURE-----``), detached, binary mode (type 0x00), one
  signature per file, SHA-512;
* made by an OpenPGP **v4** key (RFC 4880 profile): v6 keys (RFC 9580) are not understood by
  openpgp.js 5.x (Kibana 8.x) nor by GnuPG 2.2.

Algorithms (:class:`KeyAlgorithm`): ``ed25519`` (the default: EdDSA over Ed25519 in the v4
encoding, which openpgp.js 5 and 6, GnuPG >= 2.1 and Sequoia all verify; generation and signing
take about a millisecond), ``rsa3072`` and ``rsa4096`` (what Elastic's own package key uses: RSA
4096, for sites whose policy asks for RSA; 4096-bit generation takes seconds). openpgp.js rejects
RSA keys under 2047 bits, so smaller RSA is not offered.

The key generated here has a certification primary key, a signing subkey and an encryption
subkey, and does not expire. pysequoia cannot put a passphrase on a key it generates; keys
generated here are therefore stored unencrypted (the keyring writes them with mode 0600).
Passphrase-protected secret keys made elsewhere (``gpg --export-secret-keys --armor``) load
with :func:`load_secret_key` ``(armored, passphrase)``.

Error contract: unusable *input* (text that is not an armored key or signature, a public key
where a secret one is needed, a wrong passphrase) raises :class:`SignatureError` naming the
input and the rule. A signature that does not verify is a *result*, never an exception:
:func:`verify_detached` returns ``Verification(ok=False, reason=...)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pysequoia as pgp
from pysequoia.packet import HashAlgorithm, PacketPile, PublicKeyAlgorithm, Tag

from package_storage.errors import SignatureError

SIGNATURE_HEADER = "-----BEGIN PGP SIGNATURE-----"
PUBLIC_KEY_HEADER = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
SECRET_KEY_HEADER = "-----BEGIN PGP PRIVATE KEY BLOCK-----"

# Armored keys and signatures are small; refuse anything absurdly large before parsing it.
MAX_ARMORED_BYTES = 1 << 20


class KeyAlgorithm(enum.StrEnum):
    """Signing key algorithms offered by ``keys generate --algorithm``."""

    ED25519 = "ed25519"
    RSA3072 = "rsa3072"
    RSA4096 = "rsa4096"


DEFAULT_ALGORITHM = KeyAlgorithm.ED25519
ALGORITHMS: tuple[str, ...] = tuple(a.value for a in KeyAlgorithm)

_SUITES: dict[KeyAlgorithm, pgp.CipherSuite] = {
    KeyAlgorithm.ED25519: pgp.CipherSuite.Cv25519,
    KeyAlgorithm.RSA3072: pgp.CipherSuite.RSA3k,
    KeyAlgorithm.RSA4096: pgp.CipherSuite.RSA4k,
}

# pysequoia's enum values compare equal but are not hashable: (value, name) pairs, not dicts.
_WEAK_HASHES: tuple[tuple[HashAlgorithm, str], ...] = (
    (HashAlgorithm.MD5, "MD5"),
    (HashAlgorithm.SHA1, "SHA-1"),
    (HashAlgorithm.RipeMD, "RIPEMD-160"),
)

_ALGORITHM_NAMES: tuple[tuple[PublicKeyAlgorithm, str], ...] = (
    (PublicKeyAlgorithm.EdDSA, "EdDSA"),
    (PublicKeyAlgorithm.Ed25519, "Ed25519"),
    (PublicKeyAlgorithm.Ed448, "Ed448"),
    (PublicKeyAlgorithm.ECDSA, "ECDSA"),
    (PublicKeyAlgorithm.RSAEncryptSign, "RSA"),
    (PublicKeyAlgorithm.RSASign, "RSA"),
    (PublicKeyAlgorithm.DSA, "DSA"),
)


def _lookup(table: tuple[tuple[Any, str], ...], value: Any) -> str | None:
    return next((name for key, name in table if key == value), None)


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An OpenPGP certificate (public key) that signatures are verified against.

    ``fingerprint`` is the primary key's, 40 upper-case hex digits (as ``gpg`` prints it);
    ``key_ids`` holds the lower-case fingerprints and 16-digit key IDs of the primary key and
    every subkey (a signature names the subkey that made it).
    """

    armored: str
    fingerprint: str
    user_ids: tuple[str, ...]
    algorithm: str
    key_ids: frozenset[str] = field(repr=False)
    cert: pgp.Cert = field(repr=False, compare=False)

    @property
    def key_id(self) -> str:
        """The 16-digit key ID (upper case), as Kibana reports ``verification_key_id``."""
        return self.fingerprint[-16:]

    def describe(self) -> str:
        """``Name <mail> (FINGERPRINT)``."""
        who = self.user_ids[0] if self.user_ids else "no user ID"
        return f"{who} ({self.fingerprint})"


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A secret signing key: its armored text (as stored, still encrypted when it was) and an
    unlocked signer. ``protected`` tells whether the stored text is passphrase-protected.
    The armored text is kept out of ``repr`` (no secret in logs or tracebacks)."""

    armored: str = field(repr=False)
    fingerprint: str
    user_ids: tuple[str, ...]
    algorithm: str
    protected: bool
    tsk: pgp.Tsk = field(repr=False, compare=False)
    signer: pgp.PySigner = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking one detached signature.

    ``fingerprint``: the primary fingerprint of the key that verified the signature; when it
    did not verify, that of the matching key if one is known, else the issuer the signature
    names (a fingerprint or a 16-digit key ID, upper case), or None. ``reason`` is one line for
    people, also on success (``good signature from ...``).
    """

    ok: bool
    fingerprint: str | None
    reason: str
    issuer: str | None = None


# --- parsing helpers -------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    """pysequoia's message without the Rust backtrace (RUST_BACKTRACE=1 appends one)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _text(value: str | bytes, what: str) -> str:
    if isinstance(value, bytes):
        if len(value) > MAX_ARMORED_BYTES:
            raise SignatureError(f"{what}: {len(value)} bytes is too large for armored OpenPGP")
        try:
            return value.decode("ascii")
        except UnicodeDecodeError as exc:
            raise SignatureError(
                f"{what} is not ASCII-armored OpenPGP (binary data at byte {exc.start})"
            ) from None
    if len(value) > MAX_ARMORED_BYTES:
        raise SignatureError(f"{what}: {len(value)} characters is too large for armored OpenPGP")
    return value


def _armor_kind(text: str) -> str | None:
    """The header line of an armored block (leading blank lines allowed), or None."""
    head = text.lstrip()
    for header in (SIGNATURE_HEADER, PUBLIC_KEY_HEADER, SECRET_KEY_HEADER):
        if head.startswith(header):
            return header
    return None


def _key_packets(cert: pgp.Cert) -> list[Any]:
    return [
        packet
        for packet in PacketPile.from_bytes(bytes(cert))
        if packet.tag in (Tag.PublicKey, Tag.PublicSubkey)
    ]


def _has_secret_packets(text: str) -> bool:
    try:
        pile = PacketPile.from_bytes(text.encode("ascii"))
    except (RuntimeError, ValueError):
        return False
    return any(packet.tag in (Tag.SecretKey, Tag.SecretSubkey) for packet in pile)


def _algorithm_name(packet: Any) -> str:
    algorithm = packet.key_algorithm
    name = _lookup(_ALGORITHM_NAMES, algorithm)
    return name if name is not None else str(algorithm).rsplit(".", 1)[-1]


def _public_from_cert(cert: pgp.Cert) -> PublicKey:
    packets = _key_packets(cert)
    ids: set[str] = set()
    for packet in packets:
        if packet.fingerprint:
            ids.add(packet.fingerprint.lower())
        if packet.key_id:
            ids.add(packet.key_id.lower())
    # Serialising a Cert drops secret key material: the PublicKey never holds secrets.
    public_cert = pgp.Cert.from_bytes(bytes(cert))
    return PublicKey(
        armored=str(public_cert),
        fingerprint=cert.fingerprint.upper(),
        user_ids=tuple(str(uid) for uid in cert.user_ids),
        algorithm=_algorithm_name(packets[0]) if packets else "unknown",
        key_ids=frozenset(ids),
        cert=public_cert,
    )


def _parse_certs(text: str, what: str) -> list[pgp.Cert]:
    kind = _armor_kind(text)
    if kind is None:
        raise SignatureError(
            f"{what} is not an ASCII-armored OpenPGP key (expected {PUBLIC_KEY_HEADER} or "
            f"{SECRET_KEY_HEADER})"
        )
    if kind == SIGNATURE_HEADER:
        raise SignatureError(f"{what} is a signature, not an OpenPGP key")
    try:
        certs = pgp.Cert.split_bytes(text.encode("ascii"))
    except (RuntimeError, ValueError) as exc:
        raise SignatureError(f"{what} is not a valid OpenPGP key: {_first_line(exc)}") from None
    if not certs:
        raise SignatureError(f"{what} holds no OpenPGP key")
    return certs


def _one_cert(text: str, what: str) -> pgp.Cert:
    certs = _parse_certs(text, what)
    if len(certs) != 1:
        raise SignatureError(
            f"{what} holds {len(certs)} keys ("
            + ", ".join(c.fingerprint.upper() for c in certs)
            + "): give one key at a time"
        )
    return certs[0]


# --- keys ------------------------------------------------------------------------------------


def parse_algorithm(value: str | KeyAlgorithm) -> KeyAlgorithm:
    """``KeyAlgorithm`` from its name; SignatureError naming the choices otherwise."""
    try:
        return KeyAlgorithm(str(value).lower())
    except ValueError:
        raise SignatureError(
            f"unknown key algorithm {value!r}: choose one of {', '.join(ALGORITHMS)}"
        ) from None


def generate_key(user_id: str, *, algorithm: str | KeyAlgorithm = DEFAULT_ALGORITHM) -> SecretKey:
    """A new v4 signing key (no expiry, no passphrase) for ``user_id`` (``Name <mail>``)."""
    if not user_id.strip():
        raise SignatureError("user ID of a new key must not be empty")
    if any(ch in user_id for ch in "\r\n\0"):
        raise SignatureError(f"user ID {user_id!r} must be one line")
    suite = _SUITES[parse_algorithm(algorithm)]
    try:
        tsk = pgp.Tsk.generate(user_id, profile=pgp.Profile.RFC4880, cipher_suite=suite)
    except (RuntimeError, ValueError) as exc:  # pragma: no cover - library failure
        raise SignatureError(f"cannot generate a key for {user_id!r}: {_first_line(exc)}") from None
    return load_secret_key(str(tsk))


def is_secret_key(armored: str | bytes) -> bool:
    """True when ``armored`` is an armored secret key block (no full parse)."""
    try:
        return _armor_kind(_text(armored, "key")) == SECRET_KEY_HEADER
    except SignatureError:
        return False


def load_secret_key(armored: str | bytes, passphrase: str | None = None) -> SecretKey:
    """Parse an armored secret key and unlock its signing key with ``passphrase``.

    SignatureError when the text is not an armored secret key, holds several keys, is a public
    key, has no usable signing key, or needs a passphrase that is missing or wrong.
    """
    what = "secret key"
    text = _text(armored, what)
    kind = _armor_kind(text)
    if kind == PUBLIC_KEY_HEADER:
        raise SignatureError(f"{what}: this is a public key; a secret key is needed to sign")
    cert = _one_cert(text, what)
    fingerprint = cert.fingerprint.upper()
    if not _has_secret_packets(text):
        raise SignatureError(
            f"{what} {fingerprint} holds no secret key material; a secret key is needed to sign"
        )
    try:
        tsk = pgp.Tsk.from_bytes(text.encode("ascii"))
    except (RuntimeError, ValueError) as exc:
        raise SignatureError(f"{what} {fingerprint} does not parse: {_first_line(exc)}") from None
    protected = False
    try:
        signer = tsk.signer()
    except (RuntimeError, ValueError) as exc:
        message = _first_line(exc)
        if "encrypted" not in message:
            raise SignatureError(
                f"{what} {fingerprint} has no usable signing key: {message}"
            ) from None
        protected = True
        if passphrase is None:
            raise SignatureError(
                f"{what} {fingerprint} is protected by a passphrase and none was given "
                "(set PACKAGE_STORAGE_KEY_PASSPHRASE)"
            ) from None
        try:
            signer = tsk.signer(passphrase)
        except (RuntimeError, ValueError):
            raise SignatureError(
                f"{what} {fingerprint}: the passphrase does not unlock the signing key"
            ) from None
    public = _public_from_cert(cert)
    return SecretKey(
        armored=text if text.endswith("\n") else text + "\n",
        fingerprint=fingerprint,
        user_ids=public.user_ids,
        algorithm=public.algorithm,
        protected=protected,
        tsk=tsk,
        signer=signer,
    )


MESSAGE_HEADER = "-----BEGIN PGP MESSAGE-----"


def seal(text: str, passphrase: str) -> str:
    """``text`` (e.g. an armored secret key) as an armored OpenPGP message encrypted with
    ``passphrase`` (symmetric, SKESK + SEIPD: what ``gpg --symmetric`` makes), for storing a
    secret where other people can read: the store's catalog."""
    if not passphrase:
        raise SignatureError("sealing needs a passphrase (set PACKAGE_STORAGE_KEY_PASSPHRASE)")
    return pgp.encrypt(text.encode("ascii"), passwords=[passphrase]).decode("ascii")


def is_sealed(text: str) -> bool:
    """True when ``text`` is an armored OpenPGP message (as :func:`seal` makes)."""
    return text.lstrip().startswith(MESSAGE_HEADER)


def unseal(message: str, passphrase: str | None, *, what: str = "sealed key") -> str:
    """The text :func:`seal` encrypted. SignatureError when the passphrase is missing or does
    not open it."""
    if not passphrase:
        raise SignatureError(
            f"{what} is encrypted with a passphrase and none was given"
            " (set PACKAGE_STORAGE_KEY_PASSPHRASE)"
        )
    try:
        opened = pgp.decrypt(_text(message, what).encode("ascii"), passwords=[passphrase])
    except (RuntimeError, ValueError):
        raise SignatureError(f"{what}: the passphrase does not open it") from None
    if opened.bytes is None:
        raise SignatureError(f"{what} is empty")
    try:
        return bytes(opened.bytes).decode("ascii")
    except UnicodeDecodeError:
        raise SignatureError(f"{what} does not hold an armored key") from None


def load_public_key(armored: str | bytes) -> PublicKey:
    """Parse one armored key. A secret key is accepted and reduced to its public part."""
    return _public_from_cert(_one_cert(_text(armored, "public key"), "public key"))


def public_key_of(secret: SecretKey) -> PublicKey:
    """The public part (certificate) of ``secret``: what ``keys export`` gives to Kibana."""
    return _public_from_cert(secret.tsk.extract_certificate())


# --- signatures ------------------------------------------------------------------------------


def sign_detached(secret: SecretKey, data: bytes) -> bytes:
    """An armored detached signature of ``data`` (``-----BEGIN PGP SIGNATURE-----``)."""
    try:
        signature = pgp.sign(secret.signer, data, mode=pgp.SignatureMode.DETACHED, armor=True)
    except (RuntimeError, ValueError) as exc:  # pragma: no cover - library failure
        raise SignatureError(
            f"cannot sign with key {secret.fingerprint}: {_first_line(exc)}"
        ) from None
    return signature


def parse_signature(signature: str | bytes) -> pgp.Sig:
    """The first signature of an armored detached signature; SignatureError when unusable."""
    what = "signature"
    text = _text(signature, what)
    kind = _armor_kind(text)
    if kind != SIGNATURE_HEADER:
        found = "an OpenPGP key" if kind else repr(text.strip()[:40])
        raise SignatureError(
            f"{what} is not an ASCII-armored OpenPGP signature (expected {SIGNATURE_HEADER}, "
            f"found {found})"
        )
    try:
        return pgp.Sig.from_bytes(text.encode("ascii"))
    except (RuntimeError, ValueError) as exc:
        raise SignatureError(f"{what} does not parse: {_first_line(exc)}") from None


def _issuer(sig: pgp.Sig) -> tuple[str | None, set[str]]:
    ids: set[str] = set()
    fingerprint = sig.issuer_fingerprint
    key_id = sig.issuer_key_id
    if fingerprint:
        ids.add(fingerprint.lower())
        ids.add(fingerprint.lower()[-16:])
    if key_id:
        ids.add(key_id.lower())
    shown = (fingerprint or key_id or "").upper() or None
    return shown, ids


def verify_detached(
    public_keys: Iterable[PublicKey], data: bytes, signature: str | bytes
) -> Verification:
    """Check an armored detached ``signature`` of ``data`` against ``public_keys``.

    Like Kibana, only the first signature in the file counts. Never raises for a signature that
    does not verify (unknown key, changed data, revoked or expired key, weak hash): the result
    says why. SignatureError only when ``signature`` is not an armored OpenPGP signature.
    """
    sig = parse_signature(signature)
    keys: Sequence[PublicKey] = list(public_keys)
    issuer, issuer_ids = _issuer(sig)
    if not keys:
        return Verification(
            False, issuer, f"no verification key is configured (signed by {issuer})", issuer
        )
    matches = [key for key in keys if issuer_ids & key.key_ids] if issuer_ids else list(keys)
    if not matches:
        return Verification(
            False,
            issuer,
            f"signature was made by unknown key {issuer}, which is not among the "
            f"{len(keys)} verification key(s) (" + ", ".join(k.fingerprint for k in keys) + ")",
            issuer,
        )
    weak = _lookup(_WEAK_HASHES, sig.hash_algorithm)

    def store(_ids: Sequence[str]) -> list[pgp.Cert]:
        return [key.cert for key in matches]

    try:
        result = pgp.verify(bytes=data, store=store, signature=sig)
        valid = list(result.valid_sigs)
    except (RuntimeError, ValueError):
        valid = []
    if valid:
        good_fpr = str(valid[0].certificate).upper()
        key = next((k for k in matches if k.fingerprint == good_fpr), matches[0])
        return Verification(True, key.fingerprint, f"good signature from {key.describe()}", issuer)
    key = matches[0]
    if weak is not None:
        why = f"it uses the {weak} hash, which is refused as insecure"
    elif key.cert.is_revoked:
        why = "the key is revoked"
    elif (expiry := key.cert.expiration) is not None and expiry <= datetime.now(UTC):
        why = f"the key expired on {expiry:%Y-%m-%d}"
    else:
        why = "the data does not match the signature (changed since it was signed?)"
    return Verification(
        False, key.fingerprint, f"BAD signature from {key.describe()}: {why}", issuer
    )


__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "KeyAlgorithm",
    "PublicKey",
    "SecretKey",
    "Verification",
    "generate_key",
    "is_sealed",
    "is_secret_key",
    "load_public_key",
    "load_secret_key",
    "parse_algorithm",
    "parse_signature",
    "public_key_of",
    "seal",
    "sign_detached",
    "unseal",
    "verify_detached",
]

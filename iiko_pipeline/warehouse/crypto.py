"""AES-256-GCM envelopes for stored integration credentials.

Why this shape (performance and security notes §9):

- A **fresh random 96-bit nonce per encryption**. The product brief's fixed
  ``CREDENTIAL_ENCRYPTION_NONCE`` reuses one (key, nonce) pair for every row, which leaks the XOR of any
  two passwords and GCM's hash key (so tags can be forged). The fixed nonce is only ever used here to
  *decrypt* legacy rows so that ``iiko-pipeline keys rotate`` can rewrite them; it never encrypts.
- **AAD binds a ciphertext to its account and integration**, so a DB writer cannot copy one account's
  encrypted password onto another account (decryption fails instead).
- **A key id inside the envelope** lets several keys be valid at once (current + previous), which is
  what makes rotation possible without downtime. The id is derived from the key itself (first 8 hex
  characters of its SHA-256), so there are no ids to configure or get wrong.

Envelope v1 (bytes)::

    0x01 (version) | key id (4 bytes) | nonce (12 bytes) | ciphertext | GCM tag (16 bytes)

Error messages name the variable, account and key id involved, never a key, a nonce or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

KEY_ENV = "CREDENTIAL_ENCRYPTION_KEY"
PREVIOUS_KEYS_ENV = "CREDENTIAL_ENCRYPTION_PREVIOUS_KEYS"
LEGACY_NONCE_ENV = "CREDENTIAL_ENCRYPTION_NONCE"

ENVELOPE_VERSION = 1
_VERSION_BYTE = bytes([ENVELOPE_VERSION])
KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES
_AAD_PREFIX = b"iiko-pipeline:cred:v1:"

KEY_SHAPE = "32 bytes as base64 (44 chars) or hex (64 chars)"
NONCE_SHAPE = "12 bytes as base64 (16 chars), hex (24 chars) or a 12-character string"
ROTATE_HINT = "run `iiko-pipeline keys rotate`"


class CredentialKeyError(ValueError):
    """The key configuration is missing or malformed (names the variable and the expected shape)."""


class CredentialDecryptError(Exception):
    """A stored credential cannot be decrypted: tampered, unknown key id, or bound to another account."""


class LegacyCredentialWarning(UserWarning):
    """A credential still uses the brief's fixed-nonce format and should be rotated."""


EnvelopeKind = Literal["v1", "legacy"]


@dataclass(frozen=True)
class Opened:
    """The result of decrypting an envelope, with what rotation needs to know about it."""

    plaintext: bytes
    kind: EnvelopeKind
    key_id: str  # the key that decrypted it (for legacy rows: the key that worked with the fixed nonce)

    def __repr__(self) -> str:  # never show the plaintext
        return f"Opened(kind={self.kind!r}, key_id={self.key_id!r}, plaintext=<{len(self.plaintext)} bytes>)"


def key_id_for(key: bytes) -> str:
    """The key id: first 8 hex characters of SHA-256(key). Public, so it is safe to log and store."""
    return hashlib.sha256(key).hexdigest()[: KEY_ID_BYTES * 2]


def generate_key() -> str:
    """A new random key in the format ``CREDENTIAL_ENCRYPTION_KEY`` expects (standard base64)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def account_uuid(account_id: uuid.UUID | str) -> uuid.UUID:
    """The account id as a UUID (ValueError naming the value when it is not one)."""
    return uuid.UUID(canonical_account_id(account_id))


def canonical_account_id(account_id: uuid.UUID | str) -> str:
    """Lower-case hyphenated UUID text: the form bound into the AAD."""
    try:
        return str(account_id if isinstance(account_id, uuid.UUID) else uuid.UUID(str(account_id)))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"account_id must be a UUID, got {account_id!r}") from exc


def _check_integration_type(integration_type: str) -> str:
    if (
        not isinstance(integration_type, str)
        or not integration_type
        or integration_type != integration_type.strip().lower()
        or ":" in integration_type
    ):
        raise ValueError(f"integration_type must be a non-empty lower-case name, got {integration_type!r}")
    return integration_type


def associated_data(account_id: uuid.UUID | str, integration_type: str) -> bytes:
    """The AAD binding an envelope to one account and one integration."""
    return (
        _AAD_PREFIX
        + _check_integration_type(integration_type).encode("utf-8")
        + b":"
        + canonical_account_id(account_id).encode("ascii")
    )


def _b64decode(text: str) -> bytes | None:
    """Decode standard or URL-safe base64 (padding optional); None if it is neither."""
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def parse_key(value: str, variable: str = KEY_ENV) -> bytes:
    """Parse one 32-byte key given as 64 hex characters or base64 (standard or URL-safe).

    The error names ``variable`` and the expected shape, never the value: a half-pasted key is still
    secret material.
    """
    text = (value or "").strip()
    if not text:
        raise CredentialKeyError(f"{variable} is not set: it must be {KEY_SHAPE}")
    if len(text) == KEY_BYTES * 2 and _is_hex(text):
        return bytes.fromhex(text)
    decoded = _b64decode(text)
    if decoded is not None and len(decoded) == KEY_BYTES:
        return decoded
    raise CredentialKeyError(
        f"{variable} is malformed: it must be {KEY_SHAPE}"
        " (generate one with `python -c \"import base64, os; print(base64.b64encode(os.urandom(32)).decode())\"`;"
        " an old 32-character text key must be given as the hex of its bytes)"
    )


def parse_nonce(value: str, variable: str = LEGACY_NONCE_ENV) -> bytes:
    """Parse the legacy fixed nonce: 24 hex characters, base64 of 12 bytes, or a 12-character string.

    The literal form exists because the product brief's example (``your-12-byte-nonce``) suggests that
    deployments put a plain string there.
    """
    text = (value or "").strip()
    if not text:
        raise CredentialKeyError(f"{variable} is empty: it must be {NONCE_SHAPE}")
    if len(text) == NONCE_BYTES * 2 and _is_hex(text):
        return bytes.fromhex(text)
    if len(text) == 16:
        decoded = _b64decode(text)
        if decoded is not None and len(decoded) == NONCE_BYTES:
            return decoded
    raw = text.encode("utf-8")
    if len(raw) == NONCE_BYTES:
        return raw
    raise CredentialKeyError(f"{variable} is malformed: it must be {NONCE_SHAPE}")


class KeyRing:
    """The current key (encrypts), previous keys (decrypt only) and an optional legacy fixed nonce.

    Build it with :meth:`from_env` in production and :meth:`from_keys` in tests. ``repr`` shows key ids
    only.
    """

    __slots__ = ("_current_id", "_keys", "_legacy_nonce")

    def __init__(
        self, current: bytes, previous: Iterable[bytes] = (), legacy_nonce: bytes | None = None
    ) -> None:
        keys: dict[str, bytes] = {}
        for position, key in enumerate((current, *previous)):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                variable = KEY_ENV if position == 0 else f"{PREVIOUS_KEYS_ENV} (entry {position})"
                raise CredentialKeyError(f"{variable} must be {KEY_SHAPE}")
            kid = key_id_for(key)
            if kid in keys and keys[kid] != key:  # 1 in 2^32: refuse rather than guess
                raise CredentialKeyError(f"two configured keys share the key id {kid}; replace one of them")
            keys.setdefault(kid, key)
        if legacy_nonce is not None and len(legacy_nonce) != NONCE_BYTES:
            raise CredentialKeyError(f"{LEGACY_NONCE_ENV} must be {NONCE_SHAPE}")
        self._keys = keys
        self._current_id = key_id_for(current)
        self._legacy_nonce = legacy_nonce

    @classmethod
    def from_keys(
        cls, current: bytes, previous: Iterable[bytes] = (), legacy_nonce: bytes | None = None
    ) -> KeyRing:
        """A keyring from raw key bytes."""
        return cls(current, previous, legacy_nonce)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing:
        """Read ``CREDENTIAL_ENCRYPTION_KEY``, ``..._PREVIOUS_KEYS`` (comma-separated) and ``..._NONCE``."""
        env = os.environ if environ is None else environ
        current = parse_key(env.get(KEY_ENV, ""), KEY_ENV)
        previous = [
            parse_key(item, f"{PREVIOUS_KEYS_ENV} (entry {n})")
            for n, item in enumerate(
                (part.strip() for part in env.get(PREVIOUS_KEYS_ENV, "").split(",") if part.strip()), start=1
            )
        ]
        nonce_text = env.get(LEGACY_NONCE_ENV, "").strip()
        legacy_nonce = parse_nonce(nonce_text, LEGACY_NONCE_ENV) if nonce_text else None
        return cls(current, previous, legacy_nonce)

    @classmethod
    def with_key(cls, key: str) -> KeyRing:
        """The key ring of a configured current key (a resource's `EnvVar`), with the previous keys and the
        legacy nonce from the environment, as `from_env` reads them."""
        return cls.from_env({**os.environ, KEY_ENV: key})

    @property
    def current_key_id(self) -> str:
        """The id of the key new envelopes are sealed with."""
        return self._current_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """All ids this keyring can decrypt, current first."""
        return (self._current_id, *(k for k in self._keys if k != self._current_id))

    @property
    def has_legacy_nonce(self) -> bool:
        """True when legacy fixed-nonce rows can be decrypted (for rotation)."""
        return self._legacy_nonce is not None

    def __repr__(self) -> str:
        return (
            f"KeyRing(current={self._current_id!r}, previous={list(self.key_ids[1:])!r}, "
            f"legacy_nonce={'set' if self._legacy_nonce else 'unset'})"
        )

    # -- sealing ---------------------------------------------------------------------------------------

    def seal(self, account_id: uuid.UUID | str, integration_type: str, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` under the current key with a fresh random nonce; return a v1 envelope."""
        if not isinstance(plaintext, bytes):
            raise TypeError("plaintext must be bytes")
        aad = associated_data(account_id, integration_type)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keys[self._current_id]).encrypt(nonce, plaintext, aad)
        return _VERSION_BYTE + bytes.fromhex(self._current_id) + nonce + sealed

    # -- opening ---------------------------------------------------------------------------------------

    @staticmethod
    def envelope_key_id(envelope: bytes) -> str | None:
        """The key id written in a v1 envelope, or None if it does not look like one (legacy)."""
        envelope = bytes(envelope)
        if len(envelope) >= _HEADER_BYTES + TAG_BYTES and envelope[:1] == _VERSION_BYTE:
            return envelope[1 : 1 + KEY_ID_BYTES].hex()
        return None

    def open(self, account_id: uuid.UUID | str, integration_type: str, envelope: bytes) -> bytes:
        """Decrypt an envelope; legacy fixed-nonce ciphertexts decrypt with a warning to rotate."""
        opened = self.open_detailed(account_id, integration_type, envelope)
        if opened.kind == "legacy":
            message = (
                f"credentials of account {canonical_account_id(account_id)} ({integration_type}) use the "
                f"legacy fixed-nonce format; {ROTATE_HINT} to re-encrypt them, then remove {LEGACY_NONCE_ENV}"
            )
            logger.warning(message)
            warnings.warn(message, LegacyCredentialWarning, stacklevel=2)
        return opened.plaintext

    def open_detailed(
        self, account_id: uuid.UUID | str, integration_type: str, envelope: bytes
    ) -> Opened:
        """Decrypt and report how (v1 or legacy, which key). Does not warn: rotation uses this."""
        account = canonical_account_id(account_id)
        aad = associated_data(account, integration_type)
        envelope = bytes(envelope)
        kid = self.envelope_key_id(envelope)
        if kid is not None and kid in self._keys:
            nonce = envelope[1 + KEY_ID_BYTES : _HEADER_BYTES]
            try:
                plaintext = AESGCM(self._keys[kid]).decrypt(nonce, envelope[_HEADER_BYTES:], aad)
            except InvalidTag:
                raise CredentialDecryptError(
                    f"credentials of account {account} ({integration_type}) failed authentication under key "
                    f"{kid}: the ciphertext was altered or belongs to another account or integration"
                ) from None
            return Opened(plaintext, "v1", kid)
        # Not a v1 envelope under a known key: either a legacy row or garbage/tampering.
        if self._legacy_nonce is not None:
            opened = self._open_legacy(envelope)
            if opened is not None:
                return opened
        if kid is not None:
            raise CredentialDecryptError(
                f"credentials of account {account} ({integration_type}) were sealed with key {kid}, which is "
                f"not configured (known: {', '.join(self.key_ids)}); add it to {PREVIOUS_KEYS_ENV}"
            )
        if self._legacy_nonce is None:
            raise CredentialDecryptError(
                f"credentials of account {account} ({integration_type}) are not a v{ENVELOPE_VERSION} "
                f"envelope; if they are legacy fixed-nonce rows, set {LEGACY_NONCE_ENV} and {ROTATE_HINT}"
            )
        raise CredentialDecryptError(
            f"credentials of account {account} ({integration_type}) are neither a v{ENVELOPE_VERSION} "
            f"envelope nor a legacy ciphertext under any configured key ({', '.join(self.key_ids)})"
        )

    def _open_legacy(self, blob: bytes) -> Opened | None:
        """Try the brief's format: AES-GCM, fixed nonce, no AAD; raw ``ct||tag`` or base64 of it."""
        assert self._legacy_nonce is not None
        candidates = [blob]
        try:
            decoded = _b64decode(blob.decode("ascii").strip())
        except UnicodeDecodeError:
            decoded = None
        if decoded is not None:
            candidates.insert(0, decoded)
        for candidate in candidates:
            if len(candidate) < TAG_BYTES:
                continue
            for kid in self.key_ids:
                try:
                    plaintext = AESGCM(self._keys[kid]).decrypt(self._legacy_nonce, candidate, None)
                except InvalidTag:
                    continue
                return Opened(plaintext, "legacy", kid)
        return None

"""AES-256-GCM envelopes: round trip, tamper detection, account binding, key parsing, legacy reading."""

from __future__ import annotations

import base64
import hashlib
import uuid
import warnings

import pytest
from warehouse_testlib import KEY_A, KEY_B, LEGACY_NONCE, legacy_encrypt_for_tests

from iiko_pipeline.warehouse import crypto
from iiko_pipeline.warehouse.crypto import (
    KEY_ENV,
    LEGACY_NONCE_ENV,
    PREVIOUS_KEYS_ENV,
    CredentialDecryptError,
    CredentialKeyError,
    KeyRing,
    LegacyCredentialWarning,
    key_id_for,
)

ACCOUNT = uuid.UUID("6f1c2b1e-0000-4000-8000-0000000000a1")
OTHER_ACCOUNT = uuid.UUID("6f1c2b1e-0000-4000-8000-0000000000b2")
SECRET = '{"username": "etl_user", "password": "пароль#Test1"}'.encode()


def test_round_trip_and_envelope_layout() -> None:
    ring = KeyRing.from_keys(KEY_A)
    env = ring.seal(ACCOUNT, "iiko", SECRET)
    assert env[0] == 1
    assert env[1:5].hex() == hashlib.sha256(KEY_A).hexdigest()[:8] == ring.current_key_id
    assert len(env) == 1 + 4 + 12 + len(SECRET) + 16
    assert SECRET not in env
    assert ring.open(ACCOUNT, "iiko", env) == SECRET
    assert ring.open(str(ACCOUNT).upper(), "iiko", env) == SECRET  # account id is canonicalised


def test_two_encryptions_of_the_same_secret_differ() -> None:
    ring = KeyRing.from_keys(KEY_A)
    first, second = ring.seal(ACCOUNT, "iiko", SECRET), ring.seal(ACCOUNT, "iiko", SECRET)
    assert first != second
    assert first[5:17] != second[5:17]  # different nonces
    assert ring.open(ACCOUNT, "iiko", first) == ring.open(ACCOUNT, "iiko", second) == SECRET


def test_nonce_comes_from_os_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto.os, "urandom", lambda n: b"\x42" * n)
    env = KeyRing.from_keys(KEY_A).seal(ACCOUNT, "iiko", SECRET)
    assert env[5:17] == b"\x42" * 12


def test_fixed_nonce_is_never_used_to_encrypt() -> None:
    ring = KeyRing.from_keys(KEY_A, legacy_nonce=LEGACY_NONCE)
    for _ in range(50):
        env = ring.seal(ACCOUNT, "iiko", SECRET)
        assert env[5:17] != LEGACY_NONCE
        assert legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, SECRET) not in env


@pytest.mark.parametrize("position", ["version", "key_id", "nonce", "ciphertext", "tag"])
def test_tampering_fails_loudly(position: str) -> None:
    ring = KeyRing.from_keys(KEY_A)
    env = bytearray(ring.seal(ACCOUNT, "iiko", SECRET))
    index = {"version": 0, "key_id": 2, "nonce": 7, "ciphertext": 20, "tag": len(env) - 1}[position]
    env[index] ^= 0x01
    with pytest.raises(CredentialDecryptError) as info:
        ring.open(ACCOUNT, "iiko", bytes(env))
    assert str(ACCOUNT) in str(info.value)
    assert "пароль" not in str(info.value)


def test_every_single_bit_flip_is_detected() -> None:
    ring = KeyRing.from_keys(KEY_A)
    env = ring.seal(ACCOUNT, "iiko", SECRET)
    for i in range(len(env)):
        tampered = bytearray(env)
        tampered[i] ^= 0x80
        with pytest.raises(CredentialDecryptError):
            ring.open(ACCOUNT, "iiko", bytes(tampered))


def test_truncated_and_empty_envelopes_fail() -> None:
    ring = KeyRing.from_keys(KEY_A)
    env = ring.seal(ACCOUNT, "iiko", SECRET)
    for broken in (b"", env[:1], env[:17], env[:-1]):
        with pytest.raises(CredentialDecryptError):
            ring.open(ACCOUNT, "iiko", broken)


def test_binding_to_account_and_integration() -> None:
    ring = KeyRing.from_keys(KEY_A)
    env = ring.seal(ACCOUNT, "iiko", SECRET)
    with pytest.raises(CredentialDecryptError) as info:
        ring.open(OTHER_ACCOUNT, "iiko", env)
    message = str(info.value)
    assert str(OTHER_ACCOUNT) in message and ring.current_key_id in message
    with pytest.raises(CredentialDecryptError):
        ring.open(ACCOUNT, "r_keeper", env)


def test_invalid_account_or_integration_is_rejected_before_crypto() -> None:
    ring = KeyRing.from_keys(KEY_A)
    with pytest.raises(ValueError, match="account_id"):
        ring.seal("not-a-uuid", "iiko", SECRET)
    for bad in ("", "IIKO", "ii:ko", " iiko"):
        with pytest.raises(ValueError, match="integration_type"):
            ring.seal(ACCOUNT, bad, SECRET)


def test_previous_keys_decrypt_and_unknown_key_id_is_named() -> None:
    old = KeyRing.from_keys(KEY_A)
    env = old.seal(ACCOUNT, "iiko", SECRET)
    rotated = KeyRing.from_keys(KEY_B, previous=[KEY_A])
    assert rotated.current_key_id == key_id_for(KEY_B)
    assert rotated.key_ids == (key_id_for(KEY_B), key_id_for(KEY_A))
    assert rotated.open(ACCOUNT, "iiko", env) == SECRET
    new_only = KeyRing.from_keys(KEY_B)
    with pytest.raises(CredentialDecryptError) as info:
        new_only.open(ACCOUNT, "iiko", env)
    assert key_id_for(KEY_A) in str(info.value) and PREVIOUS_KEYS_ENV in str(info.value)


# -- legacy (brief-style fixed nonce) ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["raw", "base64"])
def test_legacy_ciphertext_decrypts_with_a_rotate_warning(encoding: str) -> None:
    blob = legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, SECRET)
    if encoding == "base64":
        blob = base64.b64encode(blob)
    ring = KeyRing.from_keys(KEY_A, legacy_nonce=LEGACY_NONCE)
    with pytest.warns(LegacyCredentialWarning, match="iiko-pipeline keys rotate"):
        assert ring.open(ACCOUNT, "iiko", blob) == SECRET
    detailed = ring.open_detailed(ACCOUNT, "iiko", blob)
    assert (detailed.kind, detailed.key_id) == ("legacy", key_id_for(KEY_A))
    assert "пароль" not in repr(detailed)


def test_legacy_ciphertext_under_a_previous_key() -> None:
    blob = legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, SECRET)
    ring = KeyRing.from_keys(KEY_B, previous=[KEY_A], legacy_nonce=LEGACY_NONCE)
    with pytest.warns(LegacyCredentialWarning):
        assert ring.open(ACCOUNT, "iiko", blob) == SECRET


def test_legacy_ciphertext_without_the_nonce_setting_fails_and_says_what_to_set() -> None:
    blob = legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, SECRET)
    with pytest.raises(CredentialDecryptError, match=LEGACY_NONCE_ENV):
        KeyRing.from_keys(KEY_A).open(ACCOUNT, "iiko", blob)


def test_tampered_legacy_ciphertext_fails() -> None:
    blob = bytearray(legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, SECRET))
    blob[3] ^= 0x01
    ring = KeyRing.from_keys(KEY_A, legacy_nonce=LEGACY_NONCE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "legacy" warning for something that did not decrypt
        with pytest.raises(CredentialDecryptError):
            ring.open(ACCOUNT, "iiko", bytes(blob))


def test_v1_envelope_does_not_open_through_the_legacy_path_for_another_account() -> None:
    ring = KeyRing.from_keys(KEY_A, legacy_nonce=LEGACY_NONCE)
    env = ring.seal(ACCOUNT, "iiko", SECRET)
    with pytest.raises(CredentialDecryptError):
        ring.open(OTHER_ACCOUNT, "iiko", env)


# -- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: base64.b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode().rstrip("="),
        lambda k: k.hex(),
        lambda k: k.hex().upper(),
        lambda k: f"  {base64.b64encode(k).decode()}\n",
    ],
    ids=["base64", "urlsafe", "unpadded", "hex", "HEX", "whitespace"],
)
def test_key_formats_from_env(encode) -> None:
    key = bytes([0xFB, 0xFF, 0xFE, *range(29)])  # bytes that differ between std and urlsafe base64
    ring = KeyRing.from_env({KEY_ENV: encode(key)})
    assert ring.current_key_id == key_id_for(key)


def test_previous_keys_and_nonce_from_env() -> None:
    env = {
        KEY_ENV: KEY_B.hex(),
        PREVIOUS_KEYS_ENV: f" {base64.b64encode(KEY_A).decode()} , {KEY_B.hex()},",
        LEGACY_NONCE_ENV: "nonce-12byte",
    }
    ring = KeyRing.from_env(env)
    assert ring.key_ids == (key_id_for(KEY_B), key_id_for(KEY_A))
    assert ring.has_legacy_nonce
    blob = legacy_encrypt_for_tests(KEY_A, LEGACY_NONCE, SECRET)
    with pytest.warns(LegacyCredentialWarning):
        assert ring.open(ACCOUNT, "iiko", blob) == SECRET


@pytest.mark.parametrize(
    "text", [LEGACY_NONCE.hex(), base64.b64encode(LEGACY_NONCE).decode(), LEGACY_NONCE.decode()]
)
def test_nonce_formats(text: str) -> None:
    assert crypto.parse_nonce(text) == LEGACY_NONCE


def test_missing_key_names_the_variable_and_shape() -> None:
    for env in ({}, {KEY_ENV: ""}, {KEY_ENV: "   "}):
        with pytest.raises(CredentialKeyError) as info:
            KeyRing.from_env(env)
        assert KEY_ENV in str(info.value)
        assert "32 bytes as base64 (44 chars) or hex (64 chars)" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        "your-32-byte-encryption-key",  # the brief's placeholder
        "supersecretvalue-that-is-32chars",  # a 32-character literal
        base64.b64encode(b"k" * 16).decode(),  # an AES-128 key
        "ab" * 31 + "zz",  # 64 chars, not hex
        "a" * 63,
    ],
)
def test_malformed_key_error_names_variable_not_value(bad: str) -> None:
    with pytest.raises(CredentialKeyError) as info:
        KeyRing.from_env({KEY_ENV: bad})
    message = str(info.value)
    assert KEY_ENV in message and "32 bytes as base64 (44 chars) or hex (64 chars)" in message
    assert bad not in message


def test_malformed_previous_key_names_its_variable() -> None:
    secret_ish = "previous-key-that-is-wrong"
    with pytest.raises(CredentialKeyError) as info:
        KeyRing.from_env({KEY_ENV: KEY_A.hex(), PREVIOUS_KEYS_ENV: f"{KEY_B.hex()},{secret_ish}"})
    assert PREVIOUS_KEYS_ENV in str(info.value) and "entry 2" in str(info.value)
    assert secret_ish not in str(info.value)


def test_malformed_nonce_names_its_variable() -> None:
    with pytest.raises(CredentialKeyError) as info:
        KeyRing.from_env({KEY_ENV: KEY_A.hex(), LEGACY_NONCE_ENV: "too-short"})
    assert LEGACY_NONCE_ENV in str(info.value) and "too-short" not in str(info.value)


def test_keyring_repr_shows_ids_only() -> None:
    ring = KeyRing.from_keys(KEY_B, previous=[KEY_A], legacy_nonce=LEGACY_NONCE)
    text = repr(ring)
    assert key_id_for(KEY_B) in text and key_id_for(KEY_A) in text
    for secret in (KEY_A.hex(), KEY_B.hex(), base64.b64encode(KEY_A).decode(), LEGACY_NONCE.decode()):
        assert secret not in text


def test_generated_keys_are_accepted() -> None:
    key = crypto.generate_key()
    assert len(key) == 44
    assert KeyRing.from_env({KEY_ENV: key}).current_key_id == key_id_for(base64.b64decode(key))

"""Helpers for warehouse tests that must not exist in library code."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Fixed, obviously-test key material (never used outside these tests).
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
KEY_C = bytes(range(200, 232))
LEGACY_NONCE = b"nonce-12byte"  # a 12-character literal, as the product brief's example suggests


def legacy_encrypt_for_tests(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """Encrypt the way the product brief's legacy code did: AES-GCM, one fixed nonce, no AAD.

    Insecure by design (nonce reuse); it only produces fixtures for the legacy-reading and rotation code.
    Returns raw ``ciphertext || tag``.
    """
    return AESGCM(key).encrypt(nonce, plaintext, None)

"""Encryption at rest: AES-256-GCM with a key ring (the first key encrypts, all decrypt).

Associated data binds a ciphertext to its row (e.g. tenant id + row id), so a blob copied
into another tenant's row fails to decrypt instead of leaking.

Blob layout: b"\x01" | key id (4 bytes, SHA-256 prefix of the key) | nonce (12) | ciphertext+tag.
"""
import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

_VERSION = b"\x01"


class DecryptionError(Exception):
    pass


def _key_id(key):
    return hashlib.sha256(key).digest()[:4]


@lru_cache(maxsize=1)
def _ring(keys_tuple):
    return [(_key_id(k), AESGCM(k)) for k in keys_tuple]


def _keys():
    return _ring(tuple(settings.DISPATCH_ENCRYPTION_KEYS))


def _aad(associated):
    if associated is None:
        return b""
    return associated if isinstance(associated, bytes) else str(associated).encode()


def encrypt(plaintext, associated=None):
    if isinstance(plaintext, str):
        plaintext = plaintext.encode()
    key_id, aead = _keys()[0]
    nonce = os.urandom(12)
    return _VERSION + key_id + nonce + aead.encrypt(nonce, plaintext, _aad(associated))


def decrypt(blob, associated=None):
    blob = bytes(blob)
    if len(blob) < 1 + 4 + 12 + 16 or blob[:1] != _VERSION:
        raise DecryptionError("not a Dispatch ciphertext")
    key_id, nonce, body = blob[1:5], blob[5:17], blob[17:]
    for candidate_id, aead in _keys():
        if candidate_id == key_id:
            try:
                return aead.decrypt(nonce, body, _aad(associated))
            except InvalidTag:
                raise DecryptionError("ciphertext does not match its key or associated data") from None
    raise DecryptionError("no key in DISPATCH_ENCRYPTION_KEYS matches this ciphertext")


def encrypt_text(text, associated=None):
    return encrypt(text.encode("utf-8"), associated)


def decrypt_text(blob, associated=None):
    return decrypt(blob, associated).decode("utf-8")

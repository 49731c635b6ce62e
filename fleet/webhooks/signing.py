"""Signing the Standard Webhooks way, with a secret fleet reads when it sends, never stores.

A subscription names where its secret is: `env:NAME` (an environment variable of the service) or
`file:PATH` (a file, first line). The value follows the Standard Webhooks convention: `whsec_`
then the base64 of 24 to 64 random bytes. Each request carries `webhook-id` (the event id),
`webhook-timestamp` (Unix seconds) and `webhook-signature`: `v1,` and the base64 of
HMAC-SHA256(key, "{id}.{timestamp}.{body}"), so receivers can use any Standard Webhooks verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

PREFIX = "whsec_"
MIN_KEY, MAX_KEY = 24, 64
REF_HELP = (
    "give where the secret is, never the secret: env:NAME (an environment variable of the "
    "service) or file:PATH; its value is whsec_ followed by base64 of 24-64 random bytes"
)


class SecretError(ValueError):
    """A secret reference that is malformed, or whose secret cannot be read or is not valid."""


def check_ref(ref: str) -> str:
    """The reference, if it has the form `env:NAME` or `file:PATH` (else SecretError)."""
    kind, sep, rest = ref.partition(":")
    if not sep or kind not in ("env", "file") or not rest.strip():
        if ref.startswith(PREFIX):
            raise SecretError(f"a literal secret is never stored; {REF_HELP}")
        raise SecretError(f"not a secret reference; {REF_HELP}")
    if kind == "env" and not rest.replace("_", "").isalnum():
        raise SecretError("env:NAME: NAME is an environment variable's name (letters, digits, _)")
    return ref


def resolve(ref: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key the reference points at, read now (SecretError says what is wrong, never
    the value)."""
    kind, _, rest = check_ref(ref).partition(":")
    if kind == "env":
        value = (os.environ if environ is None else environ).get(rest)
        if value is None:
            raise SecretError(f"environment variable {rest} is not set")
    else:
        try:
            value = Path(rest).read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError):
            raise SecretError(f"cannot read a secret from the file {rest}") from None
    return key_of(value.strip())


def key_of(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise SecretError(f"the secret does not start with {PREFIX}")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(f"the secret after {PREFIX} is not base64") from None
    if not MIN_KEY <= len(key) <= MAX_KEY:
        raise SecretError(f"the secret's key is {len(key)} bytes; {MIN_KEY}-{MAX_KEY} expected")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/cloudevents+json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
    }

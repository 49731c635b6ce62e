"""Huawei AK/SK request signatures (SDK-HMAC-SHA256), checked the way the API gateway checks them.

The seeds only name the `Authorization` and `X-Sdk-Date` headers and refer to the "API Request
Signing Guide" for the algorithm; the rules below are that guide's, as the project's library notes
record them. The simulator recomputes the signature from what arrived on the wire (method, path,
query, the headers the client says it signed, body), so a client that signs anything other than
what it sends is refused exactly as the real gateway would refuse it.

A signature is refused (401) when the AK is unknown, the signature differs, `X-Sdk-Date` is
missing, malformed or more than 15 minutes away from the real clock (the gateway's documented
window; the simulator's own clock may run faster, so it is deliberately not used here), or when
`host` / `x-sdk-date` are not among the signed headers (otherwise the date proves nothing).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=15)
_CONTENT_HASH_HEADER = "x-sdk-content-sha256"


@dataclass(frozen=True)
class Parsed:
    """The parts of an `Authorization: SDK-HMAC-SHA256 Access=..., ...` header."""

    access: str
    signed_headers: tuple[str, ...]
    signature: str


class SignatureError(Exception):
    """Why a signed request is refused; the message goes into the 401 body."""


def parse_authorization(value: str) -> Parsed:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise SignatureError(f"unsupported signing algorithm {scheme!r}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            fields[name.strip()] = val.strip()
    try:
        signed = tuple(fields["SignedHeaders"].split(";"))
        return Parsed(fields["Access"], signed, fields["Signature"])
    except KeyError as exc:
        raise SignatureError(f"authorization header lacks {exc.args[0]}") from None


def canonical_uri(raw_path: str) -> str:
    """Each decoded path segment re-encoded (`~` kept), always ending in `/`."""
    path = unquote(raw_path.split("?", 1)[0])
    encoded = "/".join(quote(segment, safe="~") for segment in path.split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(query_string: str) -> str:
    pairs = sorted(parse_qsl(query_string, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def canonical_request(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: dict[str, str],
    signed_headers: tuple[str, ...],
    body: bytes,
) -> str:
    """The string whose hash is signed; `headers` must be keyed by lower-case name."""
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    payload_hash = headers.get(_CONTENT_HASH_HEADER) or hashlib.sha256(body).hexdigest()
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(query_string),
            lines,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def signature(secret_key: str, sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(
        secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), "sha256"
    ).hexdigest()


def check_date(sdk_date: str | None, now: datetime) -> None:
    if not sdk_date:
        raise SignatureError("x-sdk-date is missing")
    try:
        when = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("x-sdk-date is malformed") from None
    if abs(now - when) > MAX_SKEW:
        raise SignatureError("x-sdk-date is expired")


def verify(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: dict[str, str],
    body: bytes,
    keys: dict[str, str],
    now: datetime | None = None,
) -> str:
    """Check a signed request against `keys` (AK -> SK); return the AK, or raise SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    parsed = parse_authorization(lower.get("authorization", ""))
    secret = keys.get(parsed.access)
    if secret is None:
        raise SignatureError(f"Get secretKey failed, ak:{parsed.access}, err:ak not exist")
    check_date(lower.get("x-sdk-date"), now or datetime.now(UTC))
    for required in ("host", "x-sdk-date"):
        if required not in parsed.signed_headers:
            raise SignatureError(f"{required} must be a signed header")
    missing = [h for h in parsed.signed_headers if h not in lower]
    if missing:
        raise SignatureError(f"signed headers missing from the request: {missing}")
    canonical = canonical_request(
        method=method,
        raw_path=raw_path,
        query_string=query_string,
        headers=lower,
        signed_headers=parsed.signed_headers,
        body=body,
    )
    expected = signature(secret, lower["x-sdk-date"], canonical)
    if not hmac.compare_digest(expected, parsed.signature):
        raise SignatureError("verify aksk signature fail")
    return parsed.access

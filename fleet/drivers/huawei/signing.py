"""Huawei AK/SK request signing (SDK-HMAC-SHA256), written with the standard library.

The rules are those of the official SDK's `huaweicloudsdkcore.signer.signer.Signer`, and the unit
tests compare the `Authorization` value byte for byte with it on a table of cases:

- canonical request = METHOD, the URI (unquoted, then each segment quoted with `safe="~"`, always
  ending in `/`), the query pairs sorted and quoted, `name:value` for each signed header, the signed
  header names joined by `;`, and the hex SHA-256 of the body;
- every header is signed (lower-cased names, stripped values) except names containing `_`;
- string to sign = `SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex sha256(canonical request)}`;
- `Authorization: SDK-HMAC-SHA256 Access={AK}, SignedHeaders={names}, Signature={hex hmac}`.

The query string that is sent must be the canonical one, so `canonical_query` is also what the
driver puts on the wire (with `yarl.URL(..., encoded=True)` so aiohttp does not re-encode it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from fleet.drivers.query import QueryValue, canonical_query

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _enc(value: str) -> str:
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """`/v1/p/servers` -> `/v1/p/servers/`; each segment unquoted then quoted with `safe="~"`."""
    encoded = "/".join(_enc(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    return sorted(name.lower() for name in headers if "_" not in name)


def sdk_date(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(DATE_FORMAT)


__all__ = ["QueryValue", "authorization", "canonical_query", "canonical_uri", "sdk_date"]


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes | None,
) -> tuple[str, list[str]]:
    """The canonical request text and the signed header names."""
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    names = signed_header_names(headers)
    header_block = "".join(f"{name}:{lowered[name]}\n" for name in names)
    payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    text = "\n".join(
        [method.upper(), canonical_uri(path), query, header_block, ";".join(names), payload_hash]
    )
    return text, names


def authorization(
    *,
    ak: str,
    sk: str,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes | None,
) -> str:
    """The `Authorization` header value. `headers` must already hold `X-Sdk-Date` and `Host`."""
    date = next((v for k, v in headers.items() if k.lower() == DATE_HEADER.lower()), None)
    if date is None:
        raise ValueError("headers must contain X-Sdk-Date before signing")
    text, names = canonical_request(method, path, query, headers, body)
    to_sign = f"{ALGORITHM}\n{date.strip()}\n{hashlib.sha256(text.encode('utf-8')).hexdigest()}"
    signature = hmac.new(sk.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, Signature={signature}"

"""API bearer tokens: created once, shown once, stored only as salted hashes.

A token reads ``fleet_<id>_<secret>``: the public `id` finds its row (no scan over every hash) and
the 256-bit `secret` is what proves possession. Rows keep ``sha256$<salt>$<digest>`` of the
secret, compared with `hmac.compare_digest` (constant time). A fast hash is enough here because
the secret is random and long; slow password hashes exist for secrets people choose.

The table lives in the same database as the engine (migration ``0002_api_tokens``) and is reached
through the engine's `jobs.store.db.Database`, so SQLite writes take the same ``BEGIN IMMEDIATE`` path.
The API checks tokens (`fleet.api.context`) and `fleet tokens` manages them; the SQL stays here,
as no SQL is written inside `fleet.api`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

from jobs.store.db import Database

METADATA = sa.MetaData()

API_TOKENS = sa.Table(
    "api_tokens",
    METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("hash", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked", sa.Boolean(), nullable=False),
    sa.UniqueConstraint("name", name="uq_api_tokens_name"),
    sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="ck_api_tokens_role"),
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_PREFIX = "fleet"


class Role(StrEnum):
    """What a token may do; each role includes the ones before it."""

    VIEWER = "viewer"  # read everything
    OPERATOR = "operator"  # create and control operations
    ADMIN = "admin"  # tokens, policies and everything else

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class TokenError(ValueError):
    """A token request that cannot be honoured (bad name, name taken); names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token (never its secret or hash)."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class Identity:
    """Who is calling: the token's name is what operations record as their creator."""

    name: str
    role: Role


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def hash_secret(secret: str) -> str:
    salt = secrets.token_hex(16)
    return f"sha256${salt}${_digest(salt, secret)}"


def secret_matches(stored: str, secret: str) -> bool:
    scheme, _, rest = stored.partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != "sha256" or not salt or not digest:
        return False
    return hmac.compare_digest(digest, _digest(salt, secret))


def split_token(token: str) -> tuple[str, str] | None:
    """``fleet_<id>_<secret>`` -> (id, secret), or None when it is not shaped like ours."""
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


_DUMMY_HASH = hash_secret("never-a-real-secret")


def _info(row: sa.RowMapping) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        revoked=bool(row["revoked"]),
    )


class TokenStore:
    """Create, verify, list and revoke tokens (SQLAlchemy Core on the engine's database)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def check_name(name: str) -> None:
        if not _NAME.fullmatch(name):
            raise TokenError("name", f"must match {NAME_PATTERN}")

    async def create(self, name: str, role: Role, now: datetime) -> tuple[TokenInfo, str]:
        """A new token; the returned text is the only time the secret exists outside the caller."""
        self.check_name(name)
        token_id, secret = secrets.token_hex(8), secrets.token_hex(32)
        row = {
            "id": token_id,
            "name": name,
            "role": role.value,
            "hash": hash_secret(secret),
            "created_at": now,
            "revoked": False,
        }
        async with self.db.write() as conn:
            taken = await conn.execute(sa.select(API_TOKENS.c.id).where(API_TOKENS.c.name == name))
            if taken.first() is not None:
                raise TokenError("name", f"a token named {name!r} exists already")
            await conn.execute(API_TOKENS.insert().values(**row))
        info = TokenInfo(token_id, name, role, now, False)
        return info, f"{_PREFIX}_{token_id}_{secret}"

    async def replace(self, name: str, role: Role, now: datetime) -> tuple[TokenInfo, str]:
        """Drop the token called `name` (if any) and create it anew (bootstrap rotation)."""
        self.check_name(name)
        async with self.db.write() as conn:
            await conn.execute(API_TOKENS.delete().where(API_TOKENS.c.name == name))
        return await self.create(name, role, now)

    async def verify(self, token: str) -> Identity | None:
        """The caller behind `token`, or None (unknown, revoked or wrong secret)."""
        parts = split_token(token)
        token_id, secret = parts if parts is not None else ("", token)
        row = None
        if token_id:
            async with self.db.read() as conn:
                stmt = sa.select(API_TOKENS).where(API_TOKENS.c.id == token_id)
                row = (await conn.execute(stmt)).mappings().first()
        stored = row["hash"] if row is not None else _DUMMY_HASH
        ok = secret_matches(stored, secret)  # always hash: unknown ids cost the same
        if row is None or not ok or row["revoked"]:
            return None
        return Identity(name=row["name"], role=Role(row["role"]))

    async def all(self) -> list[TokenInfo]:
        async with self.db.read() as conn:
            stmt = sa.select(API_TOKENS).order_by(API_TOKENS.c.name)
            return [_info(r) for r in (await conn.execute(stmt)).mappings().all()]

    async def get(self, name: str) -> TokenInfo | None:
        async with self.db.read() as conn:
            stmt = sa.select(API_TOKENS).where(API_TOKENS.c.name == name)
            row = (await conn.execute(stmt)).mappings().first()
        return None if row is None else _info(row)

    async def revoke(self, name: str) -> TokenInfo | None:
        """Revoke (kept for the record); None when there is no such token."""
        async with self.db.write() as conn:
            stmt = API_TOKENS.update().where(API_TOKENS.c.name == name).values(revoked=True)
            if (await conn.execute(stmt)).rowcount == 0:
                return None
        return await self.get(name)

"""The world's servers by id, with the orders listings page through kept up to date.

A listing page must cost its own size, not the world's: `ServerTable` is a dict (id -> server,
in creation order, as before) that also keeps, per (kind, project), the servers in creation order
(the Huawei v1 lists, newest first) and, per (kinds, project), sorted by (created, id) (Nova's
order). An index is built the first time it is asked for; a new server is appended to or inserted
into the built ones (bisect), and removing or replacing a server drops them (rare: a purge), so
the next listing rebuilds them once. A server's kind, project, id and creation time never change.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Protocol, TypeVar, overload


class Listed(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def project_id(self) -> str: ...
    @property
    def created(self) -> datetime: ...


S = TypeVar("S", bound=Listed)
T = TypeVar("T")
OrderKey = tuple[datetime, str]


def order_key(server: Listed) -> OrderKey:
    """Nova's default sort key (`created`, then id); lists show it descending."""
    return (server.created, server.id)


class SortedServers(list[S]):
    """Servers ascending by `order_key`, with the keys alongside for bisection."""

    def __init__(self, servers: Iterable[S]) -> None:
        super().__init__(sorted(servers, key=order_key))
        self.keys: list[OrderKey] = [order_key(s) for s in self]

    def add(self, server: S) -> None:
        key = order_key(server)
        at = bisect.bisect_right(self.keys, key)
        self.keys.insert(at, key)
        self.insert(at, server)

    def below(self, key: OrderKey) -> int:
        """How many servers sort strictly before `key`."""
        return bisect.bisect_left(self.keys, key)


class ServerTable(dict[str, S]):
    """A dict of servers by id that maintains its listing indexes (see the module doc)."""

    def __init__(self, items: Mapping[str, S] | None = None) -> None:
        super().__init__()
        self._numbers = itertools.count()
        self._number: dict[str, int] = {}
        self._by_kind: dict[tuple[str, str], list[S]] = {}
        self._sorted: dict[tuple[tuple[str, ...], str], SortedServers[S]] = {}
        self.version = 0  # changes whenever a server is added, replaced or removed
        for key, value in (items or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: S) -> None:
        if key in self:
            self._drop_indexes()
        else:
            self._number[key] = next(self._numbers)
            self._index(value)
            self.version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._number.pop(key, None)
        self._drop_indexes()

    @overload
    def pop(self, key: str, /) -> S: ...
    @overload
    def pop(self, key: str, default: S | T, /) -> S | T: ...
    def pop(self, key: str, *default: object) -> object:
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, S]:
        item = super().popitem()
        self._number.pop(item[0], None)
        self._drop_indexes()
        return item

    def clear(self) -> None:
        super().clear()
        self._number.clear()
        self._drop_indexes()

    def update(self, *args: object, **kwargs: S) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: S) -> S:
        if key not in self:
            self[key] = default
        return self[key]

    def in_order(self, kind: str, project_id: str) -> list[S]:
        """The servers of `kind` in `project_id`, oldest first (creation order). Do not modify."""
        index = self._by_kind.get((kind, project_id))
        if index is None:
            index = [s for s in self.values() if s.kind == kind and s.project_id == project_id]
            self._by_kind[(kind, project_id)] = index
        return index

    def number(self, server_id: str) -> int:
        """The server's place in creation order (increasing, not dense)."""
        return self._number[server_id]

    def position(self, ordered: list[S], server_id: str) -> int:
        """Where `server_id` is in `ordered` (one of `in_order`'s lists holding it)."""
        numbers = self._number
        return bisect.bisect_left(ordered, numbers[server_id], key=lambda s: numbers[s.id])

    def by_order_key(self, kinds: tuple[str, ...], project_id: str) -> SortedServers[S]:
        """The servers of `kinds` in `project_id`, ascending by (created, id). Do not modify."""
        index = self._sorted.get((kinds, project_id))
        if index is None:
            index = SortedServers(
                s for s in self.values() if s.kind in kinds and s.project_id == project_id
            )
            self._sorted[(kinds, project_id)] = index
        return index

    def _index(self, server: S) -> None:
        by_kind = self._by_kind.get((server.kind, server.project_id))
        if by_kind is not None:
            by_kind.append(server)
        for (kinds, project_id), index in self._sorted.items():
            if server.kind in kinds and server.project_id == project_id:
                index.add(server)

    def _drop_indexes(self) -> None:
        self.version += 1
        self._by_kind.clear()
        self._sorted.clear()


def page_of(
    ordered: list[S],
    keep: Callable[[S], bool] | None,
    start: int,
    size: int,
    *,
    newest_first: bool = True,
) -> tuple[list[S], int]:
    """Hits `start` to `start + size` of `ordered` (oldest first), read newest first unless
    told, and how many hits there are. Without a test (`keep` None) every server is a hit and
    the page is a slice; with one, every server is tested (the count needs them all)."""
    if keep is None:
        total = len(ordered)
        if not newest_first:
            return ordered[start : start + size], total
        stop = max(0, total - start)
        return ordered[max(0, stop - size) : stop][::-1], total
    page: list[S] = []
    total = 0
    for server in reversed(ordered) if newest_first else ordered:
        if keep(server):
            if start <= total < start + size:
                page.append(server)
            total += 1
    return page, total

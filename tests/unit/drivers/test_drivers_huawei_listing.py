"""The ECS v1 list's server-side narrowing: never narrower than the selector itself."""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from fleet.domain import Selector, ServerStatus
from fleet.drivers.huawei.listing import name_hint, v1_list_query

S = ServerStatus


def test_name_hint_is_the_longest_literal_run_of_the_glob() -> None:
    assert name_hint("web-*") == "web-"
    assert name_hint("ecs-0001") == "ecs-0001"
    assert name_hint("web-[ab]-prod*") == "-prod"
    assert name_hint("db?-01") == "-01"
    assert name_hint("*-12[0-9]") == "-12"
    assert name_hint("x[!]ab]c") == "x"  # `]` right after `[!` is a member of the set
    assert name_hint("abc[def") == "abc"  # an unclosed `[`: nothing after it is relied on
    assert name_hint("a+bcd") == "bcd"  # only characters every "fuzzy match" reads literally
    assert name_hint("*") is None and name_hint("") is None and name_hint(None) is None


def test_v1_query_sends_one_status_and_the_name_hint() -> None:
    assert v1_list_query(Selector(statuses=frozenset({S.STOPPED}), name_pattern="web-*")) == [
        ("status", "SHUTOFF"),
        ("name", "web-"),
    ]
    assert v1_list_query(Selector(statuses=frozenset({S.RUNNING}))) == [("status", "ACTIVE")]
    two = frozenset({S.RUNNING, S.STOPPED})
    assert v1_list_query(Selector(statuses=two, name_pattern="*")) == []
    assert v1_list_query(Selector(statuses=frozenset({S.BUSY}))) == []  # no single cloud status


_NAME = st.text(alphabet="ab-_.+ 1[]!*?", max_size=12)


@given(name=_NAME, pattern=_NAME)
def test_every_name_the_glob_matches_contains_the_hint(name: str, pattern: str) -> None:
    hint = name_hint(pattern)
    if fnmatch.fnmatchcase(name, pattern) and hint is not None:
        assert hint in name

"""Tags 1D <-> 2D, and the selector as the authoritative filter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleet.domain import (
    Provider,
    Selector,
    ServerRef,
    ServerStatus,
    tag_from_1d,
    tag_to_1d,
    tags_from_1d,
)

keys = st.text(min_size=1, max_size=12).filter(lambda k: "=" not in k)
values = st.text(max_size=12)


def test_tag_mapping_examples() -> None:
    assert tag_to_1d("env", "prod") == "env=prod"
    assert tag_to_1d("k", "") == "k"
    assert tag_from_1d("env=prod") == ("env", "prod")
    assert tag_from_1d("k") == ("k", "")
    assert tag_from_1d("a=b=c") == ("a", "b=c")
    assert tag_from_1d("k=") == ("k", "")
    assert tags_from_1d(["a=1", "b", "__type_baremetal"]) == {
        "a": "1",
        "b": "",
        "__type_baremetal": "",
    }


@given(keys, values)
def test_tag_mapping_round_trips(key: str, value: str) -> None:
    assert tag_from_1d(tag_to_1d(key, value)) == (key, value)


def _server(**kw: object) -> ServerRef:
    base: dict[str, object] = {
        "endpoint": "e",
        "provider": Provider.OPENSTACK,
        "id": "s1",
        "name": "web-01",
        "status": ServerStatus.RUNNING,
        "tags": {"env": "prod", "team": "a", "bare": ""},
    }
    base.update(kw)
    return ServerRef(**base)  # type: ignore[arg-type]


def test_selector_all_criteria_must_hold() -> None:
    server = _server()
    assert Selector().matches(server)
    assert Selector(ids=frozenset({"s1"})).matches(server)
    assert not Selector(ids=frozenset({"s2"})).matches(server)
    assert Selector(name_pattern="web-*").matches(server)
    assert not Selector(name_pattern="db-*").matches(server)
    assert Selector(statuses=frozenset({ServerStatus.RUNNING})).matches(server)
    assert not Selector(statuses=frozenset({ServerStatus.STOPPED})).matches(server)


def test_selector_tags() -> None:
    server = _server()
    assert Selector(tags_all={"env": "prod"}).matches(server)
    assert not Selector(tags_all={"env": "dev"}).matches(server)
    assert Selector(tags_all={"bare": ""}).matches(server)
    assert Selector(tags_any={"team": ("a", "b")}).matches(server)
    assert not Selector(tags_any={"team": ("b", "c")}).matches(server)
    assert Selector(tags_any={"team": ()}).matches(server)  # any value
    assert not Selector(tags_any={"owner": ()}).matches(server)
    assert Selector(tags_none={"env": ("dev",)}).matches(server)
    assert not Selector(tags_none={"env": ("dev", "prod")}).matches(server)
    assert not Selector(tags_none={"bare": ()}).matches(server)  # the key at all
    assert Selector(tags_none={"owner": ()}).matches(server)


def test_values_are_frozen() -> None:
    tags = {"a": "1"}
    server = _server(tags=tags)
    tags["a"] = "2"
    assert server.tags["a"] == "1"
    assert server.settled
    assert not _server(task_state="powering-off", status=ServerStatus.STOPPING).settled


def test_values_hash_consistently_with_equality() -> None:
    from fleet.domain import ActionParams

    assert len({_server(), _server()}) == 1
    assert hash(ActionParams(tags={"a": "1", "b": "2"})) == hash(
        ActionParams(tags={"b": "2", "a": "1"})
    )

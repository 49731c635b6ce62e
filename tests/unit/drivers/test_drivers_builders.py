"""One request builder per action: exact bodies per dialect (api-digest 3.0-3.4)."""

from __future__ import annotations

import pytest

from fleet.domain import Action, ActionParams, PowerType, Selector, ServerStatus
from fleet.drivers.errors import Permanent, Unsupported
from fleet.drivers.huawei import requests as hw
from fleet.drivers.nova import requests as nv

HARD = ActionParams(type=PowerType.HARD)


def test_ecs_v1_batch_power_bodies() -> None:
    ids = ["a", "b"]
    assert hw.v1_power_body(Action.START, ids, ActionParams()) == {
        "os-start": {"servers": [{"id": "a"}, {"id": "b"}]}
    }
    assert hw.v1_power_body(Action.STOP, ids, HARD) == {
        "os-stop": {"type": "HARD", "servers": [{"id": "a"}, {"id": "b"}]}
    }
    assert hw.v1_power_body(Action.REBOOT, ids, ActionParams()) == {
        "reboot": {"type": "SOFT", "servers": [{"id": "a"}, {"id": "b"}]}
    }
    with pytest.raises(Unsupported):
        hw.v1_power_body(Action.DELETE, ids, ActionParams())


def test_ecs_v1_resize_delete_and_tags() -> None:
    assert hw.v1_resize_body(ActionParams(flavor="c6.xlarge.2")) == {
        "resize": {"flavorRef": "c6.xlarge.2"}
    }
    assert hw.v1_resize_body(ActionParams(flavor="f", dry_run=True)) == {
        "resize": {"flavorRef": "f"},
        "dry_run": True,
    }
    with pytest.raises(Permanent):
        hw.v1_resize_body(ActionParams())
    assert hw.v1_delete_body(["a"], ActionParams()) == {"servers": [{"id": "a"}]}
    assert hw.v1_delete_body(["a"], ActionParams(delete_publicip=False, delete_volume=True)) == {
        "servers": [{"id": "a"}],
        "delete_publicip": False,
        "delete_volume": True,
    }
    assert hw.v1_tag_add_body(ActionParams(tags={"env": "prod", "k": ""})) == {
        "action": "create",
        "tags": [{"key": "env", "value": "prod"}, {"key": "k", "value": ""}],
    }
    assert hw.v1_tag_remove_body(ActionParams(tags={"env": "prod", "k": ""})) == {
        "action": "delete",
        "tags": [{"key": "env", "value": "prod"}, {"key": "k"}],
    }
    with pytest.raises(Permanent):
        hw.v1_tag_add_body(ActionParams())


def test_query_by_tag_body() -> None:
    selector = Selector(
        tags_all={"env": "prod"}, tags_any={"team": ("a", "b")}, tags_none={"skip": ()}
    )
    assert hw.query_by_tag_body(selector, 0, 1000) == {
        "action": "filter",
        "limit": "1000",
        "offset": "0",
        "tags": [{"key": "env", "values": ["prod"]}, {"key": "team", "values": ["a", "b"]}],
        "not_tags": [{"key": "skip", "values": []}],
    }
    # tags_all and tags_any on one key: the value must be one of the any-values
    both = Selector(tags_all={"env": "prod"}, tags_any={"env": ("dev",)})
    assert hw.query_by_tag_body(both, 0, 10) is None
    agree = Selector(tags_all={"env": "prod"}, tags_any={"env": ("dev", "prod")})
    assert hw.query_by_tag_body(agree, 200, 100) == {
        "action": "filter",
        "limit": "100",
        "offset": "200",
        "tags": [{"key": "env", "values": ["prod"]}],
    }


def test_huawei_native_bodies() -> None:
    assert hw.native_start_body() == {"os-start": {}}
    assert hw.native_stop_body(HARD) == {"os-stop": {"type": "HARD"}}
    assert hw.native_reboot_body(ActionParams()) == {"reboot": {"type": "SOFT"}}
    assert hw.native_confirm_resize_body() == {"confirmResize": None}
    assert hw.native_revert_resize_body() == {"revertResize": None}


def test_nova_and_easystack_bodies() -> None:
    os_, es = nv.OPENSTACK_QUIRKS, nv.EASYSTACK_QUIRKS
    assert nv.start_body(os_) == {"os-start": None}
    assert nv.start_body(es) == {"os-start": True}
    assert nv.stop_body(os_, ActionParams()) == {"os-stop": None}
    assert nv.stop_body(es, ActionParams()) == {"os-stop": True}
    with pytest.raises(Unsupported):
        nv.stop_body(es, HARD)
    assert nv.reboot_body(HARD) == {"reboot": {"type": "HARD"}}
    assert nv.resize_body(os_, ActionParams(flavor="2")) == {"resize": {"flavorRef": "2"}}
    assert nv.resize_body(es, ActionParams(flavor="214", live=True)) == {
        "live_resize": {"flavorRef": "214"}
    }
    with pytest.raises(Unsupported):
        nv.resize_body(os_, ActionParams(flavor="2", live=True))
    with pytest.raises(Unsupported):
        nv.resize_body(es, ActionParams(flavor="2", dry_run=True))
    assert nv.confirm_resize_body() == {"confirmResize": None}
    assert nv.revert_resize_body() == {"revertResize": None}


def test_easystack_flavour_selects_quirks() -> None:
    assert nv.quirks_for("easystack") == nv.EASYSTACK_QUIRKS
    assert not nv.quirks_for("easystack").tag_api
    assert nv.quirks_for("openstack").tag_api


def test_nova_list_query_narrows_only_where_exact() -> None:
    sel = Selector(
        statuses=frozenset({ServerStatus.STOPPED}),
        tags_all={"env": "prod", "bare": ""},
        tags_any={"team": ("a", "b")},
        tags_none={"skip": ("yes",)},
    )
    assert nv.list_query(sel, nv.OPENSTACK_QUIRKS) == [
        ("status", "SHUTOFF"),
        ("tags", "env=prod,bare"),
        ("tags-any", "team=a,team=b"),
        ("not-tags-any", "skip=yes"),
    ]
    # EasyStack has no tag filter: tags are filtered client-side
    assert nv.list_query(sel, nv.EASYSTACK_QUIRKS) == [("status", "SHUTOFF")]
    # two statuses, a bare-key exclusion: nothing server-side
    loose = Selector(
        statuses=frozenset({ServerStatus.STOPPED, ServerStatus.RUNNING}), tags_none={"x": ()}
    )
    assert nv.list_query(loose, nv.OPENSTACK_QUIRKS) == []

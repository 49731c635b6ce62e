from pathlib import Path

import pytest

from fleet.domain import Action, Provider
from fleet.endpoints import endpoint_config
from fleet.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_default_file_loads_and_env_overrides_win(tmp_path: Path) -> None:
    s = load_settings(
        [ROOT / "config" / "default.toml"],
        environ={"FLEET_SERVICE__PORT": "9001", "FLEET_DATABASE__URL": "sqlite+aiosqlite:///x.db"},
    )
    assert s.service.port == 9001
    assert s.database.url == "sqlite+aiosqlite:///x.db"
    assert s.engine.lease_seconds == 30.0
    assert (s.service.keepalive_timeout, s.service.header_timeout) == (75.0, 10.0)


def test_later_files_override_earlier_ones(tmp_path: Path) -> None:
    a = tmp_path / "a.toml"
    a.write_text("[engine]\npoll_interval = 5\nmax_attempts = 3\n")
    b = tmp_path / "b.toml"
    b.write_text("[engine]\npoll_interval = 1\n")
    s = load_settings([a, b], environ={})
    assert (s.engine.poll_interval, s.engine.max_attempts) == (1.0, 3)


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[[endpoints]]\nname = "e"\nprovider = "aws"\n', "endpoints[0].provider"),
        ('[service]\nport = "x"\n', "service.port"),
        ("[service]\nheader_timeout = 0\n", "service.header_timeout"),
        ("[service]\nkeepalive_timeout = -1\n", "service.keepalive_timeout"),
        ("[engine]\nlease_secs = 3\n", "engine.lease_secs"),
        ('[[endpoints]]\nname = "Bad Name"\nprovider = "openstack"\n', "endpoints[0].name"),
        (
            '[[endpoints]]\nname = "e"\nprovider = "openstack"\n[endpoints.credentials]\npassword = "p"\n',
            "password_env",
        ),
        (
            '[[endpoints]]\nname = "e"\nprovider = "openstack"\n[[endpoints]]\nname = "e"\nprovider = "openstack"\n',
            "duplicate endpoint name",
        ),
        ('[[endpoints]]\nname = "e"\nprovider = "openstack"\nsimulator = true\n', "simulator"),
        (
            '[[endpoints]]\nname = "e"\nprovider = "huawei-ecs"\n[endpoints.budgets]\naction = [{limit = 0}]\n',
            "endpoints[0].budgets.action[0].limit",
        ),
        (
            '[[endpoints]]\nname = "e"\nprovider = "openstack"\naction_seconds = { halt = 3 }\n',
            "endpoints[0].action_seconds.halt",
        ),
        (
            '[[endpoints]]\nname = "e"\nprovider = "openstack"\naction_seconds = { stop = -1 }\n',
            "endpoints[0].action_seconds",
        ),
        ('[[endpoints]]\nname = "e"\n', "endpoints[0].provider: Field required"),
        # Each provider owns its keys: another provider's key is refused, naming the field.
        (
            '[[endpoints]]\nname = "e"\nprovider = "huawei-ecs"\nflavour = "easystack"\n',
            "endpoints[0].flavour: not a key of huawei-ecs",
        ),
        (
            '[[endpoints]]\nname = "e"\nprovider = "huawei-bms"\ncloud = "c"\n',
            "endpoints[0].cloud: not a key of huawei-bms",
        ),
        (
            '[[endpoints]]\nname = "e"\nprovider = "openstack"\necs_url = "https://e"\n',
            "endpoints[0].ecs_url: not a key of openstack",
        ),
        (
            '[[endpoints]]\nname = "e"\nprovider = "openstack"\ncredentials = { ak_env = "A" }\n',
            "endpoints[0].credentials.ak_env: not a key of openstack",
        ),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_settings([path], environ={})


def test_missing_file_and_bad_toml_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings([tmp_path / "nope.toml"], environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings([bad], environ={})


def test_endpoint_with_budgets(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[endpoints]]\nname = "ecs-prod"\nprovider = "huawei-ecs"\n'
        'credentials = { ak_env = "AK", sk_env = "SK" }\n'
        'budgets = { action = [{ limit = 1000, period = 60, unit = "servers" }] }\n'
    )
    ep = load_settings([path], environ={}).endpoint("ecs-prod")
    assert ep.provider is Provider.HUAWEI_ECS
    assert ep.credentials.kind == "aksk"
    assert ep.budgets["action"][0].unit == "servers"
    assert ep.action_seconds == {}


def test_endpoint_action_seconds(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[endpoints]]\nname = "bms-prod"\nprovider = "huawei-bms"\n'
        "action_seconds = { stop = 180, reboot = 300.5 }\n"
    )
    ep = load_settings([path], environ={}).endpoint("bms-prod")
    assert ep.action_seconds == {Action.STOP: 180.0, Action.REBOOT: 300.5}


def test_every_documented_key_of_each_provider_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[endpoints]]\nname = "ecs"\nprovider = "huawei-ecs"\nregion = "r"\nproject_id = "p"\n'
        'project_name = "pn"\niam_url = "https://iam"\necs_url = "https://ecs"\n'
        'bms_url = "https://bms"\ntimeout = 5\nconnection_limit = 4\nmax_servers = 3\n'
        'max_percent = 50\ncredentials = { ak_file = "/a", sk_file = "/s" }\n'
        '[[endpoints]]\nname = "bms"\nprovider = "huawei-bms"\niam_url = "https://iam"\n'
        'ecs_url = "https://ecs"\nbms_url = "https://bms"\nregion = "r"\n'
        '[endpoints.credentials]\nusername = "u"\npassword_env = "P"\nuser_domain_name = "acct"\n'
        '[[endpoints]]\nname = "nova"\nprovider = "openstack"\nauth_url = "https://ks/v3"\n'
        'compute_url = "https://nova"\ninterface = "internal"\nflavour = "easystack"\n'
        'project_name = "p"\n[endpoints.credentials]\nusername = "u"\npassword_file = "/p"\n'
        'user_domain_name = "Default"\nproject_domain_name = "Default"\n'
        '[[endpoints]]\nname = "cloud"\nprovider = "openstack"\ncloud = "mine"\n'
    )
    s = load_settings([path], environ={})
    assert [e.provider for e in s.endpoints] == [
        Provider.HUAWEI_ECS,
        Provider.HUAWEI_BMS,
        Provider.OPENSTACK,
        Provider.OPENSTACK,
    ]
    ecs_config, bms_config, nova_config = (e.from_settings() for e in s.endpoints[:3])
    assert (ecs_config.bms_url, ecs_config.connection_limit, ecs_config.timeout) == (
        "https://bms",
        4,
        5.0,
    )
    assert bms_config.iam_url == "https://iam"
    assert (nova_config.flavour, nova_config.interface, nova_config.compute_url) == (
        "easystack",
        "internal",
        "https://nova",
    )
    assert [e.variant for e in s.endpoints] == [None, None, "easystack", "openstack"]


def test_an_endpoint_without_credentials_names_them(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[endpoints]]\nname = "ecs"\nprovider = "huawei-ecs"\necs_url = "https://e"\n'
        '[[endpoints]]\nname = "nova"\nprovider = "openstack"\nauth_url = "https://k"\n'
    )
    ecs, nova = load_settings([path], environ={}).endpoints
    with pytest.raises(SettingsError, match=r"endpoints\[ecs\]\.credentials: give ak_env"):
        endpoint_config(ecs)
    with pytest.raises(SettingsError, match=r"endpoints\[nova\]\.credentials: give password_env"):
        endpoint_config(nova)

"""Kong's env vault as the harness resolves it (kong/vaults/env/init.lua, kong/pdk/vault.lua,
``resolve_reference`` in kong/db/schema/init.lua): references resolve on select, an
unresolvable one becomes ``""`` — which select then drops like any empty string."""

from __future__ import annotations

import pytest

from kong_harness.schema import process_config, select_config
from kong_harness.vault import is_reference, resolve_reference

ENV = {
    "EDGE_RL_REDIS_URL": "redis://cache:6379/1",
    "EDGE_RL_REDIS_URL_PREVIOUS": "old",
    "APP_SECRET": '{"user": "u1", "n": 3}',
    "PRE_TOKEN": "prefixed",
}


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("{vault://env/edge-rl-redis-url}", "redis://cache:6379/1"),
        ("{vault://env/EDGE_RL_REDIS_URL}", "redis://cache:6379/1"),
        ("{vault://env/edge-rl-redis-url#2}", "old"),
        ("{vault://env/app-secret/user}", "u1"),
        ("{vault://env/app-secret/n}", ""),  # not a string: unresolvable
        ("{vault://env/token?prefix=pre-}", "prefixed"),
        ("{vault://env/missing}", ""),
        ("{vault://aws/edge-rl-redis-url}", ""),  # only env is available here
    ],
)
def test_env_references(reference: str, expected: str) -> None:
    assert is_reference(reference)
    assert resolve_reference(reference, ENV) == expected


def test_not_a_reference() -> None:
    assert not is_reference("vault://env/x")
    assert not is_reference("{vault://env/x")


SCHEMA = {
    "name": "p",
    "fields": [
        {
            "config": {
                "type": "record",
                "fields": [
                    {"url": {"type": "string", "referenceable": True}},
                    {"plain": {"type": "string"}},
                    {
                        "redis": {
                            "type": "record",
                            "fields": [{"password": {"type": "string", "referenceable": True}}],
                        }
                    },
                ],
            }
        }
    ],
}


def test_select_resolves_referenceable_fields_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """kong/db/schema/init.lua ``process_auto_fields`` (select): each resolved reference is
    kept in the record's ``$refs``, nested records have their own."""
    monkeypatch.setenv("EDGE_RL_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("RL_PASSWORD", "s3cret")
    ref = "{vault://env/edge-rl-redis-url}"
    conf = select_config(
        SCHEMA,
        process_config(
            SCHEMA, {"url": ref, "plain": ref, "redis": {"password": "{vault://env/rl-password}"}}
        ),
    )
    assert conf == {
        "url": "redis://cache:6379/1",
        "plain": ref,
        "redis": {"password": "s3cret", "$refs": {"password": "{vault://env/rl-password}"}},
        "$refs": {"url": ref},
    }


def test_unresolved_reference_is_an_empty_string(monkeypatch: pytest.MonkeyPatch) -> None:
    """kong/db/schema/init.lua: ``resolve_reference`` answers ``""`` when the vault has
    nothing, and the ``""`` of a field listed in ``$refs`` is not removed like other empty
    strings, so the plugin gets ``url: ""`` — not an absent field."""
    monkeypatch.delenv("EDGE_RL_REDIS_URL", raising=False)
    ref = "{vault://env/edge-rl-redis-url}"
    conf = select_config(SCHEMA, process_config(SCHEMA, {"url": ref}))
    assert conf == {"url": "", "redis": {}, "$refs": {"url": ref}}


def test_referenceable_array_elements_are_listed_by_index(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {
        "name": "p",
        "fields": [
            {
                "config": {
                    "type": "record",
                    "fields": [
                        {
                            "urls": {
                                "type": "array",
                                "elements": {"type": "string", "referenceable": True},
                            }
                        },
                    ],
                }
            }
        ],
    }
    monkeypatch.setenv("SECOND_URL", "http://b")
    conf = select_config(
        schema, process_config(schema, {"urls": ["http://a", "{vault://env/second-url}"]})
    )
    assert conf == {
        "urls": ["http://a", "http://b"],
        "$refs": {"urls": {2: "{vault://env/second-url}"}},
    }

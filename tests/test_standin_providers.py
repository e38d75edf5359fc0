"""The STAND-IN provider plugins of the e2e suite (e2e/standin_providers.py): not the real random, time
and onepassword providers, which cannot be built here. These tests pin what the stand-ins promise:
replace rules, output shapes, secret marking, the Connect calls, the installer, and the gRPC plugin
protocol (a real subprocess on loopback)."""

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from e2e import standin_providers as sp
from e2e.connect_standin import ConnectStandIn, seed

ROOT = Path(__file__).resolve().parent.parent


def unwrap_secret(value: Any) -> Any:
    assert sp.is_secret(value), "expected a secret"
    return value["value"]


# --- diffs ---------------------------------------------------------------------------------------


def test_no_change_when_only_secretness_and_number_types_differ() -> None:
    old = {"length": 16.0, "keepers": {"password": sp.secret("p")}}
    new = {"length": 16, "keepers": {"password": sp.secret("p")}}
    assert sp.diff_inputs(old, new, lambda _: True).changes == {}
    assert sp.diff_inputs({"length": 16, "keepers": {"password": "p"}}, new, lambda _: True).changes == {}


def test_changed_keepers_replace_random_values() -> None:
    found = sp.RandomBytes().diff({"length": 16, "keepers": {"r": "1"}}, {"length": 16, "keepers": {"r": "2"}}, {})
    assert found.replaces == ["keepers"]
    response = found.to_response()
    assert response.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert response.detailedDiff["keepers"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE


def test_added_keepers_and_unknown_keepers_replace() -> None:
    password = sp.RandomPassword()
    olds, _ = password.check({"length": 24, "special": False})
    news, _ = password.check({"length": 24, "special": False, "keepers": {"rotation": "1"}})
    assert password.diff(olds, news, olds).changes == {"keepers": ("add", True)}
    unknown = {"length": 16, "keepers": {"password": sp.secret(sp.UNKNOWN)}}
    assert sp.RandomBytes().diff({"length": 16, "keepers": {"password": sp.secret("x")}}, unknown, {}).replaces == [
        "keepers"
    ]


def test_nothing_changed_is_diff_none() -> None:
    password = sp.RandomPassword()
    inputs, failures = password.check({"length": 24, "special": False})
    assert failures == []
    response = password.diff(inputs, dict(inputs), {}).to_response()
    assert response.changes == provider_pb2.DiffResponse.DIFF_NONE
    assert list(response.replaces) == []


def test_static_replaced_with_its_triggers_only() -> None:
    static = sp.Static()
    olds = {"triggers": {"password": sp.secret("a")}, **sp.static_outputs(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))}
    inputs = {"triggers": {"password": sp.secret("a")}}
    assert static.diff(inputs, dict(inputs), olds).changes == {}
    assert static.diff(inputs, {"triggers": {"password": sp.secret("b")}}, olds).replaces == ["triggers"]
    assert static.diff(inputs, {**inputs, "rfc3339": "2026-01-02T03:04:05Z"}, olds).changes == {}
    assert static.diff(inputs, {**inputs, "rfc3339": "2027-01-02T03:04:05Z"}, olds).replaces == ["rfc3339"]


def test_item_updates_in_place_and_replaces_on_vault_or_category() -> None:
    item = sp.Item(sp.Connection())
    olds, _ = item.check({"vault": "v1", "title": "admin", "username": "admin", "password": sp.secret("p1")})
    assert item.diff(olds, dict(olds), olds).changes == {}
    changed = item.diff(olds, {**olds, "password": sp.secret("p2")}, olds)
    assert changed.changes == {"password": ("update", False)}
    assert changed.replaces == []
    assert item.diff(olds, {**olds, "vault": "v2"}, olds).replaces == ["vault"]
    assert item.diff(olds, {**olds, "category": "password"}, olds).replaces == ["category"]


# --- checks and outputs --------------------------------------------------------------------------


def test_random_password_check_applies_the_schema_defaults_and_validates() -> None:
    inputs, failures = sp.RandomPassword().check({"length": 20, "special": False})
    assert failures == []
    assert inputs["special"] is False
    assert inputs["upper"] is True and inputs["numeric"] is True and inputs["minLower"] == 0
    assert sp.RandomPassword().check({"special": False})[1] == [("length", "length is required")]
    assert sp.RandomPassword().check({"length": 2, "minUpper": 2, "minLower": 1})[1][0][0] == "length"
    assert sp.RandomBytes().check({"length": 0})[1][0][0] == "length"


def test_random_password_result_is_secret_and_follows_the_inputs() -> None:
    inputs, _ = sp.RandomPassword().check({"length": 32, "special": False, "minNumeric": 3, "minUpper": 2})
    created = sp.RandomPassword().create(inputs, preview=False)
    result = unwrap_secret(created.outputs["result"])
    assert len(result) == 32
    assert result.isalnum()
    assert sum(c.isdigit() for c in result) >= 3 and sum(c.isupper() for c in result) >= 2
    assert bcrypt.checkpw(result.encode(), unwrap_secret(created.outputs["bcryptHash"]).encode())
    assert created.id == "none"
    assert created.outputs["length"] == 32


def test_random_bytes_outputs_agree_and_are_secret() -> None:
    created = sp.RandomBytes().create({"length": 16, "keepers": {"a": "1"}}, preview=False)
    raw = bytes.fromhex(unwrap_secret(created.outputs["hex"]))
    assert len(raw) == 16
    assert base64.b64decode(unwrap_secret(created.outputs["base64"])) == raw
    assert created.outputs["keepers"] == {"a": "1"}


def test_preview_creates_return_unknowns() -> None:
    assert sp.RandomPassword().create({"length": 8}, preview=True).outputs["result"] == sp.UNKNOWN
    assert sp.RandomBytes().create({"length": 8}, preview=True).outputs["hex"] == sp.UNKNOWN
    assert sp.Static().create({"triggers": {}}, preview=True).outputs["rfc3339"] == sp.UNKNOWN
    # No Connect configured: a preview create must not need it.
    assert sp.Item(sp.Connection()).create({"vault": "v", "title": "t"}, preview=True).outputs["uuid"] == sp.UNKNOWN


def test_static_outputs() -> None:
    created = sp.Static().create({"triggers": {"password": sp.secret("x")}}, preview=False)
    outputs = created.outputs
    parsed = datetime.strptime(outputs["rfc3339"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert created.id == outputs["rfc3339"] == outputs["id"]
    assert outputs["unix"] == int(parsed.timestamp())
    assert (outputs["year"], outputs["month"], outputs["day"]) == (parsed.year, parsed.month, parsed.day)
    assert (outputs["hour"], outputs["minute"], outputs["second"]) == (parsed.hour, parsed.minute, parsed.second)
    given = sp.Static().create({"rfc3339": "2026-03-04T05:06:07Z"}, preview=False).outputs
    assert (given["rfc3339"], given["unix"], given["second"]) == ("2026-03-04T05:06:07Z", 1772600767, 7)
    assert sp.Static().check({"rfc3339": "yesterday"})[1][0][0] == "rfc3339"


def test_item_body_keeps_section_and_field_ids() -> None:
    inputs = {
        "vault": "v",
        "title": "argocd-secret",
        "category": "secure_note",
        "sections": [{"label": "s", "fields": [{"label": "k", "type": "CONCEALED", "value": sp.secret("v1")}]}],
    }
    first = sp.item_body(inputs, "v")
    assert first["category"] == "SECURE_NOTE"
    [section] = first["sections"]
    [entry] = first["fields"]
    assert entry["section"] == {"id": section["id"]} and entry["value"] == "v1"
    previous = {"sections": [{"id": section["id"], "label": "s", "fields": [{"id": entry["id"], "label": "k"}]}]}
    second = sp.item_body(inputs, "v", previous)
    assert second["sections"][0]["id"] == section["id"] and second["fields"][0]["id"] == entry["id"]
    login = sp.item_body({"title": "admin", "category": "login", "username": "admin", "password": "p"}, "v")
    assert [(f["purpose"], f["value"]) for f in login["fields"]] == [("USERNAME", "admin"), ("PASSWORD", "p")]


# --- onepassword against the Connect stand-in ----------------------------------------------------


@pytest.fixture
def connect() -> Iterator[tuple[ConnectStandIn, sp.Connection]]:
    with ConnectStandIn(host="127.0.0.1", port=0) as server:
        tokens = seed(server, {"pulumi": ("creds", "token")}, init_vault="Init", working_vault="Work")
        connection = sp.Connection()
        connection.configure({}, {}, {"OP_CONNECT_HOST": server.url, "OP_CONNECT_TOKEN": tokens["pulumi"]})
        yield server, connection


def test_configure_reads_config_before_environment() -> None:
    connection = sp.Connection()
    connection.configure(
        {"url": "http://from-args", "token": sp.secret("t")},
        {},
        {"OP_CONNECT_HOST": "http://env", "OP_CONNECT_TOKEN": "e"},
    )
    assert connection.get().url == "http://from-args" and connection.get().token == "t"
    connection.configure({}, {"onepassword:config:url": "http://var", "onepassword:config:token": "v"}, {})
    assert connection.get().url == "http://var"
    connection.configure({}, {}, {"OP_SERVICE_ACCOUNT_TOKEN": "sa"})
    with pytest.raises(sp.ProviderError, match="Connect only"):
        connection.get()


def test_get_vault_and_get_item(connect: tuple[ConnectStandIn, sp.Connection]) -> None:
    server, connection = connect
    client = connection.get()
    vault = sp.get_vault(client, {"name": "Init"})
    assert vault["uuid"] == server.vault_id("Init") and vault["name"] == "Init"
    creds = sp.get_item(client, {"vault": vault["uuid"], "title": "creds"})
    [file] = creds["files"]
    assert file["name"] == "1password-credentials.json"
    content = base64.b64decode(unwrap_secret(file["contentBase64"]))
    assert b"encCredentials" in content and unwrap_secret(file["content"]) == content.decode()
    token = sp.get_item(client, {"vault": vault["uuid"], "title": "token"})
    assert token["category"] == "password"
    assert unwrap_secret(token["password"]) == server.item("Init", "token")["fields"][0]["value"]
    with pytest.raises(sp.ProviderError, match="found 0"):
        sp.get_item(client, {"vault": vault["uuid"], "title": "missing"})


def test_get_item_maps_fields_as_the_data_source_documents(connect: tuple[ConnectStandIn, sp.Connection]) -> None:
    server, connection = connect
    credential = {"id": "credential", "label": "credential", "type": "CONCEALED", "value": "api-token"}
    server.add_item("Init", "api", "API_CREDENTIAL", fields=[credential])
    server.add_item("Init", "not-api", "PASSWORD", fields=[{**credential, "value": "other"}])
    server.add_item("Init", "by-label", "LOGIN", fields=[{"id": "x", "label": "username", "value": "admin"}])
    client = connection.get()
    api = sp.get_item(client, {"vault": "Init", "title": "api"})  # a vault name works too
    assert unwrap_secret(api["credential"]) == "api-token" and api["category"] == "api_credential"
    assert "credential" not in sp.get_item(client, {"vault": "Init", "title": "not-api"})
    assert sp.get_item(client, {"vault": "Init", "title": "by-label"})["username"] == "admin"
    with pytest.raises(sp.ProviderError, match="found 0"):
        sp.get_vault(client, {"name": "Nope"})


def test_item_lifecycle_through_connect(connect: tuple[ConnectStandIn, sp.Connection]) -> None:
    server, connection = connect
    item = sp.Item(connection)
    vault_id = server.vault_id("Work")
    inputs, _ = item.check(
        {
            "vault": vault_id,
            "title": "argocd-secret",
            "category": "secure_note",
            "sections": [{"label": "argocd-secret", "fields": [{"label": "k", "value": sp.secret("one")}]}],
        }
    )
    created = item.create(inputs, preview=False)
    assert created.id == f"vaults/{vault_id}/items/{created.outputs['uuid']}"
    [section] = created.outputs["sections"]
    assert section["id"] and section["fields"][0]["type"] == "STRING"
    assert unwrap_secret(section["fields"][0]["value"]) == "one"
    stored = server.item("Work", "argocd-secret")
    assert stored["fields"][0]["value"] == "one"

    news = {**inputs, "sections": [{"label": "argocd-secret", "fields": [{"label": "k", "value": sp.secret("two")}]}]}
    updated = item.update(created.id, created.outputs, news, preview=False)
    again = server.item("Work", "argocd-secret")
    assert again["version"] == 2 and again["fields"][0]["value"] == "two"
    assert again["fields"][0]["id"] == stored["fields"][0]["id"]  # IDs kept across updates
    assert updated["sections"][0]["id"] == section["id"]
    assert item.read(created.id, updated, news)[0] == created.id

    item.delete(created.id, updated)
    assert server.items("Work") == []
    assert item.read(created.id, updated, news) == ("", {}, {})  # gone: the engine drops it


def test_connect_failures_are_clear_errors(connect: tuple[ConnectStandIn, sp.Connection]) -> None:
    server, connection = connect
    server.fail_with(500)
    with pytest.raises(sp.ProviderError, match="answered GET /v1/vaults with 500"):
        sp.get_vault(connection.get(), {"name": "Init"})
    server.recover()
    server.go_down()
    with pytest.raises(sp.ProviderError, match="cannot reach 1Password Connect"):
        sp.Item(connection).create({"vault": "Work", "title": "x", "category": "login"}, preview=False)
    server.recover()


# --- installer -----------------------------------------------------------------------------------


def test_install_is_idempotent_and_uninstall_leaves_real_plugins(tmp_path: Path) -> None:
    first = sp.install(tmp_path, ROOT)
    assert all(line.startswith("installed") for line in first)
    assert all(line.startswith("up to date") for line in sp.install(tmp_path, ROOT))
    script = sp.plugin_path("random", tmp_path)
    assert script == tmp_path / "resource-random-v4.21.4" / "pulumi-resource-random"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert sp.MARKER in text and f"'{ROOT}/.venv/bin/python' -m e2e.standin_providers serve random" in text
    assert sp.plugin_path("time", tmp_path).parent.name == "resource-time-v0.1.1"
    assert sp.plugin_path("onepassword", tmp_path).parent.name == "resource-onepassword-v1.2.1"

    real = sp.plugin_path("time", tmp_path)
    real.write_text("not ours")
    with pytest.raises(SystemExit):
        sp.install(tmp_path, ROOT)
    lines = sp.uninstall(tmp_path)
    assert real.exists() and any("left" in line for line in lines)
    assert not sp.plugin_path("random", tmp_path).exists()


# --- the plugin over gRPC ------------------------------------------------------------------------


@pytest.fixture
def random_plugin() -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "e2e.standin_providers", "serve", "random", "127.0.0.1:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield provider_pb2_grpc.ResourceProviderStub(channel)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "STAND-IN" in stderr


def test_plugin_over_grpc(random_plugin: provider_pb2_grpc.ResourceProviderStub) -> None:
    stub = random_plugin
    assert stub.GetPluginInfo(empty_pb2.Empty()).version == "4.21.4"
    configured = stub.Configure(provider_pb2.ConfigureRequest(args=sp.to_struct({})))
    assert configured.acceptSecrets and configured.supportsPreview

    urn = "urn:pulumi:e2e::cluster-secrets::random:index/randomBytes:RandomBytes::salt"
    checked = stub.Check(provider_pb2.CheckRequest(urn=urn, news=sp.to_struct({"length": 16, "keepers": {"r": "1"}})))
    assert list(checked.failures) == []
    created = stub.Create(provider_pb2.CreateRequest(urn=urn, properties=checked.inputs))
    outputs = sp.from_struct(created.properties)
    assert created.id == "none" and len(unwrap_secret(outputs["hex"])) == 32

    changed = stub.Check(provider_pb2.CheckRequest(urn=urn, news=sp.to_struct({"length": 16, "keepers": {"r": "2"}})))
    diff = stub.Diff(
        provider_pb2.DiffRequest(
            urn=urn, id=created.id, olds=created.properties, old_inputs=checked.inputs, news=changed.inputs
        )
    )
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == ["keepers"]
    same = stub.Diff(
        provider_pb2.DiffRequest(
            urn=urn, id=created.id, olds=created.properties, old_inputs=checked.inputs, news=checked.inputs
        )
    )
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE

    with pytest.raises(grpc.RpcError) as error:
        stub.Check(provider_pb2.CheckRequest(urn=urn.replace("randomBytes:RandomBytes", "randomUuid:RandomUuid")))
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED

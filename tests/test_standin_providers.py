"""The STAND-IN random provider plugin of the e2e suite (e2e/standin_providers.py): not the real
pulumi-random, which cannot be built here. These tests pin what the stand-in promises: replace rules,
output shapes, secret marking, the installer, and the gRPC plugin protocol (a real subprocess on
loopback)."""

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from e2e import standin_providers as sp

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
    found = sp.RandomBytes().diff({"length": 16, "keepers": {"r": "1"}}, {"length": 16, "keepers": {"r": "2"}})
    assert found.replaces == ["keepers"]
    response = found.to_response()
    assert response.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert response.detailedDiff["keepers"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE


def test_added_keepers_and_unknown_keepers_replace() -> None:
    password = sp.RandomPassword()
    olds, _ = password.check({"length": 24, "special": False})
    news, _ = password.check({"length": 24, "special": False, "keepers": {"rotation": "1"}})
    assert password.diff(olds, news).changes == {"keepers": ("add", True)}
    unknown = {"length": 16, "keepers": {"password": sp.secret(sp.UNKNOWN)}}
    assert sp.RandomBytes().diff({"length": 16, "keepers": {"password": sp.secret("x")}}, unknown).replaces == [
        "keepers"
    ]


def test_nothing_changed_is_diff_none() -> None:
    password = sp.RandomPassword()
    inputs, failures = password.check({"length": 24, "special": False})
    assert failures == []
    response = password.diff(inputs, dict(inputs)).to_response()
    assert response.changes == provider_pb2.DiffResponse.DIFF_NONE
    assert list(response.replaces) == []


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
    assert sp.RandomPassword().create({"length": 8}, preview=True).outputs["bcryptHash"] == sp.UNKNOWN
    assert sp.RandomBytes().create({"length": 8}, preview=True).outputs["base64"] == sp.UNKNOWN


# --- installer -----------------------------------------------------------------------------------


def test_install_writes_only_random_and_is_idempotent(tmp_path: Path) -> None:
    first = sp.install(tmp_path, ROOT)
    assert len(first) == 1 and first[0].startswith("installed")
    assert sp.install(tmp_path, ROOT) == [first[0].replace("installed", "up to date", 1)]
    script = sp.plugin_path("random", tmp_path)
    assert script == tmp_path / "resource-random-v4.21.4" / "pulumi-resource-random"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert sp.MARKER in text and f"'{ROOT}/.venv/bin/python' -m e2e.standin_providers serve random" in text
    assert [p.name for p in tmp_path.iterdir()] == ["resource-random-v4.21.4"]
    assert list(sp.VERSIONS) == ["random"]


def test_install_refuses_to_overwrite_a_real_plugin(tmp_path: Path) -> None:
    real = sp.plugin_path("random", tmp_path)
    real.parent.mkdir(parents=True)
    real.write_bytes(b"\x7fELF not ours")
    with pytest.raises(SystemExit):
        sp.install(tmp_path, ROOT)
    assert real.read_bytes() == b"\x7fELF not ours"


def test_uninstall_removes_stand_ins_of_all_three_names_and_leaves_real_plugins(tmp_path: Path) -> None:
    sp.install(tmp_path, ROOT)
    # Scripts an earlier install wrote for time and onepassword (they carried MARKER too).
    old = {}
    for name, version in (("time", "0.1.1"), ("onepassword", "1.2.1")):
        path = tmp_path / f"resource-{name}-v{version}" / f"pulumi-resource-{name}"
        path.parent.mkdir()
        path.write_text(f"#!/bin/sh\n# {sp.MARKER}: pulumi-resource-{name} v{version} is NOT the real provider.\n")
        old[name] = path
    # A real plugin (no MARKER) of a former stand-in name, and one of another provider.
    real_time = tmp_path / "resource-time-v0.2.0" / "pulumi-resource-time"
    real_kubernetes = tmp_path / "resource-kubernetes-v4.34.2" / "pulumi-resource-kubernetes"
    for path in (real_time, real_kubernetes):
        path.parent.mkdir()
        path.write_bytes(b"\x7fELF" + b"\0" * 4096 + b"a real plugin binary")

    lines = sp.uninstall(tmp_path)
    assert not sp.plugin_path("random", tmp_path).exists()
    assert not sp.plugin_path("random", tmp_path).parent.exists()
    assert not any(path.exists() or path.parent.exists() for path in old.values())
    assert real_time.exists() and real_kubernetes.exists()
    assert sorted(line.split()[0] for line in lines) == ["left", "removed", "removed", "removed"]
    assert any(line.startswith("left") and str(real_time) in line for line in lines)
    assert sp.uninstall(tmp_path) == [f"left {real_time} alone: not a stand-in"]


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
    with pytest.raises(grpc.RpcError) as error:
        stub.Invoke(provider_pb2.InvokeRequest(tok="random:index/getThing:getThing"))
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_only_random_is_served(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("time", "onepassword"):
        assert sp.main(["serve", name]) == 2
        assert "there are: random" in capsys.readouterr().err
        with pytest.raises(ValueError, match="no stand-in"):
            sp.make_plugin(name)

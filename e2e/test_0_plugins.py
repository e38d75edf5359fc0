"""Scenario 0: the bridged onepassword and time plugins the suite installed are what the program's
Python SDKs call (e2e/plugin_schemas.py), and Go builds of our bridge module, not stand-ins.

Each plugin's schema comes from the installed binary (`pulumi package get-schema`), so this checks
what the engine will talk to. What the schema has beyond the SDK (the bridge's newer
`pulumi:providers:<pkg>/terraformConfig`, say) is printed, not failed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import pytest

from e2e import harness
from e2e.plugin_schemas import BRIDGE_MODULE, compare, describe_plugin, extras, get_schema, go_build, sdk_surface

BRIDGE_PACKAGE = "cluster-secrets.e2e/tools/terraform-bridged"  # e2e/tools/terraform-bridged/go.mod
BRIDGE_VERSION = "v3.120.0"


@dataclass(frozen=True)
class Bridged:
    name: str  # the Pulumi package
    version: str  # the plugin's, the Python SDK's
    sdk: str  # the SDK's distribution and import name
    terraform_module: str
    terraform_version: str

    @property
    def plugin(self) -> Path:
        return harness.plugin_binary(self.name, self.version)

    def __str__(self) -> str:
        return self.name


BRIDGED = (
    Bridged(
        "onepassword", "1.2.1", "pulumi_onepassword", "github.com/1Password/terraform-provider-onepassword/v2", "v2.2.1"
    ),
    Bridged("time", "0.1.1", "pulumiverse_time", "github.com/hashicorp/terraform-provider-time", "v0.12.1"),
)


def installed_plugin(bridged: Bridged) -> Path:
    assert (bridged.name, bridged.version) in harness.PLUGINS, "harness.PLUGINS and this table disagree"
    if not os.access(bridged.plugin, os.X_OK):
        pytest.skip(f"{bridged.plugin} is missing: run `e2e/build-tools pulumi-resource-{bridged.name}`")
    return bridged.plugin


@pytest.mark.parametrize("bridged", BRIDGED, ids=str)
def test_installed_plugin_schema_has_the_tokens_properties_secrets_and_config_the_python_sdk_uses(
    bridged: Bridged,
) -> None:
    plugin = installed_plugin(bridged)
    pulumi = harness.BIN / "pulumi"
    if not os.access(pulumi, os.X_OK):
        pytest.skip(f"{pulumi} is missing: run `e2e/build-tools pulumi`")
    sdk = distribution(bridged.sdk)
    package_dir = Path(str(sdk.locate_file(bridged.sdk)))
    plugin_json = json.loads((package_dir / "pulumi-plugin.json").read_text())

    schema = get_schema(pulumi, plugin)
    assert (schema["name"], schema.get("version")) == (bridged.name, bridged.version)
    assert (plugin_json["name"], sdk.version) == (bridged.name, bridged.version)

    surface = sdk_surface(package_dir)
    print(f"{bridged.name} {bridged.version}: {describe_plugin(plugin)}")
    for line in extras(surface, schema):
        print(f"  schema extra: {line}")
    assert compare(surface, schema) == []


@pytest.mark.parametrize("bridged", BRIDGED, ids=str)
def test_installed_plugin_is_a_go_build_of_our_bridge_module_with_the_pinned_terraform_provider(
    bridged: Bridged,
) -> None:
    plugin = installed_plugin(bridged)
    if shutil.which("go") is None:
        pytest.skip("`go` is not on PATH: it reads the plugin's embedded module info")
    build = go_build(plugin)
    assert build is not None, f"{plugin} is not a Go binary: {describe_plugin(plugin)}"
    assert build.main == BRIDGE_PACKAGE
    assert build.deps.get(bridged.terraform_module) == bridged.terraform_version
    assert build.deps.get(BRIDGE_MODULE) == BRIDGE_VERSION
    provider = f"terraform-provider-{bridged.name} {bridged.terraform_version}"
    assert describe_plugin(plugin) == f"bridged {provider} (pulumi-terraform-bridge {BRIDGE_VERSION})"

"""e2e/plugin_schemas.py without built tools: what it reads from the installed Python SDKs, and what
`compare` reports against small hand-written schemas."""

from __future__ import annotations

import copy
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest

from e2e import plugin_schemas as ps
from e2e.plugin_schemas import ConfigKey, Invoke, Resource, Surface, compare, extras, sdk_surface
from e2e.standin_providers import MARKER


def installed(sdk: str) -> Path:
    return Path(str(distribution(sdk).locate_file(sdk)))


@pytest.fixture(scope="module")
def onepassword() -> Surface:
    return sdk_surface(installed("pulumi_onepassword"))


@pytest.fixture(scope="module")
def time_sdk() -> Surface:
    return sdk_surface(installed("pulumiverse_time"))


# --- what sdk_surface reads from the installed SDKs ----------------------------------------------


def test_onepassword_sdk_uses_exactly_the_item_resource_and_the_get_item_and_get_vault_invokes(
    onepassword: Surface,
) -> None:
    assert onepassword.name == "onepassword"
    assert set(onepassword.resources) == {"onepassword:index/item:Item"}
    assert set(onepassword.invokes) == {"onepassword:index/getItem:getItem", "onepassword:index/getVault:getVault"}
    assert onepassword.provider is not None and onepassword.provider.token == "pulumi:providers:onepassword"


def test_time_sdk_uses_exactly_the_offset_rotating_sleep_and_static_resources(time_sdk: Surface) -> None:
    assert time_sdk.name == "time"
    assert set(time_sdk.resources) == {
        "time:index/offset:Offset",
        "time:index/rotating:Rotating",
        "time:index/sleep:Sleep",
        "time:index/static:Static",
    }
    assert time_sdk.invokes == {}
    assert time_sdk.config == {}
    static = time_sdk.resources["time:index/static:Static"]
    assert set(static.inputs) == {"rfc3339", "triggers"}  # what components/argocd.py's Static sends
    assert "rfc3339" in static.outputs
    assert "rotationRfc3339" in time_sdk.resources["time:index/rotating:Rotating"].inputs  # getter(name=...)


def test_item_inputs_are_wire_names_with_the_programs_properties_and_password_secret(onepassword: Surface) -> None:
    item = onepassword.resources["onepassword:index/item:Item"]
    assert {"vault", "title", "category", "username", "password", "sections"} <= set(item.inputs)
    assert "noteValue" in item.inputs and "note_value" not in item.inputs
    assert "uuid" in item.outputs and "uuid" not in item.inputs  # computed: an output only
    assert item.secret_inputs == {"password", "noteValue"}
    assert item.secret_outputs == {"password", "noteValue"}


def test_item_sections_refer_to_the_nested_section_and_field_types(onepassword: Surface) -> None:
    item = onepassword.resources["onepassword:index/item:Item"]
    assert (item.inputs["sections"], item.outputs["sections"]) == ("ItemSectionArgs", "ItemSection")
    assert item.inputs["title"] is None
    assert onepassword.types["ItemSectionArgs"] == {"id": None, "label": None, "fields": "ItemSectionFieldArgs"}
    assert onepassword.types["ItemSectionField"]["passwordRecipe"] == "ItemSectionFieldPasswordRecipe"


def test_get_item_arguments_are_the_args_keys_and_results_the_result_class_getters(onepassword: Surface) -> None:
    get_item = onepassword.invokes["onepassword:index/getItem:getItem"]
    assert get_item.args == {
        "files": "GetItemFileArgs",
        "noteValue": None,
        "sections": "GetItemSectionArgs",
        "title": None,
        "uuid": None,
        "vault": None,
    }
    assert {"password", "username", "privateKey", "noteValue"} <= set(get_item.results)
    assert get_item.results["sections"] == "GetItemSectionResult"
    assert onepassword.invokes["onepassword:index/getVault:getVault"].args == {"name": None, "uuid": None}


def test_onepassword_config_keys_have_the_sdks_environment_defaults_and_tokens_are_secret(onepassword: Surface) -> None:
    assert onepassword.config == {
        "account": ConfigKey(("OP_ACCOUNT",)),
        "opCliPath": ConfigKey(("OP_CLI_PATH",)),
        "serviceAccountToken": ConfigKey(("OP_SERVICE_ACCOUNT_TOKEN",), secret=True),
        "token": ConfigKey(("OP_CONNECT_TOKEN",), secret=True),
        "url": ConfigKey(("OP_CONNECT_HOST",)),
    }


# --- compare against hand-written schemas ---------------------------------------------------------


def small_surface() -> Surface:
    return Surface(
        "demo",
        resources={
            "demo:index/thing:Thing": Resource(
                "demo:index/thing:Thing",
                "Thing",
                inputs={"name": None, "password": None, "parts": "ThingPartArgs"},
                outputs={"name": None, "password": None, "uuid": None},
                secret_inputs={"password"},
                secret_outputs={"password"},
            )
        },
        provider=Resource("pulumi:providers:demo", "Provider", inputs={"token": None}, secret_inputs={"token"}),
        invokes={
            "demo:index/getThing:getThing": Invoke("demo:index/getThing:getThing", {"name": None}, {"uuid": None})
        },
        types={"ThingPartArgs": {"label": None}},
        config={"token": ConfigKey(("DEMO_TOKEN",), secret=True)},
    )


SMALL_SCHEMA: dict[str, Any] = {
    "name": "demo",
    "config": {
        "variables": {"token": {"type": "string", "secret": True, "defaultInfo": {"environment": ["DEMO_TOKEN"]}}}
    },
    "provider": {"inputProperties": {"token": {"type": "string", "secret": True}}},
    "resources": {
        "demo:index/thing:Thing": {
            "inputProperties": {
                "name": {"type": "string"},
                "password": {"type": "string", "secret": True},
                "parts": {"type": "array", "items": {"$ref": "#/types/demo:index/ThingPart:ThingPart"}},
            },
            "properties": {
                "name": {"type": "string"},
                "password": {"type": "string", "secret": True},
                "uuid": {"type": "string"},
            },
        }
    },
    "types": {"demo:index/ThingPart:ThingPart": {"type": "object", "properties": {"label": {"type": "string"}}}},
    "functions": {
        "demo:index/getThing:getThing": {
            "inputs": {"properties": {"name": {"type": "string"}}},
            "outputs": {"properties": {"uuid": {"type": "string"}}},
        },
        "pulumi:providers:demo/terraformConfig": {"inputs": {"properties": {}}, "outputs": {"properties": {}}},
    },
}


def schema_with(**paths: Any) -> dict[str, Any]:
    """SMALL_SCHEMA with `a__b__c=value` set (None: removed)."""
    schema = copy.deepcopy(SMALL_SCHEMA)
    for path, value in paths.items():
        *parents, last = path.split("__")
        node = schema
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return schema


THING = "resources__demo:index/thing:Thing"


def test_compare_finds_nothing_when_the_schema_has_all_the_sdk_uses_and_lists_the_extras() -> None:
    schema = schema_with(**{f"{THING}__properties__created": {"type": "string"}})
    assert compare(small_surface(), schema) == []
    assert extras(small_surface(), schema) == [
        "resource demo:index/thing:Thing output 'created': not used by the SDK",
        "function pulumi:providers:demo/terraformConfig: not used by the SDK",
    ]


def test_compare_reports_an_input_property_the_schema_lacks() -> None:
    schema = schema_with(**{f"{THING}__inputProperties__name": None})
    assert compare(small_surface(), schema) == ["resource demo:index/thing:Thing input 'name': not in the schema"]


def test_compare_reports_a_nested_type_property_the_schema_lacks() -> None:
    schema = schema_with(**{"types__demo:index/ThingPart:ThingPart__properties": {"title": {"type": "string"}}})
    assert compare(small_surface(), schema) == [
        "type demo:index/ThingPart:ThingPart (SDK ThingPartArgs) 'label': not in the schema"
    ]


def test_compare_reports_resource_and_function_tokens_the_schema_lacks() -> None:
    schema = schema_with(**{THING: None, "functions__demo:index/getThing:getThing": None})
    assert compare(small_surface(), schema) == [
        "resource demo:index/thing:Thing: not in the schema",
        "function demo:index/getThing:getThing: not in the schema",
    ]


def test_compare_reports_secrets_that_differ_either_way() -> None:
    schema = schema_with(
        **{
            f"{THING}__inputProperties__password": {"type": "string"},
            f"{THING}__properties__uuid": {"type": "string", "secret": True},
        }
    )
    assert compare(small_surface(), schema) == [
        "resource demo:index/thing:Thing input 'password': secret in the SDK, not in the schema",
        "resource demo:index/thing:Thing output 'uuid': secret in the schema, not in the SDK",
    ]


def test_compare_reports_a_config_key_with_another_environment_default_or_secrecy() -> None:
    schema = schema_with(**{"config__variables__token": {"type": "string", "defaultInfo": {"environment": ["TOKEN"]}}})
    assert compare(small_surface(), schema) == [
        "config 'token': environment default ['DEMO_TOKEN'] in the SDK, ['TOKEN'] in the schema",
        "config 'token': secret in the SDK, not in the schema",
    ]


def test_compare_reports_a_missing_config_key_and_provider_input() -> None:
    schema = schema_with(**{"config": {"variables": {}}, "provider": {}})
    assert compare(small_surface(), schema) == [
        "provider input 'token': not in the schema",
        "config 'token': not in the schema",
    ]


# --- describe_plugin -------------------------------------------------------------------------------

GO_VERSION_M = """\
/cache/pulumi-resource-time: go1.26.8
\tpath\tcluster-secrets.e2e/tools/terraform-bridged/cmd/pulumi-resource-time
\tmod\tcluster-secrets.e2e/tools/terraform-bridged\t(devel)\t
\tdep\tgithub.com/1Password/terraform-provider-onepassword/v2\tv2.2.1\th1:cHYp=
\tdep\tgithub.com/hashicorp/terraform-plugin-sdk/v2\tv2.36.1
\t=>\tgithub.com/pulumi/terraform-plugin-sdk/v2\tv2.0.0-20250923233607-7f1981c8674a\th1:bTwo=
\tdep\tgithub.com/hashicorp/terraform-provider-time\tv0.12.1\th1:IrpJ=
\tdep\tgithub.com/hashicorp/terraform-provider-time/shim\tv0.0.0-00010101000000-000000000000
\t=>\t./timeshim\t(devel)\t
\tdep\tgithub.com/pulumi/pulumi-terraform-bridge/v3\tv3.120.0\th1:D9R3=
\tbuild\t-trimpath=true
"""


def test_go_version_m_output_gives_the_main_module_and_dependency_versions_with_replacements() -> None:
    build = ps.parse_go_build(GO_VERSION_M)
    assert build is not None
    assert (build.main, build.version) == ("cluster-secrets.e2e/tools/terraform-bridged", "(devel)")
    assert build.deps["github.com/hashicorp/terraform-provider-time"] == "v0.12.1"
    assert build.deps["github.com/hashicorp/terraform-plugin-sdk/v2"] == (
        "v2.36.1, replaced by github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20250923233607-7f1981c8674a"
    )
    assert ps.parse_go_build("/tmp/x: not a Go binary\n") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("time", "bridged terraform-provider-time v0.12.1 (pulumi-terraform-bridge v3.120.0)"),
        ("onepassword", "bridged terraform-provider-onepassword v2.2.1 (pulumi-terraform-bridge v3.120.0)"),
        ("random", "Go binary of cluster-secrets.e2e/tools/terraform-bridged (devel)"),
    ],
)
def test_describe_plugin_names_the_bridged_terraform_provider_of_the_plugins_own_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    plugin = tmp_path / f"pulumi-resource-{name}"
    plugin.write_bytes(b"\x7fELF\0\0binary")
    monkeypatch.setattr(ps, "go_build", lambda path: ps.parse_go_build(GO_VERSION_M))
    assert ps.describe_plugin(plugin) == expected


def test_describe_plugin_recognises_the_suites_stand_in_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ps, "go_build", lambda path: None)
    standin = tmp_path / "pulumi-resource-time"
    standin.write_text(f"#!/usr/bin/env python3\n# {MARKER}: time\n")
    assert ps.describe_plugin(standin) == "STAND-IN (e2e/standin_providers.py)"
    other = tmp_path / "pulumi-resource-other"
    other.write_text("#!/bin/sh\nexec true\n")
    assert ps.describe_plugin(other) == "not a Go binary (or `go` is not on PATH)"

"""Generated objects and Helm values checked against the pinned upstream schemas and chart values."""

import json
from typing import Any

import jsonschema
import pytest
import yaml

from components.argocd import argocd_external_secret, argocd_values
from components.config import OnePasswordAccess
from components.connect import connect_values
from components.external_secrets import cluster_secret_store, eso_values, namespace_conditions, store_provider
from components.versions import eso_api_version, parse_chart_version
from tests.conftest import Run, run_stack, upstream

ESO_VERSIONS = {"0.12.1": "v1beta1", "2.9.0": "v1"}


def schema(*parts: str) -> dict[str, Any]:
    return json.loads(upstream(*parts).read_text())


def unknown_fields(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not define. Kubernetes schemas never forbid extra fields (the API
    server prunes them silently), so a misspelt field would pass plain validation."""
    if isinstance(value, dict) and ("properties" in node or isinstance(node.get("additionalProperties"), dict)):
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        found = []
        for key, item in value.items():
            if key in properties:
                found += unknown_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(item, extra, f"{path}.{key}")
            else:
                found.append(f"{path}.{key}")
        return found
    if isinstance(value, list) and "items" in node:
        return [f for item in value for f in unknown_fields(item, node["items"], f"{path}[]")]
    return []


def assert_valid(manifest: dict[str, Any], crd_schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(crd_schema).validate(manifest)
    assert unknown_fields(manifest, crd_schema) == []


TOKEN_REF = {"name": "onepassword-connect-token", "key": "token", "namespace": "eso"}
CONNECT_HOST = "http://onepassword-connect.onepassword.svc.cluster.local:8080"


def store_manifest(eso_version: str, access: OnePasswordAccess = "connect", **changes: Any) -> dict[str, Any]:
    arguments = {
        "name": "one-secretstore",
        "api_version": eso_api_version(parse_chart_version(eso_version)),
        "provider": store_provider(access, CONNECT_HOST, {"HomeLab": 1}, TOKEN_REF),
        "conditions": namespace_conditions("one-secretstore", ["apps"]),
    }
    return cluster_secret_store(**{**arguments, **changes})


def test_a_store_with_a_service_account_matches_eso_2_9_0s_crd():
    """ESO's onepasswordSDK provider (0.17.0 on): a service account token Secret, one vault."""
    manifest = store_manifest("2.9.0", "service-account")
    assert manifest["spec"]["provider"] == {
        "onepasswordSDK": {"vault": "HomeLab", "auth": {"serviceAccountSecretRef": TOKEN_REF}}
    }
    assert_valid(manifest, schema("eso", "2.9.0", "clustersecretstore.v1.schema.json"))
    # ESO 0.12.1 has no such provider (the config model refuses the pair: tests/test_access.py).
    old = schema("eso", "0.12.1", "clustersecretstore.v1beta1.schema.json")
    assert unknown_fields(manifest | {"apiVersion": "external-secrets.io/v1beta1"}, old) != []


@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_cluster_secret_store_matches_the_crd(eso_version, api):
    manifest = store_manifest(eso_version)
    assert manifest["apiVersion"] == f"external-secrets.io/{api}"
    assert_valid(manifest, schema("eso", eso_version, f"clustersecretstore.{api}.schema.json"))


@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_an_open_store_matches_the_crd_too(eso_version, api):
    manifest = store_manifest(eso_version, conditions=None)
    assert "conditions" not in manifest["spec"]
    assert_valid(manifest, schema("eso", eso_version, f"clustersecretstore.{api}.schema.json"))


@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_the_store_schema_check_can_fail(eso_version, api):
    crd_schema = schema("eso", eso_version, f"clustersecretstore.{api}.schema.json")
    with pytest.raises(jsonschema.ValidationError):
        bad_vaults = store_provider("connect", CONNECT_HOST, {"HomeLab": "1"}, TOKEN_REF)
        jsonschema.Draft202012Validator(crd_schema).validate(store_manifest(eso_version, provider=bad_vaults))
    misspelt = store_manifest(eso_version)
    misspelt["spec"]["provider"]["onepassword"]["connectHosts"] = "x"
    assert unknown_fields(misspelt, crd_schema) == [".spec.provider.onepassword.connectHosts"]


@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_argocd_external_secret_matches_the_crd(eso_version, api):
    manifest = argocd_external_secret(
        f"external-secrets.io/{api}", "argocd", "one-secretstore", "argocd-secret", "password-0.secretkey-0"
    )
    assert_valid(manifest, schema("eso", eso_version, f"externalsecret.{api}.schema.json"))


@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_objects_the_program_registers_match_the_crds(eso_version, api):
    assert_eso_objects_valid(run_stack(config={"esoChartVersion": eso_version}), eso_version, api)


def assert_eso_objects_valid(run: Run, eso_version: str, api: str) -> None:
    """The store and ExternalSecret a run registered, against ESO `eso_version`'s CRD schemas."""
    for kind, file in (("ClusterSecretStore", "clustersecretstore"), ("ExternalSecret", "externalsecret")):
        registered = run.one(f"kubernetes:external-secrets.io/{api}:{kind}").plain
        assert_valid(registered, schema("eso", eso_version, f"{file}.{api}.schema.json"))


@pytest.mark.parametrize("eso_version", ESO_VERSIONS)
def test_eso_values_match_the_chart_schema(eso_version):
    chart_schema = schema("eso", eso_version, "chart", "values.schema.json")
    jsonschema.Draft202012Validator(chart_schema).validate(eso_values())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(chart_schema).validate({"installCRDs": "yes"})


def test_connect_values_match_the_2_4_1_chart_schema():
    # Its $schema is draft-07, which python-jsonschema does not pick by itself (upstream/README.md).
    chart_schema = schema("connect", "2.4.1", "chart", "values.schema.json")
    jsonschema.Draft7Validator(chart_schema).validate(connect_values("op-credentials", "1password-credentials.json"))


def paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict) and value:
        return {p for key, item in value.items() for p in paths(item, f"{prefix}.{key}" if prefix else key)}
    return {prefix}


def chart_defaults(*parts: str) -> dict[str, Any]:
    return yaml.safe_load(upstream(*parts).read_text())


@pytest.mark.parametrize("connect_version", ["1.17.0", "2.4.1"])
def test_connect_values_are_chart_values(connect_version):
    # 1.17.0 has no values schema: every key we set must be one the chart defines.
    defaults = paths(chart_defaults("connect", connect_version, "chart", "values.yaml"))
    assert paths(connect_values("op-credentials", "1password-credentials.json")) <= defaults


def test_argocd_values_are_chart_values():
    defaults = paths(chart_defaults("argo-cd", "10.1.1", "chart", "values.yaml"))
    ours = paths(argocd_values(create_secret=True))
    # configs.params takes free-form keys (FACTS.md, Argo CD chart); annotations are a free map.
    free_form = {"configs.params.server.insecure", "configs.secret.annotations.helm.sh/resource-policy"}
    assert ours - free_form <= defaults
    assert {"configs.params.create", "configs.secret.annotations"} <= defaults


# GitOps: the root Application against Argo CD's CRD, the repository ExternalSecret against ESO's.


def test_the_root_application_matches_the_crd():
    from components.gitops import root_application

    crd_schema = schema("argo-cd", "10.1.1", "application.v1alpha1.schema.json")
    manifest = root_application("argocd", "https://github.com/me/gitops.git", "clusters/homelab", "HEAD")
    assert_valid(manifest, crd_schema)
    misspelt = root_application("argocd", "https://github.com/me/gitops.git", ".", "HEAD")
    misspelt["spec"]["syncPolicy"]["automated"]["selfheal"] = True
    assert unknown_fields(misspelt, crd_schema) == [".spec.syncPolicy.automated.selfheal"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(crd_schema).validate({**manifest, "spec": {"project": "default"}})


@pytest.mark.parametrize("kind", ["https", "ssh"])
@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_the_repository_external_secret_matches_the_crd(eso_version, api, kind):
    from components.gitops import repository_external_secret

    manifest = repository_external_secret(
        f"external-secrets.io/{api}", "argocd", "one-secretstore", "https://github.com/me/gitops.git", kind, "item"
    )
    assert_valid(manifest, schema("eso", eso_version, f"externalsecret.{api}.schema.json"))


@pytest.mark.parametrize(("eso_version", "api"), ESO_VERSIONS.items())
def test_gitops_objects_the_program_registers_match_the_crds(eso_version, api):
    config = {
        "esoChartVersion": eso_version,
        "gitopsRepoURL": "https://github.com/me/gitops.git",
        "gitopsCredentialsItem": "gitops-repository",
    }
    run = run_stack(config=config)
    application = run.one("kubernetes:argoproj.io/v1alpha1:Application").plain
    assert_valid(application, schema("argo-cd", "10.1.1", "application.v1alpha1.schema.json"))
    external_secrets = run.by_type(f"kubernetes:external-secrets.io/{api}:ExternalSecret")
    assert len(external_secrets) == 2
    for registered in external_secrets:
        assert_valid(registered.plain, schema("eso", eso_version, f"externalsecret.{api}.schema.json"))


def test_argocd_values_with_the_in_cluster_secret_are_chart_values():
    defaults = paths(chart_defaults("argo-cd", "10.1.1", "chart", "values.yaml"))
    ours = paths(argocd_values(create_secret=True, cluster_annotations={"cluster-secrets.io/stack": "homelab"}))
    # configs.clusterCredentials is a free map of clusters (chart template argocd-configs/cluster-secrets.yaml).
    free_form = ("configs.params.", "configs.secret.annotations.", "configs.clusterCredentials.")
    assert {p for p in ours if not p.startswith(free_form)} <= defaults
    assert "configs.clusterCredentials" in defaults

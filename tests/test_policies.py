"""The policy pack: each policy run on resource arguments that pass and that fail, and on
everything the homelab stack registers."""

import sys
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from tests.conftest import ROOT, Run, run_stack

sys.path.insert(0, str(ROOT / "policies"))
from cluster_secrets_policies import POLICIES  # noqa: E402

BY_NAME = {policy.name: policy for policy in POLICIES}
RELEASE = "kubernetes:helm.sh/v3:Release"
STORE = "kubernetes:external-secrets.io/v1:ClusterSecretStore"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1beta1:ExternalSecret"


def violations(
    policy: str | ResourceValidationPolicy, resource_type: str, props: dict[str, Any], name: str = "r"
) -> list[str]:
    chosen = BY_NAME[policy] if isinstance(policy, str) else policy
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    args = ResourceValidationArgs(
        resource_type, props, f"urn:pulumi:s::p::{resource_type}::{name}", name, options, None
    )
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    chosen.validate(args, report)
    return found


def test_the_pack_has_the_five_policies_at_their_levels():
    levels = {policy.name: policy.enforcement_level for policy in POLICIES}
    assert levels == {
        "helm-release-pinned-version": EnforcementLevel.MANDATORY,
        "no-credentials-in-helm-values": EnforcementLevel.MANDATORY,
        "connect-service-cluster-ip": EnforcementLevel.MANDATORY,
        "cluster-secret-store-namespace-conditions": EnforcementLevel.ADVISORY,
        "argocd-secret-kept-and-labelled": EnforcementLevel.MANDATORY,
    }


@pytest.mark.parametrize("version", ["1.17.0", "10.1.1", "2.3.0-rc.1", "v0.12.1"])
def test_pinned_versions_pass(version):
    assert violations("helm-release-pinned-version", RELEASE, {"chart": "connect", "version": version}) == []


@pytest.mark.parametrize("version", [None, "", "latest", "^1.17.0", "1.x", "~2.9", ">=0.12"])
def test_unpinned_versions_fail(version):
    found = violations("helm-release-pinned-version", RELEASE, {"chart": "argo-cd", "version": version}, name="argocd")
    assert len(found) == 1 and "'argo-cd' (argocd) is not pinned" in found[0]


def test_helm_values_without_credentials_pass():
    values = {
        "connect": {"credentialsName": "op-credentials", "credentialsKey": "1password-credentials.json"},
        "configs": {"secret": {"createSecret": False, "annotations": {"helm.sh/resource-policy": "keep"}}},
    }
    assert violations("no-credentials-in-helm-values", RELEASE, {"values": values}) == []


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"connect": {"credentials": '{"verifier": {}}'}}, "connect.credentials"),
        ({"connect": {"credentials_base64": "eyJ2ZXJpZmllciI6IHt9fQ=="}}, "connect.credentials_base64"),
        (
            {"configs": {"secret": {"argocdServerAdminPassword": "$2a$10$hash"}}},
            "configs.secret.argocdServerAdminPassword",
        ),
        ({"operator": {"token": {"value": "abc"}}}, "operator.token.value"),
        ({"configs": {"secret": {"githubSecret": "s3cret"}}}, "configs.secret.githubSecret"),
        ({"extraEnv": [{"name": "X", "token": "abc"}]}, "extraEnv[0].token"),
    ],
)
def test_credentials_in_helm_values_fail_naming_the_path_not_the_value(values, path):
    found = violations("no-credentials-in-helm-values", RELEASE, {"values": values})
    assert len(found) == 1 and f"at {path}:" in found[0]
    secret = next(iter(_leaves(values)))
    assert secret not in found[0]


def _leaves(value: Any):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str) and value != "X":
        yield value


@pytest.mark.parametrize(
    ("version", "service_type", "fails"),
    [
        ("1.17.0", "ClusterIP", False),
        ("1.17.0", None, True),  # the 1.x default is NodePort
        ("1.17.0", "NodePort", True),
        ("2.4.1", None, False),  # ClusterIP by default from 2.0.0
        ("2.4.1", "LoadBalancer", True),
    ],
)
def test_connect_must_be_cluster_ip(version, service_type, fails):
    values = {"connect": {"serviceType": service_type}} if service_type else {}
    found = violations(
        "connect-service-cluster-ip", RELEASE, {"chart": "connect", "version": version, "values": values}
    )
    assert bool(found) is fails


def test_a_connect_service_managed_directly_must_be_cluster_ip():
    service = {"metadata": {"name": "onepassword-connect"}, "spec": {"type": "NodePort"}}
    assert violations("connect-service-cluster-ip", "kubernetes:core/v1:Service", service)
    service["spec"]["type"] = "ClusterIP"
    assert violations("connect-service-cluster-ip", "kubernetes:core/v1:Service", service) == []


def test_other_charts_may_use_any_service_type():
    props = {"chart": "argo-cd", "version": "10.1.1", "values": {"server": {"service": {"type": "NodePort"}}}}
    assert violations("connect-service-cluster-ip", RELEASE, props) == []


def test_a_store_without_conditions_is_flagged():
    assert violations("cluster-secret-store-namespace-conditions", STORE, {"spec": {"provider": {}}})
    conditions = {"spec": {"conditions": [{"namespaces": ["argocd"]}], "provider": {}}}
    assert violations("cluster-secret-store-namespace-conditions", STORE, conditions) == []


def argocd_external_secret(annotations: dict, labels: dict) -> dict:
    return {
        "metadata": {"name": "argocd-secret"},
        "spec": {
            "target": {
                "name": "argocd-secret",
                "template": {"metadata": {"annotations": annotations, "labels": labels}},
            }
        },
    }


def test_the_argocd_external_secret_must_keep_and_label_the_secret():
    keep, part_of = {"helm.sh/resource-policy": "keep"}, {"app.kubernetes.io/part-of": "argocd"}
    assert violations("argocd-secret-kept-and-labelled", EXTERNAL_SECRET, argocd_external_secret(keep, part_of)) == []
    no_keep = violations("argocd-secret-kept-and-labelled", EXTERNAL_SECRET, argocd_external_secret({}, part_of))
    assert len(no_keep) == 1 and "helm.sh/resource-policy: keep" in no_keep[0]
    no_label = violations("argocd-secret-kept-and-labelled", EXTERNAL_SECRET, argocd_external_secret(keep, {}))
    assert len(no_label) == 1 and "app.kubernetes.io/part-of" in no_label[0]
    other = {"metadata": {"name": "app-secret"}, "spec": {"target": {"name": "app-secret"}}}
    assert violations("argocd-secret-kept-and-labelled", EXTERNAL_SECRET, other) == []


@pytest.mark.parametrize("stack", ["homelab", "homelab-2"])
def test_what_the_stacks_register_passes_every_policy(stack, request):
    if stack == "homelab-2":
        from tests.test_second_cluster import run_second

        run = run_second()
    else:
        run = run_stack()
    assert_passes_every_policy(run)


def assert_passes_every_policy(run: Run) -> None:
    for registration in run.registrations:
        for policy in POLICIES:
            assert violations(policy, registration.type, registration.plain, registration.name) == [], (
                policy.name,
                registration.name,
            )


def test_an_open_store_draws_the_advisory():
    run = run_stack(config={"storeOpenToAllNamespaces": True})
    store = run.named("external-secrets-store")
    assert violations("cluster-secret-store-namespace-conditions", store.type, store.plain, store.name)

"""Chart values users can extend: the merge, the paths the program owns, the charts' schemas, the policy."""

import json
from typing import Any

import jsonschema
import pytest
import yaml

from components.argocd import argocd_values
from components.chart_values import OWNED_VALUES, merge_values, owned_conflicts
from components.config import PROJECT
from components.connect import connect_values
from components.errors import ConfigError
from components.external_secrets import eso_values
from tests.conftest import fakes, run_stack, upstream
from tests.test_policies import violations

# The README's example: an ingress for Argo CD (argo-cd chart 10.1.1, server.ingress).
INGRESS = {
    "global": {"domain": "argocd.homelab.example"},
    "server": {"ingress": {"enabled": True, "ingressClassName": "nginx", "tls": True}},
}
# What the end-to-end stack sets: ESO without its webhooks (and without the CRD conversion that calls them).
ESO_WITHOUT_WEBHOOKS = {"webhook": {"create": False}, "certController": {"create": False}}


# The merge.


def test_maps_merge_key_by_key_and_anything_else_replaces():
    ours = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    theirs = {"a": {"c": [3], "e": {"f": True}}, "d": None, "g": 0}
    assert merge_values(ours, theirs) == {"a": {"b": 1, "c": [3], "e": {"f": True}}, "d": None, "g": 0}


def test_a_map_replaces_a_scalar_and_a_scalar_replaces_a_map():
    assert merge_values({"a": 1, "b": {"c": 1}}, {"a": {"x": 1}, "b": "flat"}) == {"a": {"x": 1}, "b": "flat"}


def test_the_merge_changes_neither_argument():
    ours, theirs = {"a": {"b": 1}}, {"a": {"c": {"d": 1}}}
    merged = merge_values(ours, theirs)
    merged["a"]["c"]["d"] = 2
    assert ours == {"a": {"b": 1}} and theirs == {"a": {"c": {"d": 1}}}


def test_no_user_values_are_exactly_the_programs():
    ours = argocd_values(create_secret=False)
    assert merge_values(ours, {}) == ours


# Owned paths.


def test_every_path_the_program_sets_for_the_hand_off_is_owned():
    owned = OWNED_VALUES
    assert ("configs", "secret") in owned["argocdValues"]
    assert {("connect", "credentialsName"), ("connect", "credentialsKey"), ("connect", "serviceType")} <= set(
        owned["connectValues"]
    )
    assert {("installCRDs",), ("crds", "annotations")} <= set(owned["esoValues"])


@pytest.mark.parametrize(
    ("key", "values", "path"),
    [
        ("argocdValues", {"configs": {"secret": {"createSecret": True}}}, "configs.secret.createSecret"),
        ("argocdValues", {"configs": {"secret": {"annotations": {}}}}, "configs.secret.annotations"),
        ("argocdValues", {"configs": {"secret": {"extra": {"k": "v"}}}}, "configs.secret.extra.k"),
        ("argocdValues", {"configs": "flat"}, "configs would replace configs.secret"),
        ("argocdValues", {"crds": {"keep": False}}, "crds.keep"),
        ("argocdValues", {"namespaceOverride": "elsewhere"}, "namespaceOverride"),
        ("argocdValues", {"configs": {"clusterCredentials": {"in-cluster": {"server": "x"}}}}, "in-cluster.server"),
        ("connectValues", {"connect": {"serviceType": "NodePort"}}, "connect.serviceType"),
        ("connectValues", {"connect": {"credentialsName": "mine"}}, "connect.credentialsName"),
        ("connectValues", {"connect": {"credentialsKey": "k"}}, "connect.credentialsKey"),
        ("connectValues", {"connect": {"credentials": "{}"}}, "connect.credentials"),
        ("connectValues", {"connect": {"api": {"httpPort": 80}}}, "connect.api.httpPort"),
        ("esoValues", {"installCRDs": False}, "installCRDs"),
        ("esoValues", {"crds": {"annotations": {"a": "b"}}}, "crds.annotations.a"),
        ("esoValues", {"crds": None}, "crds would replace crds.annotations"),
    ],
)
def test_an_owned_path_is_refused_at_preview_naming_the_key_and_the_path(key, values, path):
    monitor = fakes()
    with pytest.raises(ConfigError) as error:
        run_stack(config={key: values}, monitor=monitor)
    line = next(line for line in str(error.value).splitlines() if f"{PROJECT}:{key}:" in line)
    assert path in line and "set by cluster-secrets" in line
    assert monitor.registrations == [] and monitor.invokes == []


def test_a_refusal_names_paths_never_values():
    secret_looking = "do-not-echo-this-value"
    lines = list(owned_conflicts({"configs": {"secret": {"extra": secret_looking}}}, OWNED_VALUES["argocdValues"]))
    assert lines and not any(secret_looking in line for line in lines)


def test_values_beside_owned_paths_are_accepted():
    params = {"configs": {"params": {"server.basehref": "/argocd", "server.insecure": True}}}
    # server.insecure is ours (FACTS.md, the real 1Password provider: a TLS argocd-server writes its own
    # certificate into argocd-secret, and ESO takes it out on every sync); its neighbours are not.
    (refused,) = owned_conflicts(params, OWNED_VALUES["argocdValues"])
    assert refused.startswith("configs.params.server.insecure is set by cluster-secrets: without it argocd-server")
    assert list(owned_conflicts({"configs": {"params": {"server.basehref": "/x"}}}, OWNED_VALUES["argocdValues"])) == []
    assert list(owned_conflicts({"connect": {"api": {"resources": {}}}}, OWNED_VALUES["connectValues"])) == []
    assert list(owned_conflicts({"crds": {"conversion": {"enabled": False}}}, OWNED_VALUES["esoValues"])) == []


def test_every_refusal_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        run_stack(config={"esoValues": {"installCRDs": False}, "argocdValues": {"crds": {"install": False}}})
    assert str(error.value).count("set by cluster-secrets") == 2


# Overrides that are accepted reach the releases, merged over the program's values.


def test_an_ingress_for_argo_cd_is_merged_over_the_programs_values():
    run = run_stack(config={"argocdValues": INGRESS})
    values = run.named("argocd-release").plain["values"]
    assert values == merge_values(argocd_values(create_secret=True), INGRESS)
    assert values["server"]["ingress"]["enabled"] is True
    assert values["configs"]["secret"]["createSecret"] is True  # still the hand-off's


def test_the_reference_defaults_can_be_changed():
    run = run_stack(
        config={"argocdValues": {"dex": {"enabled": True}, "configs": {"params": {"server.basehref": "/argocd"}}}}
    )
    values = run.named("argocd-release").plain["values"]
    assert values["dex"] == {"enabled": True}
    assert values["configs"]["params"] == {"server.insecure": True, "server.basehref": "/argocd"}


def test_eso_values_switch_the_webhooks_off():
    run = run_stack(config={"esoValues": ESO_WITHOUT_WEBHOOKS})
    assert run.named("external-secrets-release").plain["values"] == {
        "installCRDs": True,
        "crds": {"annotations": {"helm.sh/resource-policy": "keep"}},
        **ESO_WITHOUT_WEBHOOKS,
    }


def test_connect_values_add_to_ours():
    extra = {"connect": {"api": {"resources": {"limits": {"memory": "256Mi"}}}}}
    run = run_stack(config={"connectValues": extra})
    values = run.named("connect-release").plain["values"]
    assert values["connect"]["serviceType"] == "ClusterIP"
    assert values["connect"]["api"] == {"resources": {"limits": {"memory": "256Mi"}}}


@pytest.mark.parametrize("key", ["connectValues", "esoValues", "argocdValues"])
@pytest.mark.parametrize("value", ["ingress", ["a"], 3])
def test_values_must_be_a_map(key, value):
    with pytest.raises(ConfigError, match=f"{PROJECT}:{key}: .*input should be a valid dictionary"):
        run_stack(config={key: value})


# The charts' schemas. Checked here, not in the program: the program has no chart at run time, and
# Helm validates the merged values against the chart's values.schema.json at install anyway.


def schema(*parts: str) -> dict[str, Any]:
    return json.loads(upstream(*parts).read_text())


@pytest.mark.parametrize("eso_version", ["0.12.1", "2.9.0"])
def test_merged_eso_values_match_the_chart_schema(eso_version):
    validator = jsonschema.Draft202012Validator(schema("eso", eso_version, "chart", "values.schema.json"))
    validator.validate(merge_values(eso_values(), ESO_WITHOUT_WEBHOOKS))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(merge_values(eso_values(), {"webhook": {"create": "no"}}))


def test_merged_connect_values_match_the_2_4_1_chart_schema():
    # draft-07, named explicitly (upstream/README.md).
    validator = jsonschema.Draft7Validator(schema("connect", "2.4.1", "chart", "values.schema.json"))
    ours = connect_values("op-credentials", "1password-credentials.json")
    validator.validate(merge_values(ours, {"operator": {"authMethod": "connect"}}))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(merge_values(ours, {"operator": {"authMethod": "token"}}))


def value_paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict) and value:
        return {p for key, item in value.items() for p in value_paths(item, f"{prefix}.{key}" if prefix else key)}
    return {prefix}


def test_the_ingress_example_uses_argo_cd_chart_values():
    # The argo-cd chart has no values.schema.json: every key of the example must be one its values.yaml defines.
    defaults = value_paths(yaml.safe_load(upstream("argo-cd", "10.1.1", "chart", "values.yaml").read_text()))
    assert value_paths(INGRESS) <= defaults


@pytest.mark.parametrize(
    ("key", "chart"),
    [
        ("connectValues", ("connect", "1.17.0")),
        ("connectValues", ("connect", "2.4.1")),
        ("esoValues", ("eso", "0.12.1")),
        ("esoValues", ("eso", "2.9.0")),
        ("argocdValues", ("argo-cd", "10.1.1")),
    ],
)
def test_owned_paths_are_paths_of_the_chart(key, chart):
    values = yaml.safe_load(upstream(*chart, "chart", "values.yaml").read_text())
    for path in OWNED_VALUES[key]:
        node = values
        for part in path:
            # A free-form map (configs.clusterCredentials), or configs.params, whose keys go into
            # argocd-cmd-params-cm and are no longer listed in values.yaml (FACTS.md, versions).
            if node == {} or path[:2] == ("configs", "params"):
                break
            assert isinstance(node, dict) and part in node, f"{'.'.join(path)} is not a value of {chart}"
            node = node[part]


# Credentials in user values: the policy pack refuses them at `pulumi preview --policy-pack`.


def test_a_credential_in_user_values_is_caught_by_the_policy():
    run = run_stack(config={"argocdValues": {"configs": {"repositories": {"r": {"password": "hunter2"}}}}})
    release = run.named("argocd-release")
    found = violations("no-credentials-in-helm-values", release.type, release.plain, release.name)
    assert found and "configs.repositories.r.password" in found[0]
    assert "hunter2" not in found[0]

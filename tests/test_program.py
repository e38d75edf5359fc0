"""The whole program under mocks: inventory, values, wiring, secrets, stability, hand-off."""

import base64
import json

import bcrypt
import pytest

from cluster_secrets import offline
from cluster_secrets.offline import FAKE_TIMESTAMP, plaintext_strings
from components import outputs
from components.admin_secret import ADMIN_ITEM, ADMIN_ITEM_PASSWORD, ARGOCD_SECRET_KEYS, SECRET_ITEM, digest
from components.connect import CREDENTIALS_DIGEST, credentials_digest
from tests.conftest import (
    CANARIES,
    CANARY_TOKEN,
    CREDENTIALS_TEXT,
    Run,
    assert_no_plaintext,
    default_vaults,
    run_stack,
)

STORE = "kubernetes:external-secrets.io/v1beta1:ClusterSecretStore"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1beta1:ExternalSecret"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"

# (type, name, parent) of everything the homelab stack registers on a new stack.
HOMELAB_INVENTORY = {
    ("pulumi:providers:kubernetes", "cluster", "cluster-secrets-homelab"),
    ("cluster-secrets:index:OnePasswordConnect", "connect", "cluster-secrets-homelab"),
    ("kubernetes:core/v1:Namespace", "connect-namespace", "connect"),
    (SECRET, "connect-credentials", "connect"),
    (RELEASE, "connect-release", "connect"),
    ("cluster-secrets:index:ExternalSecrets", "external-secrets", "cluster-secrets-homelab"),
    ("kubernetes:core/v1:Namespace", "external-secrets-namespace", "external-secrets"),
    (SECRET, "external-secrets-connect-token", "external-secrets"),
    (RELEASE, "external-secrets-release", "external-secrets"),
    (STORE, "external-secrets-store", "external-secrets"),
    ("cluster-secrets:index:ArgoCD", "argocd", "cluster-secrets-homelab"),
    ("kubernetes:core/v1:Namespace", "argocd-namespace", "argocd"),
    ("random:index/randomPassword:RandomPassword", "argocd-admin-password", "argocd"),
    ("random:index/randomBytes:RandomBytes", "argocd-admin-password-salt", "argocd"),
    ("time:index/static:Static", "argocd-admin-password-mtime", "argocd"),
    ("random:index/randomBytes:RandomBytes", "argocd-server-secretkey", "argocd"),
    ("onepassword:index/item:Item", "argocd-admin-item", "argocd"),
    ("onepassword:index/item:Item", "argocd-secret-item", "argocd"),
    (EXTERNAL_SECRET, "argocd-external-secret", "argocd"),
    (RELEASE, "argocd-release", "argocd"),
}


def parent_name(urn: str) -> str:
    return urn.split("::")[-1]


def depends_on(run: Run, name: str, *others: str) -> bool:
    dependencies = set(run.named(name).dependencies)
    return all(run.named(other).urn in dependencies for other in others)


def test_homelab_inventory(homelab):
    registered = {(r.type, r.name, parent_name(r.parent)) for r in homelab.registrations}
    assert registered == HOMELAB_INVENTORY
    assert len(homelab.registrations) == len(HOMELAB_INVENTORY)  # no duplicates either
    # The one read: this stack's own previous outputs (auto mode).
    assert [(r.type, r.name) for r in homelab.monitor.reads] == [
        ("pulumi:pulumi:StackReference", "organization/cluster-secrets/homelab")
    ]


def test_every_kubernetes_resource_uses_the_explicit_provider(homelab):
    provider = homelab.one("pulumi:providers:kubernetes")
    assert provider.plain["context"] == "homelab"
    assert "kubeconfig" not in provider.plain  # empty path: the usual lookup, on the named context
    kubernetes = [r for r in homelab.registrations if r.type.startswith("kubernetes:")]
    assert len(kubernetes) == 10
    for resource in kubernetes:
        assert resource.provider.startswith(provider.urn + "::"), resource.name


def test_stack_file_disables_the_default_kubernetes_provider():
    from tests.conftest import stack_config

    assert json.loads(stack_config()["pulumi:disable-default-providers"]) == ["kubernetes"]


def test_namespaces(homelab):
    names = {r.name: r.plain["metadata"]["name"] for r in homelab.by_type("kubernetes:core/v1:Namespace")}
    assert names == {
        "connect-namespace": "onepassword",
        "external-secrets-namespace": "eso",
        "argocd-namespace": "argocd",
    }


def test_releases_are_pinned_to_the_configured_charts(homelab):
    releases = {r.name: r.plain for r in homelab.by_type(RELEASE)}
    summary = {
        name: (r["name"], r["chart"], r["version"], r["repositoryOpts"]["repo"], r["namespace"])
        for name, r in releases.items()
    }
    assert summary == {
        "connect-release": (
            "connect",
            "connect",
            "1.17.0",
            "https://1password.github.io/connect-helm-charts",
            "onepassword",
        ),
        "external-secrets-release": (
            "external-secrets",
            "external-secrets",
            "0.12.1",
            "https://charts.external-secrets.io",
            "eso",
        ),
        "argocd-release": ("argocd", "argo-cd", "10.1.1", "https://argoproj.github.io/argo-helm", "argocd"),
    }


def test_connect_uses_our_secret_behind_a_cluster_ip(homelab):
    values = homelab.named("connect-release").plain["values"]
    assert values == {
        "connect": {
            "credentialsName": "op-credentials",
            "credentialsKey": "1password-credentials.json",
            "serviceType": "ClusterIP",
            "podAnnotations": {CREDENTIALS_DIGEST: credentials_digest(CREDENTIALS_TEXT, CANARY_TOKEN)},
        }
    }
    assert depends_on(homelab, "connect-release", "connect-credentials")


def test_connect_restarts_when_its_credentials_or_token_change(homelab):
    """FACTS.md (the real 1Password provider): Connect reads its credentials at start only."""
    annotations = homelab.named("connect-release").inputs["values"]["connect"]["podAnnotations"]
    assert not offline.is_secret(annotations[CREDENTIALS_DIGEST])  # a digest, plain in the release's values
    vaults = default_vaults()
    vaults["InitHomeLab"]["onepassword-connect-token"] = {"password": "another-token"}
    rotated = run_stack(vaults=vaults).named("connect-release").plain["values"]["connect"]["podAnnotations"]
    assert rotated[CREDENTIALS_DIGEST] != annotations[CREDENTIALS_DIGEST]
    assert credentials_digest(CREDENTIALS_TEXT, "another-token") == rotated[CREDENTIALS_DIGEST]
    assert credentials_digest(CREDENTIALS_TEXT + " ", CANARY_TOKEN) != annotations[CREDENTIALS_DIGEST]


def test_the_cluster_provider_changes_secrets_in_place(homelab):
    """A Secret replaced is deleted before its new copy exists (FACTS.md, the real 1Password provider)."""
    assert homelab.one("pulumi:providers:kubernetes", "cluster").plain["enableSecretMutable"] == "true"


def test_eso_release_keeps_its_crds(homelab):
    values = homelab.named("external-secrets-release").plain["values"]
    assert values == {"installCRDs": True, "crds": {"annotations": {"helm.sh/resource-policy": "keep"}}}


def test_argocd_values_of_the_reference_setup(homelab):
    values = homelab.named("argocd-release").plain["values"]
    assert values == {
        "dex": {"enabled": False},
        "notifications": {"enabled": False},
        "configs": {
            "params": {"server.insecure": True},
            "secret": {"createSecret": True, "annotations": {"helm.sh/resource-policy": "keep"}},
        },
    }


def test_cluster_secret_store_spec(homelab):
    store = homelab.named("external-secrets-store").plain
    assert (store["apiVersion"], store["kind"]) == ("external-secrets.io/v1beta1", "ClusterSecretStore")
    assert store["metadata"] == {
        "name": "one-secretstore",
        "annotations": {
            "pulumi.com/waitFor": "condition=Ready",
            "pulumi.com/timeoutSeconds": "300",
            "pulumi.com/patchForce": "true",
        },
    }
    assert store["spec"] == {
        # Only namespaces labelled for this store may use it; the program labels Argo CD's.
        "conditions": [{"namespaceSelector": {"matchLabels": {"cluster-secrets.io/secret-store": "one-secretstore"}}}],
        "provider": {
            "onepassword": {
                "connectHost": "http://onepassword-connect.onepassword.svc.cluster.local:8080",
                "vaults": {"HomeLab": 1},
                "auth": {
                    "secretRef": {
                        "connectTokenSecretRef": {
                            "name": "onepassword-connect-token",
                            "key": "token",
                            "namespace": "eso",
                        }
                    }
                },
            }
        },
    }


def test_store_waits_for_eso_connect_and_the_token(homelab):
    assert depends_on(
        homelab,
        "external-secrets-store",
        "external-secrets-release",
        "connect-release",
        "external-secrets-connect-token",
    )


def test_external_secret_for_argocd(homelab):
    external_secret = homelab.named("argocd-external-secret").plain
    assert external_secret["metadata"] == {
        "name": "argocd-secret",
        "namespace": "argocd",
        "annotations": {
            "pulumi.com/waitFor": "condition=Ready",
            "pulumi.com/timeoutSeconds": "300",
            "force-sync": "password-0.secretkey-0",
            "pulumi.com/patchForce": "true",
        },
    }
    spec = external_secret["spec"]
    assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "one-secretstore"}
    assert spec["target"] == {
        "name": "argocd-secret",
        "creationPolicy": "Owner",
        "template": {
            "metadata": {
                "labels": {"app.kubernetes.io/name": "argocd-secret", "app.kubernetes.io/part-of": "argocd"},
                "annotations": {"helm.sh/resource-policy": "keep"},
            }
        },
    }
    assert spec["data"] == [
        {"secretKey": key, "remoteRef": {"key": "argocd-secret", "property": key}}
        for key in ("admin.password", "admin.passwordMtime", "server.secretkey")
    ]
    assert depends_on(homelab, "argocd-external-secret", "external-secrets-store", "argocd-secret-item")


@pytest.mark.parametrize("eso_version", ["0.12.1", "2.9.0"])
def test_eso_objects_are_aliased_across_api_versions_so_an_upgrade_updates_in_place(eso_version):
    run = run_stack(config={"esoChartVersion": eso_version})
    for name, kind in (("external-secrets-store", "ClusterSecretStore"), ("argocd-external-secret", "ExternalSecret")):
        registration = run.named(name)
        other = ({"v1beta1", "v1"} - {registration.plain["apiVersion"].split("/")[1]}).pop()
        assert [alias["spec"]["type"] for alias in registration.aliases] == [
            f"kubernetes:external-secrets.io/{other}:{kind}"
        ]


def test_token_secret_holds_the_token_as_a_secret(homelab):
    token = homelab.named("external-secrets-connect-token")
    assert token.plain["metadata"] == {
        "name": "onepassword-connect-token",
        "namespace": "eso",
        "annotations": {"pulumi.com/patchForce": "true"},
    }
    assert token.plain["stringData"] == {"token": CANARY_TOKEN}


def test_seed_versions_store_credentials_base64_and_use_v1beta1(homelab):
    credentials = homelab.named("connect-credentials").plain
    assert credentials["metadata"] == {
        "name": "op-credentials",
        "namespace": "onepassword",
        "annotations": {"pulumi.com/patchForce": "true"},
    }
    value = credentials["stringData"]["1password-credentials.json"]
    assert base64.b64decode(value).decode() == CREDENTIALS_TEXT
    assert len(homelab.by_type(STORE)) == 1 and len(homelab.by_type(EXTERNAL_SECRET)) == 1


def test_newest_versions_store_raw_json_and_use_v1():
    run = run_stack(config={"esoChartVersion": "2.9.0", "connectChartVersion": "2.4.1"})
    assert run.named("connect-credentials").plain["stringData"]["1password-credentials.json"] == CREDENTIALS_TEXT
    store = run.one("kubernetes:external-secrets.io/v1:ClusterSecretStore")
    assert store.plain["apiVersion"] == "external-secrets.io/v1"
    external_secret = run.one("kubernetes:external-secrets.io/v1:ExternalSecret")
    assert external_secret.plain["apiVersion"] == "external-secrets.io/v1"
    assert run.outputs[outputs.CHART_VERSIONS] == {"connect": "2.4.1", "externalSecrets": "2.9.0", "argocd": "10.1.1"}


def test_argocd_secret_item_carries_exactly_the_keys_argocd_expects(homelab):
    item = homelab.named("argocd-secret-item").plain
    assert (item["vault"], item["title"], item["category"]) == ("uuid-HomeLab", "argocd-secret", "secure_note")
    [section] = item["sections"]
    fields = {field["label"]: field["value"] for field in section["fields"]}
    assert tuple(fields) == ARGOCD_SECRET_KEYS
    password = homelab.outputs[outputs.ARGOCD_ADMIN_PASSWORD]
    password_hash = fields["admin.password"]
    assert bcrypt.checkpw(password.encode(), password_hash.encode())
    assert password_hash.startswith("$2b$10$")
    assert fields["admin.passwordMtime"] == FAKE_TIMESTAMP
    assert len(bytes.fromhex(fields["server.secretkey"])) == 32


def test_admin_password_is_kept_in_clear_in_its_own_item(homelab):
    item = homelab.named("argocd-admin-item").plain
    assert (item["vault"], item["title"], item["category"], item["username"]) == (
        "uuid-HomeLab",
        "argo-admin",
        "login",
        "admin",
    )
    assert item["password"] == homelab.outputs[outputs.ARGOCD_ADMIN_PASSWORD]
    assert len(item["password"]) == 32


def test_salt_and_mtime_are_renewed_with_the_password_only(homelab):
    password = homelab.outputs[outputs.ARGOCD_ADMIN_PASSWORD]
    assert homelab.named("argocd-admin-password-salt").plain == {"length": 16, "keepers": {"password": password}}
    assert homelab.named("argocd-admin-password-mtime").plain == {"triggers": {"password": password}}
    assert homelab.named("argocd-server-secretkey").plain == {"length": 32}
    assert homelab.named("argocd-admin-password").plain == {"length": 32, "special": False}


def test_outputs(homelab):
    secret = (outputs.ARGOCD_ADMIN_PASSWORD, outputs.ARGOCD_ITEM_DIGESTS)
    assert {k: v for k, v in homelab.outputs.items() if k not in secret} == {
        outputs.CONNECT_HOST: "http://onepassword-connect.onepassword.svc.cluster.local:8080",
        outputs.SECRET_STORE_NAME: "one-secretstore",
        outputs.ARGOCD_NAMESPACE: "argocd",
        outputs.ARGOCD_CREATE_SECRET: True,
        outputs.ARGOCD_SECRET_SYNCED: True,
        outputs.ARGOCD_SECRET_ITEM_VAULT: "HomeLab",
        outputs.ARGOCD_SECRET_ITEM_TITLE: "argocd-secret",
        outputs.ARGOCD_ADMIN_ITEM_TITLE: "argo-admin",
        outputs.ARGOCD_SECRET_REVISION: "password-0.secretkey-0",
        outputs.ARGOCD_ADMIN_PASSWORD_MTIME: FAKE_TIMESTAMP,
        outputs.CHART_VERSIONS: {"connect": "1.17.0", "externalSecrets": "0.12.1", "argocd": "10.1.1"},
    }
    assert homelab.secret_outputs == set(secret)


def test_item_digests_are_those_of_the_values_written_to_the_items(homelab):
    [section] = homelab.named("argocd-secret-item").plain["sections"]
    written = {field["label"]: digest(field["value"]) for field in section["fields"]}
    admin_password = homelab.named("argocd-admin-item").plain["password"]
    assert homelab.outputs[outputs.ARGOCD_ITEM_DIGESTS] == {
        SECRET_ITEM: written,
        ADMIN_ITEM: {ADMIN_ITEM_PASSWORD: digest(admin_password)},
    }


def test_the_leak_detector_sees_plaintext_and_skips_secrets():
    from cluster_secrets.offline import SECRET_SIG, SECRET_VALUE_SIG

    wrapped = {SECRET_SIG: SECRET_VALUE_SIG, "value": CANARY_TOKEN}
    found = dict(plaintext_strings({"a": [CANARY_TOKEN], "b": wrapped}))
    assert found == {".a[0]": CANARY_TOKEN}


def test_no_secret_in_plaintext_in_any_input_or_output(homelab):
    assert_no_plaintext(homelab, (*CANARIES, homelab.outputs[outputs.ARGOCD_ADMIN_PASSWORD]))


def test_a_second_run_with_the_same_state_changes_nothing():
    first, second = run_stack(), run_stack()

    def desired(run: Run) -> dict:
        return {r.name: (r.type, r.inputs, sorted(r.dependencies)) for r in run.registrations}

    assert desired(first) == desired(second)
    assert first.outputs == second.outputs


# The createSecret hand-off: one test per path.


def handed_over(run: Run) -> bool:
    """Argo CD after the ExternalSecret, with the chart no longer creating the Secret."""
    values = run.named("argocd-release").plain["values"]["configs"]["secret"]
    assert values["annotations"] == {"helm.sh/resource-policy": "keep"}  # on every path
    release_after = depends_on(run, "argocd-release", "argocd-external-secret")
    secret_after = depends_on(run, "argocd-external-secret", "argocd-release")
    assert release_after != secret_after  # exactly one order, never a cycle
    assert values["createSecret"] is not release_after
    assert run.outputs[outputs.ARGOCD_CREATE_SECRET] is values["createSecret"]
    return release_after


def test_auto_on_a_new_stack_lets_the_chart_create_the_secret_and_eso_adopt_it(homelab):
    assert not handed_over(homelab)
    assert homelab.outputs[outputs.ARGOCD_SECRET_SYNCED] is True


def test_auto_hands_over_once_a_deployment_recorded_the_sync():
    run = run_stack(previous_outputs={outputs.ARGOCD_CREATE_SECRET: True, outputs.ARGOCD_SECRET_SYNCED: True})
    assert handed_over(run)


def test_auto_waits_while_the_sync_was_not_recorded():
    run = run_stack(previous_outputs={outputs.ARGOCD_CREATE_SECRET: True, outputs.ARGOCD_SECRET_SYNCED: False})
    assert not handed_over(run)


def test_auto_never_goes_back_to_the_chart():
    run = run_stack(previous_outputs={outputs.ARGOCD_CREATE_SECRET: False})
    assert handed_over(run)


@pytest.mark.parametrize(("mode", "expected"), [("false", True), ("true", False)])
def test_fixed_modes_ignore_history_and_read_no_stack(mode, expected):
    history = {outputs.ARGOCD_CREATE_SECRET: not expected, outputs.ARGOCD_SECRET_SYNCED: True}
    run = run_stack(config={"argocdCreateSecret": mode}, previous_outputs=history)
    assert handed_over(run) is expected
    assert run.monitor.reads == []


def test_one_evaluation_reads_1password_four_times_and_writes_two_items(homelab):
    assert sorted(homelab.onepassword_invokes()) == sorted(
        ["onepassword:index/getVault:getVault"] * 2 + ["onepassword:index/getItem:getItem"] * 2
    )
    assert len(homelab.by_type("onepassword:index/item:Item")) == 2

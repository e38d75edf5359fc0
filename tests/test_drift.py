"""Drift (cluster_secrets/drift.py): the objects the program applies itself against the state's record,
and the releases' Deployments scaled to 0, through the preflight of `up` and `preview` (fake `pulumi`,
in-memory cluster) and `status`. The e2e suite's scenario n changes them by hand on a real cluster."""

import json
from pathlib import Path

import pytest

from cluster_secrets import converge, drift, preflight, status
from cluster_secrets.onepassword import Field, ItemDetails, ItemSummary, OnePasswordError
from components import outputs
from components.admin_secret import ARGOCD_SECRET_KEYS, item_digests
from tests.fake_cluster import CANARY_HASH, CANARY_KEY, MTIME, FakeCluster, b64
from tests.fake_pulumi import ADMIN_ITEM, CIPHERTEXT, SECRET_ITEM, deployed_resources
from tests.test_deploy import FakeCli, FakeVaults
from tests.test_status import NOW, TARGET, healthy_outputs
from tests.test_takeover import release_record

STORE_URN = "urn:pulumi:homelab::cluster-secrets::kubernetes:external-secrets.io/v1beta1:ClusterSecretStore::store"
STORE_PATH = "/apis/external-secrets.io/v1beta1/clustersecretstores/one-secretstore"
TOKEN_URN = "urn:pulumi:homelab::cluster-secrets::kubernetes:core/v1:Secret::external-secrets-connect-token"
TOKEN_PATH = "/api/v1/namespaces/eso/secrets/onepassword-connect-token"
CONNECT_PATH = "/apis/apps/v1/namespaces/onepassword/deployments/onepassword-connect"
SPEC = {"provider": {"onepassword": {"connectHost": "http://onepassword-connect.onepassword.svc.cluster.local:8080"}}}


def store_resource() -> dict:
    inputs = {
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "one-secretstore"},
        "spec": SPEC,
    }
    return {"urn": STORE_URN, "type": "kubernetes:external-secrets.io/v1beta1:ClusterSecretStore", "inputs": inputs}


def token_resource() -> dict:
    inputs = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "onepassword-connect-token", "namespace": "eso"},
        "stringData": {"token": CIPHERTEXT},
    }
    return {"urn": TOKEN_URN, "type": "kubernetes:core/v1:Secret", "inputs": inputs}


def deployment() -> dict:
    return {"resources": [store_resource(), token_resource()]}


def cluster_as_applied() -> FakeCluster:
    cluster = FakeCluster()
    live_spec = json.loads(json.dumps(SPEC))
    live_spec["provider"]["onepassword"]["vaults"] = {"HomeLab": 1}  # what the API server adds is no drift
    cluster.paths[STORE_PATH] = {"metadata": {"name": "one-secretstore"}, "spec": live_spec}
    cluster.paths[TOKEN_PATH] = {"metadata": {"name": "onepassword-connect-token"}, "data": {"token": "c2VjcmV0"}}
    return cluster


def test_objects_as_applied_are_no_drift_and_secrets_are_never_compared():
    assert drift.find(deployment(), cluster_as_applied()) == []
    assert drift.differences({"a": CIPHERTEXT}, {"a": "anything"}) == []


def test_a_cluster_scoped_object_is_read_without_the_namespace_its_inputs_may_carry():
    recorded = deployment()
    recorded["resources"][0]["inputs"]["metadata"]["namespace"] = "default"
    assert drift.find(recorded, cluster_as_applied()) == []


def test_a_deleted_object_and_an_edited_spec_are_drift():
    cluster = cluster_as_applied()
    cluster.paths[STORE_PATH]["spec"]["provider"]["onepassword"]["connectHost"] = "http://elsewhere:8080"
    del cluster.paths[TOKEN_PATH]
    assert drift.find(deployment(), cluster) == [
        drift.Drift(STORE_URN, "ClusterSecretStore one-secretstore", "spec.provider.onepassword.connectHost changed"),
        drift.Drift(TOKEN_URN, "Secret eso/onepassword-connect-token", "deleted"),
    ]
    assert drift.differences({"a": [1, 2]}, {"a": [1]}, "spec") == ["spec.a"]
    assert drift.differences({"a": {"b": 1}}, {"a": "x"}) == ["a"]


def scaled_connect(cluster: FakeCluster, manifest_replicas: int = 2) -> None:
    cluster.paths[CONNECT_PATH] = {"metadata": {"name": "onepassword-connect"}, "spec": {"replicas": 0}}
    manifest = (
        f"---\nkind: Deployment\nmetadata:\n  name: onepassword-connect\nspec:\n  replicas: {manifest_replicas}\n"
    )
    record = release_record("connect", "onepassword", 1, "deployed", manifest=manifest)
    cluster.lists[("/api/v1/namespaces/onepassword/secrets", "owner=helm,name=connect")] = [record]


def test_a_release_deployment_scaled_to_0_is_found_with_the_replicas_of_its_manifest():
    cluster = FakeCluster()
    scaled_connect(cluster)
    (found,) = drift.scaled_down(cluster, {"connect": "onepassword", "external-secrets": "eso"})
    assert (found.path, found.what, found.replicas) == (CONNECT_PATH, "Deployment onepassword/onepassword-connect", 2)


@pytest.fixture
def cli(tmp_path: Path) -> FakeCli:
    return FakeCli(tmp_path)


def converged_with_drift(cli: FakeCli) -> None:
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    state = json.loads((cli.home / "state.json").read_text())
    release = {"urn": "urn:pulumi:homelab::cluster-secrets::kubernetes:helm.sh/v3:Release::connect-release"}
    release.update(type="kubernetes:helm.sh/v3:Release", id="onepassword/connect")  # the state holds the release
    state["stacks"]["homelab"]["resources"] += [store_resource(), release]
    (cli.home / "state.json").write_text(json.dumps(state))
    scaled_connect(cli.cluster, 1)
    cli.lines.clear()


def test_up_refreshes_what_changed_by_hand_and_scales_back_a_deployment_at_0(cli):
    converged_with_drift(cli)  # the store is in the state and gone from the cluster; Connect at 0
    before = len(cli.calls)
    assert cli.run(**cli.environ()) == converge.EXIT_OK, cli.text
    assert (
        "Stack homelab: changed by hand since the last up:\n  ClusterSecretStore one-secretstore: deleted" in cli.text
    )
    later = [c["args"] for c in cli.calls[before:]]
    refresh = next(args for args in later if args[0] == "refresh")
    assert refresh[refresh.index("--target") + 1] == STORE_URN
    assert [a[0] for a in later].index("refresh") < [a[0] for a in later].index("up")
    assert (CONNECT_PATH, {"spec": {"replicas": 1}}) in cli.cluster.patched
    assert "Deployment onepassword/onepassword-connect was scaled to 0 by hand: scaled back to 1" in cli.text


def test_preview_names_the_drift_and_changes_nothing(cli):
    converged_with_drift(cli)
    assert cli.run("preview", **cli.environ()) == converge.EXIT_OK
    assert "`./cluster-secrets up homelab` applies them again" in cli.text
    assert "`up` scales it back to 1" in cli.text
    assert not [c for c in cli.calls if c["args"][0] == "refresh"] and cli.cluster.patched == []


def test_status_names_the_drift():
    cluster = cluster_as_applied()
    del cluster.paths[TOKEN_PATH]
    lines = status.check_chain(healthy_outputs(), TARGET, cluster, NOW, deployment())
    assert (lines[-1].link, lines[-1].ok) == ("drift", False)
    assert "Secret eso/onepassword-connect-token: deleted. Fix: ./cluster-secrets up homelab" in lines[-1].text
    lines = status.check_chain(healthy_outputs(), TARGET, cluster_as_applied(), NOW, deployment())
    assert (lines[-1].link, lines[-1].ok) == ("drift", True)


def test_the_drift_check_previews_with_refresh_and_fails_on_any_change(cli):
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    cli.preview_options = {"refresh": True, "expect_no_changes": True}
    assert cli.run("preview", **cli.environ()) == converge.EXIT_FAILED
    (args,) = [c["args"] for c in cli.calls if c["args"][0] == "preview"]
    assert "--refresh" in args and "--expect-no-changes" in args
    assert "error: stack homelab has drifted: the preview above would change it." in cli.text
    assert "pulumi preview failed" not in cli.text


ADMIN_PASSWORD = "canary-admin-password-in-the-item"
WRITTEN = {"admin.password": CANARY_HASH, "admin.passwordMtime": MTIME, "server.secretkey": CANARY_KEY}
ITEM_OUTPUTS = {
    outputs.ARGOCD_ITEM_DIGESTS: item_digests(ADMIN_PASSWORD, WRITTEN),
    outputs.ARGOCD_SECRET_ITEM_VAULT: "HomeLab",
    outputs.ARGOCD_SECRET_ITEM_TITLE: "argocd-secret",
    outputs.ARGOCD_ADMIN_ITEM_TITLE: "argo-admin",
}


def secret_item(title: str = "argocd-secret", **values: str) -> ItemDetails:
    fields = tuple(Field(key, {**WRITTEN, **values}[key], True, "") for key in ARGOCD_SECRET_KEYS)
    return ItemDetails("item1", title, "SECURE_NOTE", fields)


def admin_item(password: str = ADMIN_PASSWORD) -> ItemDetails:
    fields = (Field("username", "admin", False, "USERNAME"), Field("password", password, False, "PASSWORD"))
    return ItemDetails("item2", "argo-admin", "LOGIN", fields)


def test_an_item_as_the_stack_wrote_it_is_no_drift_and_an_edit_is_named_by_label_only():
    written = item_digests(ADMIN_PASSWORD, WRITTEN)
    assert drift.item_drift(SECRET_ITEM, "it", secret_item(), "argocd-secret", written["secretItem"]) is None
    assert drift.item_drift(ADMIN_ITEM, "it", admin_item(), "argo-admin", written["adminItem"]) is None
    edited = secret_item("argocd-secret-renamed", **{"admin.password": "$2b$10$someone-elses-hash"})
    found = drift.item_drift(SECRET_ITEM, "it", edited, "argocd-secret", written["secretItem"])
    assert found == drift.Drift(
        SECRET_ITEM, "it", "title changed to 'argocd-secret-renamed' and admin.password edited in 1Password"
    )
    found = drift.item_drift(ADMIN_ITEM, "it", admin_item("changed"), "argo-admin", written["adminItem"])
    assert found is not None and found.how == "password edited in 1Password"
    # A field removed in 1Password is an edit too.
    removed = ItemDetails("item1", "argocd-secret", "SECURE_NOTE", secret_item().fields[:2])
    found = drift.item_drift(SECRET_ITEM, "it", removed, "argocd-secret", written["secretItem"])
    assert found is not None and found.how == "server.secretkey edited in 1Password"


def converged_with_an_edited_item(cli: FakeCli) -> None:
    """A converged stack whose argocd-secret item's hash was edited in 1Password."""
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    state = json.loads((cli.home / "state.json").read_text())
    state["stacks"]["homelab"]["outputs"].update(ITEM_OUTPUTS)
    (cli.home / "state.json").write_text(json.dumps(state))
    cli.vaults.listed = [ItemSummary("item1", "argocd-secret"), ItemSummary("item2", "argo-admin")]
    cli.vaults.details = {"item1": secret_item(**{"admin.password": "$2b$10$edited"}), "item2": admin_item()}
    cli.lines.clear()


def test_up_refreshes_an_item_edited_in_1password_so_that_it_writes_the_stacks_values_back(cli):
    converged_with_an_edited_item(cli)
    before = len(cli.calls)
    assert cli.run(**cli.environ()) == converge.EXIT_OK, cli.text
    assert (
        "changed by hand since the last up:\n"
        "  1Password item 'argocd-secret' in vault 'HomeLab': admin.password edited in 1Password" in cli.text
    )
    later = [c["args"] for c in cli.calls[before:]]
    refresh = next(args for args in later if args[0] == "refresh")
    assert refresh[refresh.index("--target") + 1 :] == [SECRET_ITEM, "--stack", "homelab"]
    assert [a[0] for a in later].index("refresh") < [a[0] for a in later].index("up")
    assert "$2b$10$edited" not in cli.text and CANARY_HASH not in cli.text


def test_preview_names_an_edited_item_and_refreshes_nothing(cli):
    converged_with_an_edited_item(cli)
    assert cli.run("preview", **cli.environ()) == converge.EXIT_OK
    assert "1Password item 'argocd-secret' in vault 'HomeLab': admin.password edited in 1Password" in cli.text
    assert not [c for c in cli.calls if c["args"][0] == "refresh"]


def test_items_of_a_stack_deployed_before_the_digests_are_not_read():
    items = preflight.state_items({"resources": deployed_resources()})
    assert preflight.edited_items(items, {}, lambda: pytest.fail("1Password was read")) == []


def test_status_names_an_edited_item_and_an_unreadable_1password():
    edited = [drift.Drift(SECRET_ITEM, "1Password item 'argocd-secret' in vault 'HomeLab'", "x edited in 1Password")]
    lines = status.check_chain(healthy_outputs(), TARGET, cluster_as_applied(), NOW, deployment(), edited)
    assert (lines[-1].link, lines[-1].ok) == ("drift", False)
    assert "1Password item 'argocd-secret' in vault 'HomeLab': x edited in 1Password. Fix: ./cluster-secrets up" in (
        lines[-1].text
    )
    unread = "no 1Password credentials: set OP_SERVICE_ACCOUNT_TOKEN"
    lines = status.check_chain(healthy_outputs(), TARGET, cluster_as_applied(), NOW, deployment(), unread)
    assert (lines[-1].link, lines[-1].ok) == ("drift", False)
    assert f"the 1Password items were not compared ({unread})" in lines[-1].text


def test_status_reads_the_items_with_the_stacks_onepassword_config():
    seen: list[tuple] = []

    def vaults(config, environ):
        seen.append((dict(config), dict(environ)))
        raise OnePasswordError("no 1Password credentials: set OP_SERVICE_ACCOUNT_TOKEN")

    view = status.StackView(
        {**healthy_outputs(), **ITEM_OUTPUTS}, {"resources": deployed_resources()}, {"onepassword:url": "u"}
    )
    assert status.edited_items(view, {"E": "1"}, vaults) == "no 1Password credentials: set OP_SERVICE_ACCOUNT_TOKEN"
    assert seen == [({"onepassword:url": "u"}, {"E": "1"})]


def test_status_compares_argocd_secret_with_what_the_stack_wrote_to_the_item():
    stack_outputs = {**healthy_outputs(), **ITEM_OUTPUTS}
    [line] = [x for x in status.check_chain(stack_outputs, TARGET, FakeCluster(), NOW) if x.link == "argocd-secret"]
    assert line.ok and line.text.endswith(", as the stack wrote them to the item"), line
    cluster = FakeCluster()
    cluster.object("secret", "argocd", "argocd-secret")["data"]["admin.password"] = b64("$2b$10$edited")
    [line] = [x for x in status.check_chain(stack_outputs, TARGET, cluster, NOW) if x.link == "argocd-secret"]
    assert not line.ok
    assert "admin.password other than the stack wrote to the item" in line.text
    assert "./cluster-secrets up homelab puts the item back" in line.text and "$2b$10$edited" not in line.text


def test_an_item_whose_state_a_refresh_already_updated_is_compared_with_what_the_program_set():
    resources = deployed_resources()
    resources[1]["outputs"]["title"] = "argo-admin-renamed"  # an interrupted refresh read the rename
    renamed = ItemDetails("item2", "argo-admin-renamed", "LOGIN", admin_item().fields)
    vaults = FakeVaults()
    vaults.details = {"item1": secret_item(), "item2": renamed}
    found = preflight.edited_items(preflight.state_items({"resources": resources}), ITEM_OUTPUTS, lambda: vaults)
    assert found == [
        drift.Drift(
            ADMIN_ITEM,
            "1Password item 'argo-admin' in vault 'HomeLab'",
            "title changed to 'argo-admin-renamed' in 1Password",
        )
    ]


def test_a_sharing_stack_is_told_to_run_up_on_the_stack_that_owns_the_items():
    cluster = FakeCluster()
    cluster.object("secret", "argocd", "argocd-secret")["data"]["admin.password"] = b64("$2b$10$edited")
    sharing = status.Target("homelab-2", "onepassword", "eso", "auto", items_owner="homelab")
    lines = status.check_chain({**healthy_outputs(), **ITEM_OUTPUTS}, sharing, cluster, NOW)
    [line] = [x for x in lines if x.link == "argocd-secret"]
    assert "Fix: ./cluster-secrets up homelab puts the item back" in line.text

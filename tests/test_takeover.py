"""What a stack would create that exists already (cluster_secrets/takeover.py): owners, Helm release
records, and `discover` over an in-memory cluster and vault with the homelab stack's registrations."""

import base64
import gzip
import json
from typing import Any

import pytest

from cluster_secrets.onepassword import ItemSummary
from cluster_secrets.takeover import (
    HELM_RELEASE,
    INSTANCE_LABEL,
    ITEM,
    TRACKING_ID,
    conflict_message,
    discover,
    helm_release,
    owner_of,
    wanted,
)
from tests.fake_cluster import CONNECT_DEPLOYMENT, CONNECT_NAMESPACE, FakeCluster

NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
CONNECT_RECORDS = ("/api/v1/namespaces/onepassword/secrets", "owner=helm,name=connect")
ROOT_APPLICATION = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/root"
HELM_MANAGED = {"app.kubernetes.io/managed-by": "Helm"}


def helm_owned_meta(release: str, namespace: str) -> dict[str, Any]:
    return {
        "labels": dict(HELM_MANAGED),
        "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace},
    }


def release_record(
    name: str,
    namespace: str,
    revision: int,
    status: str,
    chart: str = "connect",
    version: str = "1.17.0",
    manifest: str = "",
) -> dict[str, Any]:
    """A Helm 3 release Secret as the API serves it: Helm's storage driver keeps base64 of the gzipped
    release JSON under `release`, and the API adds its own base64 to Secret data."""
    release = {
        "name": name,
        "namespace": namespace,
        "version": revision,
        "info": {"status": status},
        "chart": {"metadata": {"name": chart, "version": version}},
        "config": {},
        "manifest": manifest,
    }
    stored = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return {
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": namespace,
            "labels": {"name": name, "owner": "helm", "status": status, "version": str(revision)},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(stored).decode()},
    }


# owner_of: who made a live object, from its own metadata.


def test_a_plain_object_is_owned_by_nobody():
    assert owner_of({"metadata": {"name": "onepassword"}}) == ("nobody", "")
    assert owner_of({}) == ("nobody", "")


def test_an_object_with_helms_labels_and_annotations_belongs_to_that_release():
    obj = {"metadata": {"name": "op-credentials", "namespace": "onepassword", **helm_owned_meta("connect", "web")}}
    assert owner_of(obj) == ("Helm release web/connect", "")


def test_helms_label_without_the_release_annotation_is_not_a_release():
    obj = {"metadata": {"name": "x", "labels": dict(HELM_MANAGED)}}
    assert owner_of(obj) == ("nobody", "")


def test_a_controller_owner_reference_names_the_controller():
    obj = {
        "metadata": {
            "name": "op-credentials",
            "namespace": "onepassword",
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "not-the-controller"},
                {"kind": "ExternalSecret", "name": "creds", "controller": True},
            ],
        }
    }
    assert owner_of(obj) == ("ExternalSecret onepassword/creds", "")


def test_an_owner_reference_that_is_not_a_controller_owns_nothing():
    obj = {"metadata": {"name": "x", "namespace": "ns", "ownerReferences": [{"kind": "Pod", "name": "p"}]}}
    assert owner_of(obj) == ("nobody", "")


def test_a_controller_of_a_cluster_scoped_object_is_named_without_a_namespace():
    obj = {"metadata": {"name": "x", "ownerReferences": [{"kind": "Thing", "name": "t", "controller": True}]}}
    assert owner_of(obj) == ("Thing t", "")


def test_the_tracking_id_annotation_names_the_application_by_its_first_segment():
    obj = {"metadata": {"name": "onepassword", "annotations": {TRACKING_ID: "root:/Namespace:onepassword/onepassword"}}}
    assert owner_of(obj) == ("nobody", "root")


def test_the_tracking_id_names_the_application_of_a_helm_managed_object_too():
    meta = helm_owned_meta("connect", "onepassword")
    meta["annotations"][TRACKING_ID] = "platform:apps/Deployment:onepassword/onepassword-connect"
    assert owner_of({"metadata": {"name": "x", **meta}}) == ("Helm release onepassword/connect", "platform")


def test_the_instance_label_is_argo_cds_label_tracking_when_helm_does_not_manage_the_object():
    obj = {"metadata": {"name": "x", "labels": {INSTANCE_LABEL: "infra"}}}
    assert owner_of(obj) == ("nobody", "infra")


def test_the_instance_label_of_a_helm_managed_object_is_helms_not_argo_cds():
    meta = helm_owned_meta("connect", "onepassword")
    meta["labels"][INSTANCE_LABEL] = "connect"  # every chart sets it to the release name
    assert owner_of({"metadata": {"name": "x", **meta}}) == ("Helm release onepassword/connect", "")


# helm_release: the latest deployed revision of a release, decoded from its records.


def test_the_latest_deployed_revision_is_decoded_from_its_release_secret():
    cluster = FakeCluster()
    cluster.lists[CONNECT_RECORDS] = [
        release_record("connect", "onepassword", 2, "deployed", version="1.17.0"),
        release_record("connect", "onepassword", 1, "superseded", version="1.16.0"),
    ]
    record = helm_release(cluster, "onepassword", "connect")
    assert record is not None
    assert record["chart"]["metadata"] == {"name": "connect", "version": "1.17.0"}
    assert (record["version"], record["info"]["status"]) == (2, "deployed")


def test_of_two_deployed_revisions_the_higher_number_wins_as_a_number():
    cluster = FakeCluster()
    cluster.lists[CONNECT_RECORDS] = [
        release_record("connect", "onepassword", 9, "deployed", version="1.16.0"),
        release_record("connect", "onepassword", 10, "deployed", version="1.17.0"),
    ]
    record = helm_release(cluster, "onepassword", "connect")
    assert record is not None and record["chart"]["metadata"]["version"] == "1.17.0"


def test_a_release_with_no_deployed_revision_has_no_record():
    cluster = FakeCluster()
    cluster.lists[CONNECT_RECORDS] = [
        release_record("connect", "onepassword", 1, "superseded"),
        release_record("connect", "onepassword", 2, "failed"),
    ]
    assert helm_release(cluster, "onepassword", "connect") is None
    assert helm_release(FakeCluster(), "onepassword", "connect") is None


# wanted: what the stack's registrations create outside Pulumi.


def test_the_homelab_stack_wants_its_objects_releases_and_items_only(registrations, config):
    found = {(w.type, w.import_id or w.title) for w in wanted(registrations, config)}
    assert found == {
        (NAMESPACE, "onepassword"),
        (NAMESPACE, "eso"),
        (NAMESPACE, "argocd"),
        (SECRET, "onepassword/op-credentials"),
        (SECRET, "eso/onepassword-connect-token"),
        (HELM_RELEASE, "onepassword/connect"),
        (HELM_RELEASE, "eso/external-secrets"),
        (HELM_RELEASE, "argocd/argocd"),
        ("kubernetes:external-secrets.io/v1beta1:ClusterSecretStore", "one-secretstore"),
        ("kubernetes:external-secrets.io/v1beta1:ExternalSecret", "argocd/argocd-secret"),
        (ITEM, "argocd-secret"),
        (ITEM, "argo-admin"),
    }


def test_wanted_objects_carry_their_api_path_and_component(registrations, config):
    by_name = {w.name: w for w in wanted(registrations, config)}
    assert by_name["connect-namespace"].path == CONNECT_NAMESPACE
    assert by_name["connect-credentials"].path == "/api/v1/namespaces/onepassword/secrets/op-credentials"
    assert by_name["external-secrets-store"].path == (
        "/apis/external-secrets.io/v1beta1/clustersecretstores/one-secretstore"
    )
    assert by_name["connect-release"].what == "Helm release onepassword/connect (chart connect)"
    assert by_name["argocd-release"].what == "Helm release argocd/argocd (chart argo-cd)"
    assert by_name["argocd-secret-item"].what == "1Password item 'argocd-secret' in vault 'HomeLab'"
    assert {w.parent for w in by_name.values()} == {"connect", "external-secrets", "argocd"}


# discover: what exists already, outside the stack's state.


def test_an_empty_cluster_and_vault_hold_nothing_the_stack_would_create(registrations, config):
    assert discover(config, registrations, None, FakeCluster(), [], "V") == []


def test_what_kubectl_helm_and_the_1password_app_made_is_found_with_its_owner(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword"}}
    cluster.lists[CONNECT_RECORDS] = [release_record("connect", "onepassword", 3, "deployed")]
    items = [ItemSummary("I", "argocd-secret"), ItemSummary("J", "unrelated")]
    found = discover(config, registrations, None, cluster, items, "V")
    assert [(f.wanted.name, f.import_id, f.owner, f.blocker) for f in found] == [
        ("connect-namespace", "onepassword", "nobody", ""),
        ("connect-release", "onepassword/connect", "Helm, revision 3", ""),
        ("argocd-secret-item", "vaults/V/items/I", "nobody", ""),
    ]


def test_a_release_of_another_chart_under_our_release_name_is_a_blocker(registrations, config):
    cluster = FakeCluster()
    cluster.lists[CONNECT_RECORDS] = [release_record("connect", "onepassword", 1, "deployed", chart="nginx")]
    [found] = discover(config, registrations, None, cluster, [], "V")
    assert found.wanted.name == "connect-release"
    assert "has chart 'nginx'" in found.blocker and "helm uninstall" in found.blocker


def test_what_the_state_holds_already_is_not_found(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword"}}
    cluster.lists[CONNECT_RECORDS] = [release_record("connect", "onepassword", 3, "deployed")]
    deployment = {
        "resources": [
            {"urn": "urn:a", "type": NAMESPACE, "id": "onepassword"},
            {"urn": "urn:b", "type": HELM_RELEASE, "id": "onepassword/connect"},
            {"urn": "urn:c", "type": ITEM, "id": "vaults/V/items/I", "outputs": {"uuid": "I"}},
        ]
    }
    assert discover(config, registrations, deployment, cluster, [ItemSummary("I", "argocd-secret")], "V") == []


def test_an_eso_object_the_state_holds_under_another_api_version_is_held(registrations, config, wanted_store):
    # The state recorded the store under v1 (after a bump); pinned back, the program registers v1beta1.
    cluster = FakeCluster()
    cluster.paths[wanted_store.path] = {"metadata": {"name": "one-secretstore"}}
    newer = wanted_store.type.replace("/v1beta1:", "/v1:")
    deployment = {"resources": [{"urn": "urn:s", "type": newer, "id": wanted_store.import_id}]}
    assert [f.wanted.name for f in discover(config, registrations, deployment, cluster, [], "V")] == []
    assert [f.wanted.name for f in discover(config, registrations, None, cluster, [], "V")] == [wanted_store.name]


@pytest.fixture
def wanted_store(registrations, config):
    (store,) = [w for w in wanted(registrations, config) if w.type.endswith(":ClusterSecretStore")]
    assert "/v1beta1:" in store.type
    return store


def test_a_resource_the_state_is_deleting_does_not_count_as_held(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword"}}
    deployment = {"resources": [{"urn": "urn:a", "type": NAMESPACE, "id": "onepassword", "delete": True}]}
    found = discover(config, registrations, deployment, cluster, [], "V")
    assert [f.wanted.name for f in found] == ["connect-namespace"]


def test_an_item_in_the_state_is_known_by_its_uuid_not_its_title(registrations, config):
    deployment = {"resources": [{"urn": "urn:c", "type": ITEM, "id": "x", "outputs": {"uuid": "OURS"}}]}
    items = [ItemSummary("OURS", "argocd-secret"), ItemSummary("THEIRS", "argo-admin")]
    found = discover(config, registrations, deployment, FakeCluster(), items, "V")
    assert [(f.wanted.name, f.import_id) for f in found] == [("argocd-admin-item", "vaults/V/items/THEIRS")]


def test_two_items_of_one_title_both_carry_a_blocker_naming_eso(registrations, config):
    items = [ItemSummary("I1", "argocd-secret"), ItemSummary("I2", "argocd-secret")]
    found = discover(config, registrations, None, FakeCluster(), items, "V")
    assert sorted(f.import_id for f in found) == ["vaults/V/items/I1", "vaults/V/items/I2"]
    for f in found:
        assert "ESO refuses a title it finds twice" in f.blocker
        assert "holds 2 items" in f.blocker


def test_an_object_an_existing_application_tracks_is_blocked_with_the_way_to_detach_it(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {
        "metadata": {"name": "onepassword", "annotations": {TRACKING_ID: "root:/Namespace:onepassword/onepassword"}}
    }
    cluster.paths[ROOT_APPLICATION] = {"metadata": {"name": "root", "namespace": "argocd"}}
    [found] = discover(config, registrations, None, cluster, [], "V")
    assert (found.owner, found.application) == ("Argo CD Application argocd/root", "root")
    assert found.blocker.startswith("Namespace onepassword is managed by Argo CD Application argocd/root")
    assert "kubectl -n argocd patch application root" in found.blocker
    assert "kubectl -n argocd delete application root" in found.blocker


def test_an_object_left_by_a_deleted_application_is_owned_by_nobody(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword", "labels": {INSTANCE_LABEL: "root"}}}
    [found] = discover(config, registrations, None, cluster, [], "V")
    assert (found.owner, found.blocker, found.application) == ("nobody", "", "root")


def test_an_object_a_controller_owns_is_blocked_as_a_second_owner(registrations, config):
    cluster = FakeCluster()
    cluster.paths["/api/v1/namespaces/onepassword/secrets/op-credentials"] = {
        "metadata": {
            "name": "op-credentials",
            "namespace": "onepassword",
            "ownerReferences": [{"kind": "ExternalSecret", "name": "op-credentials", "controller": True}],
        }
    }
    [found] = discover(config, registrations, None, cluster, [], "V")
    assert found.owner == "ExternalSecret onepassword/op-credentials"
    assert "two owners would fight over it" in found.blocker


def test_a_releases_objects_without_a_release_record_are_found(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_DEPLOYMENT] = {"metadata": {"name": "onepassword-connect", "namespace": "onepassword"}}
    [found] = discover(config, registrations, None, cluster, [], "V")
    assert (found.wanted.name, found.import_id, found.blocker) == ("connect-release", "onepassword/connect", "")
    assert found.owner == "its objects: nobody"


def test_a_releases_objects_an_existing_application_renders_are_blocked(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_DEPLOYMENT] = {
        "metadata": {"name": "onepassword-connect", "namespace": "onepassword", "labels": {INSTANCE_LABEL: "root"}}
    }
    cluster.paths[ROOT_APPLICATION] = {"metadata": {"name": "root"}}
    [found] = discover(config, registrations, None, cluster, [], "V")
    assert found.owner == "Argo CD Application argocd/root"
    assert "kubectl -n argocd patch application root" in found.blocker


def test_a_releases_objects_another_release_owns_are_blocked(registrations, config):
    cluster = FakeCluster()
    meta = {"name": "onepassword-connect", "namespace": "onepassword", **helm_owned_meta("other", "onepassword")}
    cluster.paths[CONNECT_DEPLOYMENT] = {"metadata": meta}
    [found] = discover(config, registrations, None, cluster, [], "V")
    assert found.owner == "its objects: Helm release onepassword/other"
    assert "two owners would fight over it" in found.blocker


def test_a_releases_objects_marked_for_this_very_release_are_left_to_helm_install(registrations, config):
    cluster = FakeCluster()
    meta = {"name": "onepassword-connect", "namespace": "onepassword", **helm_owned_meta("connect", "onepassword")}
    cluster.paths[CONNECT_DEPLOYMENT] = {"metadata": meta}
    assert discover(config, registrations, None, cluster, [], "V") == []


def test_found_objects_are_listed_namespaces_first_and_items_last(registrations, config):
    cluster = FakeCluster()
    for namespace in ("onepassword", "eso", "argocd"):
        cluster.paths[f"/api/v1/namespaces/{namespace}"] = {"metadata": {"name": namespace}}
    cluster.paths["/api/v1/namespaces/eso/secrets/onepassword-connect-token"] = {"metadata": {"name": "t"}}
    cluster.lists[CONNECT_RECORDS] = [release_record("connect", "onepassword", 1, "deployed")]
    cluster.paths["/apis/external-secrets.io/v1beta1/clustersecretstores/one-secretstore"] = {"metadata": {}}
    items = [ItemSummary("A", "argo-admin"), ItemSummary("S", "argocd-secret")]
    kinds = [f.wanted.type.rsplit(":", 1)[1] for f in discover(config, registrations, None, cluster, items, "V")]
    assert kinds == ["Namespace"] * 3 + ["Secret", "Release", "ClusterSecretStore", "Item", "Item"]


# conflict_message: what `up` and `preview` say when something exists already.


def test_the_conflict_message_names_everything_found_adopt_and_the_blockers(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword"}}
    cluster.lists[CONNECT_RECORDS] = [release_record("connect", "onepassword", 1, "deployed")]
    items = [ItemSummary("I1", "argocd-secret"), ItemSummary("I2", "argocd-secret")]
    found = discover(config, registrations, None, cluster, items, "V")
    message = conflict_message("homelab", found)
    lines = message.splitlines()
    assert lines[0] == "Stack homelab would create what exists already, made outside it (nothing was changed):"
    for f in found:
        assert f"  {f.wanted.what} (owner: {f.owner})" in lines
    assert "`./cluster-secrets adopt homelab`" in message
    assert "got 2" in message  # ESO's own words for a title found twice
    refusals = lines[lines.index("adopt would refuse until:") + 1 :]
    assert refusals == [f"  - {f.blocker}" for f in found if f.blocker]
    assert len(refusals) == 2


def test_a_conflict_without_blockers_or_items_says_neither(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword"}}
    message = conflict_message("homelab", discover(config, registrations, None, cluster, [], "V"))
    assert "  Namespace onepassword (owner: nobody)" in message.splitlines()
    assert "`./cluster-secrets adopt homelab`" in message
    assert "adopt would refuse until" not in message
    assert "1Password Item" not in message

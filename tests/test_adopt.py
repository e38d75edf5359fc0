"""`adopt` (cluster_secrets/adopt.py): the admin items' checks, the plan, the import file, Helm's
ownership patch; and stack_files.set_keys, which writes the keys adopt sets."""

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from cluster_secrets import stack_files
from cluster_secrets.adopt import (
    application_blockers,
    helm_owned,
    import_resources,
    item_blockers,
    plan,
    take_over,
)
from cluster_secrets.offline import Registration
from cluster_secrets.onepassword import Field, ItemDetails, ItemSummary
from cluster_secrets.preflight import plugin_of
from cluster_secrets.stack_files import project_values
from cluster_secrets.takeover import HELM_RELEASE, ITEM, TRACKING_ID, Found, discover, owner_of
from components.admin_secret import ADMIN_PASSWORD, ADMIN_PASSWORD_MTIME, SERVER_SECRET_KEY
from components.config import StackConfig, load_config
from tests.conftest import ROOT, stack_config
from tests.fake_cluster import CONNECT_DEPLOYMENT, CONNECT_NAMESPACE, ES_UID, FakeCluster

PASSWORD = "canary-adopted-admin-password-91c2"
OTHER_PASSWORD = "canary-another-password-5b7e"
MTIME = "2026-12-01T10:00:00Z"
SECRET_KEY = "canary-adopted-server-secretkey-4d8a"


def bcrypt_hash(password: str) -> str:
    """A `$2a$` hash, as `argocd account bcrypt` makes them (cost 4: these tests check, not guard)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode()


HASH = bcrypt_hash(PASSWORD)


def config_of(**overrides: Any) -> StackConfig:
    return load_config(project_values(stack_config(overrides=overrides)), "homelab")


def secret_item(
    fields: dict[str, str] | None = None, in_section: bool = True, category: str = "SECURE_NOTE"
) -> ItemDetails:
    values = (
        fields
        if fields is not None
        else {ADMIN_PASSWORD: HASH, ADMIN_PASSWORD_MTIME: MTIME, SERVER_SECRET_KEY: SECRET_KEY}
    )
    return ItemDetails(
        "S", "argocd-secret", category, tuple(Field(label, value, in_section, "") for label, value in values.items())
    )


def admin_item(password: str = PASSWORD, category: str = "LOGIN", label: str = "password") -> ItemDetails:
    return ItemDetails(
        "A",
        "argo-admin",
        category,
        (Field("username", "admin", False, "USERNAME"), Field(label, password, False, "PASSWORD")),
    )


def argocd_secret(keep: bool = True, eso: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "argocd-secret", "namespace": "argocd"}
    if keep:
        meta["annotations"] = {"helm.sh/resource-policy": "keep"}
    if eso:
        meta["ownerReferences"] = [
            {"kind": "ExternalSecret", "name": "argocd-secret", "uid": ES_UID, "controller": True}
        ]
    return {"metadata": meta}


def found_in(
    registrations: list[Registration],
    config: StackConfig,
    cluster: FakeCluster | None = None,
    items: list[ItemSummary] | None = None,
) -> list[Found]:
    return discover(config, registrations, None, cluster or FakeCluster(), items or [], "V")


ADMIN_ITEMS = [ItemSummary("S", "argocd-secret"), ItemSummary("A", "argo-admin")]


def assert_no_secret(lines: list[str]) -> None:
    """No password, hash (nor its salt and digest alone) or secret key in any line."""
    for line in lines:
        for value in (PASSWORD, OTHER_PASSWORD, HASH, HASH[7:29], HASH[29:], SECRET_KEY):
            assert value not in line, "a blocker carries a secret"


# item_blockers: whether the admin items can be kept as they are.


def test_good_admin_items_have_no_blocker(config):
    assert item_blockers(secret_item(), admin_item(), config) == []


def test_no_admin_items_at_all_have_no_blocker(config):
    assert item_blockers(None, None, config) == []


def test_lowercase_categories_as_the_provider_names_them_pass_too(config):
    assert item_blockers(secret_item(category="secure_note"), admin_item(category="password"), config) == []


def test_the_password_is_found_by_its_purpose_when_its_label_differs(config):
    assert item_blockers(secret_item(), admin_item(label="Passwort"), config) == []


def test_a_hash_that_does_not_match_the_password_is_a_blocker_without_either(config):
    problems = item_blockers(secret_item(), admin_item(password=OTHER_PASSWORD), config)
    assert len(problems) == 1
    assert "'argocd-secret' and 'argo-admin'" in problems[0]
    assert "does not match" in problems[0]
    assert_no_secret(problems)


def test_a_hash_that_is_not_bcrypt_is_a_blocker_not_a_crash(config):
    fields = {ADMIN_PASSWORD: "not-a-bcrypt-hash", ADMIN_PASSWORD_MTIME: MTIME, SERVER_SECRET_KEY: SECRET_KEY}
    problems = item_blockers(secret_item(fields), admin_item(), config)
    assert len(problems) == 1 and "does not match" in problems[0]
    assert "not-a-bcrypt-hash" not in problems[0]


def test_an_admin_item_without_a_password_is_a_blocker(config):
    problems = item_blockers(secret_item(), admin_item(password=""), config)
    assert problems == ["1Password item 'argo-admin' has no password: set the one Argo CD accepts"]


def test_fields_outside_a_section_are_a_blocker_naming_them(config):
    problems = item_blockers(secret_item(in_section=False), admin_item(), config)
    assert len(problems) == 1
    assert "admin.password, admin.passwordMtime, server.secretkey not found in a section" in problems[0]
    assert "'argocd-secret'" in problems[0]
    assert_no_secret(problems)


def test_one_field_missing_is_named_alone(config):
    fields = {ADMIN_PASSWORD: HASH, ADMIN_PASSWORD_MTIME: MTIME}
    problems = item_blockers(secret_item(fields), admin_item(), config)
    assert len(problems) == 1
    assert "server.secretkey not found in a section" in problems[0]
    assert "admin.password," not in problems[0]


# Python's fromisoformat takes the last four; Argo CD (Go's time.RFC3339) ignores them.
@pytest.mark.parametrize(
    "mtime",
    [
        "yesterday",
        "01/12/2026 10:00",
        "",
        "2026-12-06",
        "2026-12-06T10:00:00",
        "2026-12-06 10:00:00Z",
        "20261206T100000Z",
    ],
)
def test_an_mtime_that_is_not_rfc3339_is_a_blocker(config, mtime):
    fields = {ADMIN_PASSWORD: HASH, ADMIN_PASSWORD_MTIME: mtime, SERVER_SECRET_KEY: SECRET_KEY}
    problems = item_blockers(secret_item(fields), admin_item(), config)
    if not mtime:  # an empty field is a missing one
        assert len(problems) == 1 and "admin.passwordMtime not found in a section" in problems[0]
        return
    assert len(problems) == 1
    assert "admin.passwordMtime is not an RFC3339 time" in problems[0]
    assert mtime not in problems[0]


@pytest.mark.parametrize("mtime", ["2026-12-01T10:00:00Z", "2026-12-01T10:00:00+01:00", "2026-12-01T10:00:00.5Z"])
def test_rfc3339_mtimes_pass(config, mtime):
    fields = {ADMIN_PASSWORD: HASH, ADMIN_PASSWORD_MTIME: mtime, SERVER_SECRET_KEY: SECRET_KEY}
    assert item_blockers(secret_item(fields), admin_item(), config) == []


def test_an_unsupported_category_is_a_blocker_naming_the_supported_ones(config):
    problems = item_blockers(secret_item(category="DOCUMENT"), admin_item(), config)
    assert len(problems) == 1
    assert "'argocd-secret' is a DOCUMENT item" in problems[0]
    assert "login, password, database, secure_note" in problems[0]


def test_an_unsupported_category_of_the_admin_item_is_named_too(config):
    problems = item_blockers(secret_item(), admin_item(category="API_CREDENTIAL"), config)
    assert [p for p in problems if "'argo-admin' is a API_CREDENTIAL item" in p]


@pytest.mark.parametrize("present", ["secret", "admin"])
def test_only_one_of_the_two_items_is_a_blocker_naming_the_missing_one(config, present):
    secret, admin = (secret_item(), None) if present == "secret" else (None, admin_item())
    problems = item_blockers(secret, admin, config)
    missing = "argo-admin" if present == "secret" else "argocd-secret"
    assert problems == [f"1Password item {missing!r} is missing: adopt takes over both admin items or neither"]


# plan: what adopt does with what was found.


def test_eso_owning_argocd_secret_in_auto_mode_turns_the_charts_secret_off(config):
    taking = plan(config, [], {}, argocd_secret(eso=True))
    assert taking.stack_keys["argocdCreateSecret"] == "false"


def test_a_fixed_create_secret_mode_is_left_alone():
    fixed = config_of(argocdCreateSecret="true")
    assert "argocdCreateSecret" not in plan(fixed, [], {}, argocd_secret(eso=True)).stack_keys


def test_an_argocd_secret_eso_does_not_own_leaves_the_mode_alone(config):
    assert "argocdCreateSecret" not in plan(config, [], {}, argocd_secret(eso=False)).stack_keys
    assert "argocdCreateSecret" not in plan(config, [], {}, None).stack_keys


def test_found_items_are_adopted_as_the_source_of_truth(registrations, config):
    found = found_in(registrations, config, items=ADMIN_ITEMS)
    taking = plan(config, found, {"argocd-secret": secret_item(), "argo-admin": admin_item()}, None)
    assert taking.stack_keys == {"adoptedArgocdItems": True}
    assert taking.blockers == []


def test_no_items_found_sets_no_adopted_key(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword"}}
    taking = plan(config, found_in(registrations, config, cluster), {}, None)
    assert "adoptedArgocdItems" not in taking.stack_keys
    assert [f.wanted.name for f in taking.found] == ["connect-namespace"]


def test_found_items_that_cannot_be_kept_block_the_plan(registrations, config):
    found = found_in(registrations, config, items=ADMIN_ITEMS)
    items = {"argocd-secret": secret_item(), "argo-admin": admin_item(password=OTHER_PASSWORD)}
    taking = plan(config, found, items, None)
    assert len(taking.blockers) == 1 and "does not match" in taking.blockers[0]
    assert_no_secret(taking.blockers)


def test_argocd_secret_without_the_keep_annotation_gets_it(config):
    assert plan(config, [], {}, argocd_secret(keep=False)).keep_argocd_secret is True
    assert plan(config, [], {}, argocd_secret(keep=True)).keep_argocd_secret is False
    assert plan(config, [], {}, None).keep_argocd_secret is False


def test_releases_whose_objects_no_release_record_owns_are_unreleased(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_DEPLOYMENT] = {"metadata": {"name": "onepassword-connect", "namespace": "onepassword"}}
    cluster.paths["/apis/apps/v1/namespaces/eso/deployments/external-secrets"] = {"metadata": {"name": "x"}}
    taking = plan(config, found_in(registrations, config, cluster), {}, None)
    assert sorted(taking.unreleased) == ["connect-release", "external-secrets-release"]
    assert taking.blockers == []


def test_blockers_of_what_was_found_stop_the_plan(registrations, config):
    found = found_in(
        registrations, config, items=[ItemSummary("1", "argocd-secret"), ItemSummary("2", "argocd-secret")]
    )
    taking = plan(config, found, {"argocd-secret": secret_item()}, None)
    assert [b for b in taking.blockers if "ESO refuses a title it finds twice" in b]


# application_blockers: one line per Argo CD Application.


def tracked(name: str, application: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": {TRACKING_ID: f"{application}:/Kind:ns/{name}"}}}


def test_the_objects_of_one_application_are_one_blocker_line(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = tracked("onepassword", "root")
    cluster.paths["/api/v1/namespaces/onepassword/secrets/op-credentials"] = tracked("op-credentials", "root")
    cluster.paths["/api/v1/namespaces/eso"] = tracked("eso", "infra")
    for application in ("root", "infra"):
        cluster.paths[f"/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/{application}"] = {"metadata": {}}
    found = found_in(registrations, config, cluster)
    lines = application_blockers(found, config.argocd_namespace)
    assert len(lines) == 2
    infra, root = lines
    assert infra.startswith("Namespace eso: managed by Argo CD Application argocd/infra; ")
    assert "kubectl -n argocd patch application infra" in infra
    assert root.startswith(
        "Namespace onepassword, Secret onepassword/op-credentials: managed by Argo CD Application argocd/root; "
    )
    assert "kubectl -n argocd patch application root" in root and "delete application root" in root
    # The plan lists these lines, not one per object.
    assert plan(config, found, {}, None).blockers == lines


def test_objects_left_by_a_deleted_application_are_no_blocker(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = tracked("onepassword", "gone")
    found = found_in(registrations, config, cluster)
    assert application_blockers(found, config.argocd_namespace) == []
    assert plan(config, found, {}, None).blockers == []


# import_resources: the `pulumi import` file.


def everything_found(registrations: list[Registration], config: StackConfig) -> list[Found]:
    cluster = FakeCluster()
    cluster.paths[CONNECT_NAMESPACE] = {"metadata": {"name": "onepassword"}}
    cluster.paths[CONNECT_DEPLOYMENT] = {"metadata": {"name": "onepassword-connect"}}  # no release record
    cluster.paths["/api/v1/namespaces/eso"] = {"metadata": {"name": "eso"}}
    return found_in(registrations, config, cluster, [ItemSummary("S", "argocd-secret")])


@pytest.fixture(scope="module")
def import_file(registrations, config) -> list[dict[str, Any]]:
    found = everything_found(registrations, config)
    taking = plan(config, found, {}, None)
    assert taking.unreleased == ["connect-release"]
    return import_resources(taking, registrations, plugin_of("pulumi_onepassword"))


def test_the_import_file_names_the_parents_as_components(import_file):
    components = [entry for entry in import_file if entry.get("component")]
    assert components == [
        {"type": "cluster-secrets:index:ArgoCD", "name": "argocd", "component": True},
        {"type": "cluster-secrets:index:OnePasswordConnect", "name": "connect", "component": True},
        {"type": "cluster-secrets:index:ExternalSecrets", "name": "external-secrets", "component": True},
    ]


def test_the_import_file_declares_the_cluster_provider_as_the_program_does(import_file, registrations):
    [provider] = [entry for entry in import_file if entry["type"] == "pulumi:providers:kubernetes"]
    program = next(r for r in registrations if r.type == "pulumi:providers:kubernetes")
    assert provider["name"] == program.name == "cluster"
    assert provider["inputs"] == program.plain == {"context": "homelab", "enableSecretMutable": "true"}
    assert provider["version"] == importlib.metadata.version("pulumi_kubernetes")
    assert "id" not in provider


def test_kubernetes_entries_name_the_cluster_provider_and_their_parent(import_file):
    kubernetes = {entry["name"]: entry for entry in import_file if entry["type"].startswith("kubernetes:")}
    assert kubernetes == {
        "connect-namespace": {
            "type": "kubernetes:core/v1:Namespace",
            "name": "connect-namespace",
            "id": "onepassword",
            "parent": "connect",
            "provider": "cluster",
        },
        "external-secrets-namespace": {
            "type": "kubernetes:core/v1:Namespace",
            "name": "external-secrets-namespace",
            "id": "eso",
            "parent": "external-secrets",
            "provider": "cluster",
        },
    }


def test_item_entries_carry_the_onepassword_plugin_and_no_kubernetes_provider(import_file):
    [item] = [entry for entry in import_file if entry["type"] == ITEM]
    assert (item["name"], item["id"], item["parent"]) == ("argocd-secret-item", "vaults/V/items/S", "argocd")
    assert item["version"] == importlib.metadata.version("pulumi_onepassword")
    assert "provider" not in item


def test_a_release_without_a_record_is_not_imported(import_file):
    assert not [entry for entry in import_file if entry["type"] == HELM_RELEASE]
    assert "connect-release" not in {entry["name"] for entry in import_file}


def test_only_the_components_of_what_is_imported_are_listed(registrations, config):
    cluster = FakeCluster()
    cluster.paths[CONNECT_DEPLOYMENT] = {"metadata": {"name": "onepassword-connect"}}
    taking = plan(config, found_in(registrations, config, cluster), {}, None)
    resources = import_resources(taking, registrations, {"version": "1.2.3"})
    assert [entry["type"] for entry in resources] == ["pulumi:providers:kubernetes"]


def test_the_plugin_is_the_installed_sdks():
    plugin = plugin_of("pulumi_kubernetes")
    assert plugin["version"] == importlib.metadata.version("pulumi_kubernetes")
    assert set(plugin) <= {"version", "pluginDownloadUrl"}


# helm_owned: Helm's ownership metadata for objects no release owns.

HELM_PATCH = {
    "metadata": {
        "labels": {"app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "connect", "meta.helm.sh/release-namespace": "onepassword"},
    }
}


def test_a_namespaced_object_without_a_namespace_is_in_the_releases():
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "onepassword-connect"}}
    assert helm_owned(manifest, "connect", "onepassword") == (CONNECT_DEPLOYMENT, HELM_PATCH)


def test_a_namespaced_object_keeps_its_own_namespace():
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "elsewhere"}}
    path, patch = helm_owned(manifest, "connect", "onepassword")
    assert path == "/api/v1/namespaces/elsewhere/configmaps/c"
    assert patch == HELM_PATCH  # the release's namespace all the same


@pytest.mark.parametrize(
    ("api_version", "kind", "path"),
    [
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "/apis/rbac.authorization.k8s.io/v1/clusterroles/x"),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x",
        ),
        ("v1", "Namespace", "/api/v1/namespaces/x"),
    ],
)
def test_a_cluster_scoped_object_has_no_namespace_in_its_path(api_version, kind, path):
    manifest = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "ignored"}}
    assert helm_owned(manifest, "connect", "onepassword") == (path, HELM_PATCH)


def test_the_patch_marks_the_object_as_this_releases_so_discover_leaves_it_to_helm(registrations, config):
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "onepassword-connect"}}
    path, patch = helm_owned(manifest, "connect", "onepassword")
    patched = {"metadata": {"name": "onepassword-connect", "namespace": "onepassword", **patch["metadata"]}}
    assert owner_of(patched) == ("Helm release onepassword/connect", "")
    cluster = FakeCluster()
    cluster.paths[path] = patched
    assert found_in(registrations, config, cluster) == []


# stack_files.set_keys: the keys adopt writes, in a copy of the homelab stack file.


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.homelab.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_set_keys_keeps_comments_and_other_keys_and_writes_the_new_ones(project):
    path = project / "Pulumi.homelab.yaml"
    before_text, before = path.read_text(), stack_files.read_yaml(path)["config"]
    stack_files.set_keys(path, {"adoptedArgocdItems": True, "argocdCreateSecret": "false"})
    after_text, after = path.read_text(), stack_files.read_yaml(path)["config"]
    comments = [line.strip() for line in before_text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) == 5
    assert comments == [line.strip() for line in after_text.splitlines() if line.lstrip().startswith("#")]
    assert "  cluster-secrets:adoptedArgocdItems: true" in after_text.splitlines()
    assert after_text.count("cluster-secrets:argocdCreateSecret:") == 1
    # Only the new lines: the indentation and the line lengths of the rest as they were.
    assert {line for line in after_text.splitlines() if line not in before_text.splitlines()} == {
        "  cluster-secrets:adoptedArgocdItems: true",
        "  cluster-secrets:argocdCreateSecret: 'false'",
    }
    assert "    - kubernetes" in after_text.splitlines()
    assert after == {
        **before,
        "cluster-secrets:adoptedArgocdItems": True,
        "cluster-secrets:argocdCreateSecret": "false",
    }
    assert list(after) == [*before, "cluster-secrets:adoptedArgocdItems"]  # in place, and the new one last
    values = stack_files.stack_config(project, "homelab")
    assert values["cluster-secrets:adoptedArgocdItems"] == "true"
    assert values["cluster-secrets:argocdCreateSecret"] == "false"
    assert values["cluster-secrets:connectChartVersion"] == "1.17.0"
    assert values["pulumi:disable-default-providers"] == '["kubernetes"]'
    written = load_config(project_values(values), "homelab")
    assert (written.adopted_argocd_items, written.argocd_create_secret) == (True, "false")


def test_set_keys_writes_a_string_key_as_a_string(project):
    path = project / "Pulumi.homelab.yaml"
    stack_files.set_keys(path, {"argocdCreateSecret": "false"})
    config = stack_files.read_yaml(path)["config"]
    assert config["cluster-secrets:argocdCreateSecret"] == "false"  # not the boolean false Pulumi would refuse


def test_set_keys_with_no_keys_leaves_the_file_as_it_was(project):
    path = project / "Pulumi.homelab.yaml"
    before = path.read_text()
    stack_files.set_keys(path, {})
    assert path.read_text() == before


def test_take_over_writes_the_stack_keys_and_annotates_argocd_secret_keep(tmp_path: Path, registrations, config):
    stack_file = tmp_path / "Pulumi.homelab.yaml"
    stack_file.write_text((ROOT / "Pulumi.homelab.yaml").read_text())
    taking = plan(config, [], {}, argocd_secret(keep=False))  # ESO's argocd-secret, without the keep annotation
    cluster = FakeCluster()
    take_over(taking, config, stack_file, cluster, registrations, {})
    assert cluster.patched == [
        (
            "/api/v1/namespaces/argocd/secrets/argocd-secret",
            {"metadata": {"annotations": {"helm.sh/resource-policy": "keep"}}},
        )
    ]
    written = yaml.safe_load(stack_file.read_text())["config"]
    assert written["cluster-secrets:argocdCreateSecret"] == "false"
    assert written["cluster-secrets:kubeContext"] == "homelab"  # the rest is kept


def test_take_over_leaves_a_kept_argocd_secret_alone(tmp_path: Path, registrations, config):
    stack_file = tmp_path / "Pulumi.homelab.yaml"
    stack_file.write_text((ROOT / "Pulumi.homelab.yaml").read_text())
    cluster = FakeCluster()
    take_over(plan(config, [], {}, argocd_secret(keep=True)), config, stack_file, cluster, registrations, {})
    assert cluster.patched == []

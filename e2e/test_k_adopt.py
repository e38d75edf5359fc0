"""Scenario k: a cluster built by the reference steps by hand is taken over by `adopt`, in place.

On a fresh cluster (`e2e-adopt`, cluster 3, working vault E2EAdopt), as the reference steps do it:
kubectl for the namespaces and the two Secrets, `helm install` of the three charts from the served
chart repository with the reference values, kubectl for the ClusterSecretStore and the ExternalSecret,
and the items `argocd-secret` (a bcrypt `$2a$` hash, as `argocd account bcrypt` makes them, an mtime,
a secret key) and `argo-admin` (the known password) in 1Password. Then `up` stops at the preflight,
and `adopt --yes` takes it all over: argocd-secret keeps its uid and data, the known password still
logs in, no 1Password item is added, a password then changed in both items by hand in 1Password is
kept (the items are the source of truth), and a rotation afterwards works.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from cluster_secrets.kube import object_path
from components.admin_secret import ARGOCD_SECRET_KEYS
from e2e import harness
from e2e.conftest import ADOPT_ARGOCD_VAULT, ADOPT_VAULT, CONNECT_SERVERS, Connect, Deployment, SecretWatch, deployment
from e2e.controlplane import Cluster, Unavailable, start_argocd_server, wait_until
from e2e.harness import BIN, Secret, condition_true, ready, secret_data
from e2e.test_g_login import log_in

ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
EXTERNAL_SECRET = "/apis/external-secrets.io/v1beta1/namespaces/argocd/externalsecrets/argocd-secret"
PASSWORD = "correct-horse-battery-staple-e2e"  # the reference setup's admin password, known to the test
EDITED_PASSWORD = "changed-in-1password-by-hand-e2e"  # set in both items by hand after adopt
MTIME = "2026-12-01T10:00:00Z"
CLIENT = "eso-e2e-adopt"  # the Connect stand-in's name for this cluster's ESO (conftest.CONNECT_SERVERS)
INIT_ITEMS = dict(zip(("credentialsItem", "tokenItem"), CONNECT_SERVERS[CLIENT], strict=True))
APPLICATION = "infra"  # the Argo CD Application of the second variant
# The reference steps' values: ESO's webhooks off as in every e2e stack (harness.ESO_VALUES).
REFERENCE_VALUES = {
    "connect": {},
    "external-secrets": {"installCRDs": True, **harness.ESO_VALUES},
    "argo-cd": {
        "dex": {"enabled": False},
        "notifications": {"enabled": False},
        "configs": {"params": {"server.insecure": True}, "secret": {"createSecret": False}},
    },
}


def seed_items(connect: Connect, vault: str) -> dict[str, Secret]:
    """argocd-secret and argo-admin in `vault`, made "by hand": the fields in a section, a $2a$ hash."""
    secret_key = secrets.token_hex(32)
    salt = b"$2a$10$" + bcrypt.gensalt(10)[7:]
    password_hash = bcrypt.hashpw(PASSWORD.encode(), salt).decode()
    section = {"id": "reference", "label": ""}
    values = {"admin.password": password_hash, "admin.passwordMtime": MTIME, "server.secretkey": secret_key}
    fields = [
        {"section": {"id": "reference"}, "type": "CONCEALED", "label": label, "value": value}
        for label, value in values.items()
    ]
    connect.standin.add_item(vault, "argocd-secret", "SECURE_NOTE", fields=fields, sections=[section])
    login = [
        {"id": "username", "type": "STRING", "purpose": "USERNAME", "label": "username", "value": "admin"},
        {"id": "password", "type": "CONCEALED", "purpose": "PASSWORD", "label": "password", "value": PASSWORD},
    ]
    connect.standin.add_item(vault, "argo-admin", "LOGIN", fields=login)
    return {key: Secret(value) for key, value in values.items()}


def helm(
    cluster: Cluster, charts: str, workdir: Path, action: str, release: str, chart: str, version: str, ns: str
) -> str:
    """`helm install` (or `template`) of a served chart with the reference values, as the steps run it."""
    workdir.mkdir(parents=True, exist_ok=True)
    values = workdir / f"{release}-values.yaml"
    values.write_text(yaml.safe_dump(REFERENCE_VALUES[chart]))
    # HOME too: without it client-go writes its discovery cache to ./.kube in the project.
    env = {
        name: str(workdir / "helm" / name.lower()) for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
    }
    env["HOME"] = str(workdir)
    command = [str(BIN / "helm"), action, release, chart, "--repo", charts, "--version", version, "-n", ns]
    command += ["--kubeconfig", str(cluster.kubeconfig), "--kube-context", cluster.context, "-f", str(values)]
    if action == "template":
        command += ["--include-crds", "--kube-version", "1.34.10"]
    done = subprocess.run(command, env={"PATH": "/usr/bin:/bin", **env}, check=True, capture_output=True, text=True)
    return done.stdout


CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ClusterSecretStore"}


def apply_as_argocd(cluster: Cluster, manifests: list[dict[str, Any]], namespace: str) -> None:
    """Create what an Argo CD Application `infra` would have synced: each object with its tracking id."""
    crds_first = sorted(manifests, key=lambda m: m["kind"] != "CustomResourceDefinition")
    for manifest in crds_first:
        meta = manifest.setdefault("metadata", {})
        scoped = manifest["kind"] not in CLUSTER_SCOPED
        if scoped:
            meta["namespace"] = meta.get("namespace") or namespace
        group = manifest["apiVersion"].split("/")[0] if "/" in manifest["apiVersion"] else ""
        where = f"{meta['namespace']}/{meta['name']}" if scoped else meta["name"]
        tracking = f"{APPLICATION}:{group}/{manifest['kind']}:{where}"
        meta.setdefault("annotations", {})["argocd.argoproj.io/tracking-id"] = tracking
        path = object_path(manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        cluster.api("POST", path.rsplit("/", 1)[0], manifest)
        if manifest["kind"] == "CustomResourceDefinition":
            wait_until(lambda name=meta["name"]: _established(cluster, name), 60, f"CRD {meta['name']}")


def _established(cluster: Cluster, name: str) -> bool:
    return condition_true(cluster.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"), "Established")


def reference_setup(
    cluster: Cluster, charts: str, connect: Connect, workdir: Path, vault: str, argocd_app: bool
) -> None:
    """The reference steps, by hand, on `cluster`; with `argocd_app`, Connect and ESO (and their
    namespaces and the store) as an Argo CD Application `infra` rendering them from Git made them."""
    for ns in ("argocd",) if argocd_app else ("onepassword", "eso", "argocd"):
        cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    helm(cluster, charts, workdir, "install", "argocd", "argo-cd", "10.1.1", "argocd")
    if argocd_app:
        application = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": APPLICATION,
                "namespace": "argocd",
                "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            },
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example/infra.git", "path": "infra", "targetRevision": "HEAD"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
            },
        }
        cluster.api("POST", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications", application)
        for ns in ("onepassword", "eso"):
            apply_as_argocd(cluster, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}], ns)
    standin = connect.standin
    credentials = standin.file_content("InitHomeLab", INIT_ITEMS["credentialsItem"])
    token = connect.tokens[CLIENT]
    # kubectl create secret generic ... --from-literal: chart 1.17.0 wants the file base64-encoded.
    for ns, name, key, value in (
        ("onepassword", "op-credentials", "1password-credentials.json", base64.b64encode(credentials).decode()),
        ("eso", "onepassword-connect-token", "token", token),
    ):
        cluster.api(
            "POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": name}, "stringData": {key: value}}
        )
    for release, chart, version, ns in (
        ("connect", "connect", "1.17.0", "onepassword"),
        ("external-secrets", "external-secrets", "0.12.1", "eso"),
    ):
        if argocd_app:
            rendered = helm(cluster, charts, workdir, "template", release, chart, version, ns)
            apply_as_argocd(cluster, [m for m in yaml.safe_load_all(rendered) if m], ns)
        else:
            helm(cluster, charts, workdir, "install", release, chart, version, ns)
    for crd in ("clustersecretstores", "externalsecrets"):
        name = f"{crd}.external-secrets.io"
        wait_until(lambda name=name: _established(cluster, name), 60, f"CRD {name}")
    store = {
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "one-secretstore"},
        "spec": {
            "provider": {
                "onepassword": {
                    "connectHost": f"http://{harness.CONNECT_HOST_NAME}:8080",
                    "vaults": {vault: 1},
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
            }
        },
    }
    if argocd_app:
        apply_as_argocd(cluster, [store], "")
    else:
        cluster.api("POST", "/apis/external-secrets.io/v1beta1/clustersecretstores", store)
    external_secret = {
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": {"name": "argocd-secret", "namespace": "argocd"},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "one-secretstore"},
            "target": {
                "name": "argocd-secret",
                "creationPolicy": "Owner",
                "template": {"metadata": {"labels": {"app.kubernetes.io/part-of": "argocd"}}},
            },
            "data": [
                {"secretKey": key, "remoteRef": {"key": "argocd-secret", "property": key}} for key in ARGOCD_SECRET_KEYS
            ],
        },
    }
    cluster.api("POST", "/apis/external-secrets.io/v1beta1/namespaces/argocd/externalsecrets", external_secret)
    wait_until(
        lambda: ready(cluster.get(EXTERNAL_SECRET)) and cluster.get(ARGOCD_SECRET), 120, "argocd-secret from ESO"
    )


@contextlib.contextmanager
def reference_deployment(
    stack: str,
    index: int,
    vault: str,
    argocd_app: bool,
    workdir: Path,
    charts: str,
    connect: Connect,
    project: tuple[Path, dict[str, str]],
) -> Iterator[tuple[Deployment, dict[str, Secret]]]:
    """Stack `stack` on a fresh cluster `index` that the reference steps set up by hand, with their
    items in `vault`; and the items' values."""
    if not (BIN / "helm").exists():
        pytest.skip("no helm binary: run e2e/build-tools helm")
    settings = {"workingVault": vault, "storeVaults": {vault: 1}, **INIT_ITEMS}
    with deployment(stack, index, "homelab", workdir, charts, connect, project, **settings) as result:
        values = seed_items(connect, vault)
        reference_setup(result.cluster, charts, connect, workdir / stack, vault, argocd_app=argocd_app)
        yield result, values


@pytest.fixture(scope="module")
def by_hand(
    workdir: Path, charts: str, connect: Connect, project: tuple[Path, dict[str, str]]
) -> Iterator[tuple[Deployment, dict[str, Secret]]]:
    with reference_deployment("e2e-adopt", 3, ADOPT_VAULT, False, workdir, charts, connect, project) as result:
        yield result


def releases(cluster: Cluster) -> dict[str, str]:
    """Helm release name -> its latest revision, from the release records."""
    found = {}
    for ns in ("onepassword", "eso", "argocd"):
        listed = cluster.api("GET", f"/api/v1/namespaces/{ns}/secrets", query={"labelSelector": "owner=helm"})
        for record in listed["items"]:
            labels = record["metadata"]["labels"]
            found[labels["name"]] = max(found.get(labels["name"], "0"), labels["version"])
    return found


def test_up_stops_at_the_preflight_naming_what_the_reference_steps_made(
    by_hand: tuple[Deployment, dict[str, Secret]], connect: Connect
) -> None:
    adopted, _ = by_hand
    items_before = connect.standin.items(ADOPT_VAULT)
    revisions = releases(adopted.cluster)
    run = adopted.tool("up", "k: up on the reference setup")
    assert run.code == 2, "up did not stop (its output is above)"
    for what in (
        "Namespace onepassword (owner: nobody)",
        "Secret onepassword/op-credentials (owner: nobody)",
        "Secret eso/onepassword-connect-token (owner: nobody)",
        "Helm release onepassword/connect (chart connect) (owner: Helm, revision 1)",
        "Helm release eso/external-secrets",
        "Helm release argocd/argocd (chart argo-cd)",
        "ClusterSecretStore one-secretstore (owner: nobody)",
        "ExternalSecret argocd/argocd-secret (owner: nobody)",
        f"1Password item 'argocd-secret' in vault '{ADOPT_VAULT}' (owner: nobody)",
        f"1Password item 'argo-admin' in vault '{ADOPT_VAULT}' (owner: nobody)",
    ):
        assert what in run.output, what
    assert "./cluster-secrets adopt e2e-adopt" in run.output
    assert connect.standin.items(ADOPT_VAULT) == items_before
    assert releases(adopted.cluster) == revisions
    assert [route for route in run.requests if not route.startswith("GET ")] == []


def test_adopt_takes_it_over_in_place(by_hand: tuple[Deployment, dict[str, Secret]], connect: Connect) -> None:
    adopted, values = by_hand
    item_ids = sorted(item["id"] for item in connect.standin.items(ADOPT_VAULT))
    secret = adopted.get(ARGOCD_SECRET)
    uid, data = secret["metadata"]["uid"], secret_data(secret)
    assert data == values
    watch = SecretWatch(adopted.cluster)
    run = adopted.tool("adopt", "k: adopt --yes", extra=["--yes"])
    events = watch.stop()
    assert run.code == 0, "adopt failed (its output is above)"
    assert "kept as the source of truth" in run.output and "imported: the same Helm release goes on" in run.output
    assert "cluster-secrets:adoptedArgocdItems: true" in run.output
    assert 'cluster-secrets:argocdCreateSecret: "false"' in run.output
    secret = adopted.get(ARGOCD_SECRET)
    assert secret["metadata"]["uid"] == uid and secret_data(secret) == data
    assert "DELETED" not in events, events
    assert sorted(item["id"] for item in connect.standin.items(ADOPT_VAULT)) == item_ids
    outputs = adopted.outputs()
    assert outputs["argocdAdminPassword"] == Secret(PASSWORD)
    assert outputs["argocdAdminPasswordMtime"] == MTIME
    assert (outputs["argocdCreateSecret"], outputs["argocdSecretSynced"]) == (False, True)
    adopted.converged = True


def test_after_adopt_the_known_password_logs_in_and_up_changes_nothing(
    by_hand: tuple[Deployment, dict[str, Secret]],
) -> None:
    adopted, _ = by_hand
    adopted.require_converged()
    try:
        server = start_argocd_server(adopted.cluster)
    except Unavailable as missing:
        pytest.skip(str(missing))
    try:
        status, answer = log_in(server.url, PASSWORD)
        assert status == 200 and answer.get("token"), f"login refused with HTTP {status}"
    finally:
        server.stop()
    run = adopted.tool("up", "k: up after adopt")
    assert run.code == 0, "up failed (its output is above)"
    assert "run 1: no changes" in run.output
    assert [route for route in run.requests if not route.startswith("GET ")] == []
    status_run = adopted.tool("status", "k: status after adopt")
    assert status_run.code == 0, "a link is broken (the output is above)"


def test_an_edit_of_the_adopted_items_in_1password_is_kept_and_reaches_argocd_secret(
    by_hand: tuple[Deployment, dict[str, Secret]], connect: Connect
) -> None:
    """The adopted items are the source of truth until rotated: a password changed in 1Password (a
    new hash in argocd-secret's item, the password in argo-admin) is named, and `up` keeps it."""
    adopted, _ = by_hand
    adopted.require_converged()
    edited_hash = bcrypt.hashpw(EDITED_PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    connect.standin.edit_item(ADOPT_VAULT, "argocd-secret", {"admin.password": edited_hash})
    connect.standin.edit_item(ADOPT_VAULT, "argo-admin", {"password": EDITED_PASSWORD})
    connect.standin.synced()
    run = adopted.tool("status", "k: status after the adopted items were edited")
    assert run.code == 1
    drift = harness.status_links(run.output, ("drift",))["drift"]
    assert drift[0] == "BROKEN" and "'argocd-secret' in vault 'E2EAdopt': admin.password edited" in drift[1]
    run = adopted.tool("up", "k: up after the adopted items were edited")
    assert run.code == 0, "up failed (its output is above)"
    assert "The items are adopted (adoptedArgocdItems)" in run.output
    assert [route for route in run.requests if route.startswith("PUT ")] == [], "up wrote an adopted item"
    assert secret_data(adopted.get(ARGOCD_SECRET))["admin.password"] == Secret(edited_hash)
    assert adopted.outputs()["argocdAdminPassword"] == Secret(EDITED_PASSWORD)
    status_run = adopted.tool("status", "k: status after up kept the edit")
    assert status_run.code == 0, "a link is broken (the output is above)"


def test_a_rotation_after_adopt_works(by_hand: tuple[Deployment, dict[str, Secret]], connect: Connect) -> None:
    adopted, _ = by_hand
    adopted.require_converged()
    adopted.set_keys(argocdAdminPasswordRotation=1)
    run = adopted.tool("up", "k: rotation after adopt")
    assert run.code == 0, "up failed (its output is above)"
    password = adopted.outputs()["argocdAdminPassword"]
    assert password != Secret(PASSWORD)
    new_hash = secret_data(adopted.get(ARGOCD_SECRET))["admin.password"]
    assert bcrypt.checkpw(password.value.encode(), new_hash.value.encode())
    assert not bcrypt.checkpw(PASSWORD.encode(), new_hash.value.encode())
    assert connect.item_fields(ADOPT_VAULT, "argo-admin")["password"] == password


@pytest.fixture(scope="module")
def by_argocd(
    workdir: Path, charts: str, connect: Connect, project: tuple[Path, dict[str, str]]
) -> Iterator[tuple[Deployment, dict[str, Secret]]]:
    with reference_deployment(
        "e2e-adopt-argocd", 4, ADOPT_ARGOCD_VAULT, True, workdir, charts, connect, project
    ) as result:
        yield result


def test_adopt_refuses_what_an_argocd_application_manages_and_takes_it_once_detached(
    by_argocd: tuple[Deployment, dict[str, Secret]], connect: Connect
) -> None:
    adopted, values = by_argocd
    cluster = adopted.cluster
    run = adopted.tool("adopt", "k: adopt, Connect and ESO from an Argo CD Application", extra=["--yes"])
    assert run.code == 2, "adopt did not refuse (its output is above)"
    assert f"managed by Argo CD Application argocd/{APPLICATION}; detach it" in run.output
    assert f"kubectl -n argocd patch application {APPLICATION} --type merge" in run.output
    for what in ("Namespace onepassword", "Namespace eso", "ClusterSecretStore one-secretstore", "Helm release eso"):
        assert f"{what}" in run.output, what
    assert adopted.outputs() == {}

    # The non-cascading delete adopt names: the finalizer off, then the Application.
    path = f"/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/{APPLICATION}"
    cluster.api("PATCH", path, {"metadata": {"finalizers": None}})
    cluster.api("DELETE", path)
    wait_until(lambda: cluster.get(path) is None, 30, "the Application to go")

    secret = adopted.get(ARGOCD_SECRET)
    uid, data = secret["metadata"]["uid"], secret_data(secret)
    eso = adopted.get("/apis/apps/v1/namespaces/eso/deployments/external-secrets")
    watch = SecretWatch(cluster)
    run = adopted.tool("adopt", "k: adopt after the Application was detached", extra=["--yes"])
    events = watch.stop()
    assert run.code == 0, "adopt failed (its output is above)"
    assert "installed over the objects, which get Helm's ownership metadata first" in run.output
    secret = adopted.get(ARGOCD_SECRET)
    assert (secret["metadata"]["uid"], secret_data(secret)) == (uid, data) and data == values
    assert "DELETED" not in events, events
    # The objects the Application made are the releases' now, not new ones.
    taken = adopted.get("/apis/apps/v1/namespaces/eso/deployments/external-secrets")
    assert taken["metadata"]["uid"] == eso["metadata"]["uid"]
    assert taken["metadata"]["annotations"]["meta.helm.sh/release-name"] == "external-secrets"
    assert adopted.outputs()["argocdAdminPassword"] == Secret(PASSWORD)
    run = adopted.tool("up", "k: up after adopting from Argo CD")
    assert run.code == 0 and "run 1: no changes" in run.output

"""Scenario i: GitOps live on the converged primary stack `e2e` (README, GitOps; components/gitops.py).

Argo CD's server, repo-server and application controller run (controlplane.start_argocd_gitops),
and a Git server on loopback (git_server.py: git's own `git http-backend` behind basic auth) serves
a repository whose username and password are those of a Login item in the Connect stand-in. Under
`gitopsPath` the repository holds an app: a namespace labelled for the store, an ExternalSecret of
an app secret from another 1Password item, and a ConfigMap.

- `up` with the GitOps keys: `root` reaches Synced and Healthy, the app is deployed, its Secret
  equals the item, the Git server counted logins with the item's credentials and refused none; the
  repository Secret holds exactly the item's fields, in neither the output nor the state; `status`
  has its `gitops creds` and `gitops` links OK.
- The password rotated (the Git server takes the new one, then revokes the old, as a Git host's
  token rotation goes): after ESO's force-sync the repository Secret holds it and the next sync of
  a new commit succeeds, with no login refused.
- The Git server's password changed behind 1Password's back: the sync fails with an authentication
  error, `status` shows `gitops` BROKEN naming the repository (exit 1), the app stays deployed.
- The GitOps keys removed: `up` deletes `root` while the controller runs, and the app stays.
"""

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster_secrets.kube import eso_version
from cluster_secrets.status import ARGOCD_REFRESH
from cluster_secrets.synced import REFRESH_ANNOTATION
from components.external_secrets import STORE_ACCESS_LABEL
from components.gitops import REPOSITORY_LABELS, root_application
from e2e.conftest import Connect, Deployment
from e2e.controlplane import HostProcess, Unavailable, start_argocd_gitops, start_argocd_server, wait_until
from e2e.git_server import GitServer, Repository
from e2e.harness import FIGURES, PROJECT, Run, Secret, ready, secret_data, status_links

REPO_PATH = "clusters/e2e"
ITEM = "homelab-gitops"  # a Login item in the primary's working vault, which its store searches
APP_ITEM = "gitops-app"  # the app's own secret, in the same vault
VAULT = "HomeLab"
GITOPS_KEYS = ("gitopsRepoURL", "gitopsPath", "gitopsCredentialsItem")
APP_NAMESPACE = "gitops-app"

APPLICATION = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/root"
EXTERNAL_SECRET = "/apis/external-secrets.io/{version}/namespaces/argocd/externalsecrets/gitops-repository"
REPOSITORY_SECRET = "/api/v1/namespaces/argocd/secrets/gitops-repository"
ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
SECRETS = "/api/v1/namespaces/argocd/secrets"
APP_OBJECTS = {
    "namespace": f"/api/v1/namespaces/{APP_NAMESPACE}",
    "configmap": f"/api/v1/namespaces/{APP_NAMESPACE}/configmaps/app-config",
    "secret": f"/api/v1/namespaces/{APP_NAMESPACE}/secrets/app-secret",
}
FINALIZER = "resources-finalizer.argocd.argoproj.io"
SYNC_TIMEOUT = 180  # s: the controller's first look at a new Application, a fetch, a sync, ESO's sync


def remove_stack_keys(primary: Deployment, keys: tuple[str, ...]) -> None:
    """Delete project keys from the stack file, keeping what Pulumi added (the encryption salt)."""
    path = primary.project / f"Pulumi.{primary.stack}.yaml"
    document = yaml.safe_load(path.read_text())
    for key in keys:
        document["config"].pop(f"{PROJECT}:{key}", None)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def stack_keys(primary: Deployment) -> dict[str, Any]:
    path = primary.project / f"Pulumi.{primary.stack}.yaml"
    return yaml.safe_load(path.read_text())["config"]


def seed_login_item(connect: Connect) -> dict[str, Secret]:
    """A Login item as the 1Password app makes it: `username` and `password` fields (with purposes)."""
    try:
        connect.standin.item(VAULT, ITEM)
    except KeyError:
        connect.standin.add_item(
            VAULT,
            ITEM,
            "LOGIN",
            fields=[
                {
                    "id": "username",
                    "type": "STRING",
                    "purpose": "USERNAME",
                    "label": "username",
                    "value": f"e2e-bot-{secrets.token_hex(4)}",
                },
                {
                    "id": "password",
                    "type": "CONCEALED",
                    "purpose": "PASSWORD",
                    "label": "password",
                    "value": secrets.token_urlsafe(24),
                },
            ],
        )
    return connect.item_fields(VAULT, ITEM)


def cluster_secrets_of(primary: Deployment) -> list[dict[str, Any]]:
    """The Secrets Argo CD reads as clusters (argocd.argoproj.io/secret-type: cluster)."""
    query = {"labelSelector": "argocd.argoproj.io/secret-type=cluster"}
    return primary.cluster.api("GET", SECRETS, query=query)["items"]


def state_holds(primary: Deployment, values: list[Secret]) -> list[int]:
    """Which of `values` appear anywhere in the stack's state, secrets decrypted (indexes only)."""
    exported = subprocess.run(
        ["pulumi", "stack", "export", "--show-secrets", "--stack", primary.stack],
        cwd=primary.project,
        env=dict(primary.env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, "pulumi stack export failed"
    json.loads(exported.stdout)  # a whole state document, not an error text
    return [i for i, value in enumerate(values) if value.value in exported.stdout]


def seed_app_item(connect: Connect) -> dict[str, Secret]:
    """The app's secret: a Password item with an `api-key` field."""
    try:
        connect.standin.item(VAULT, APP_ITEM)
    except KeyError:
        field = {"id": "api-key", "type": "CONCEALED", "label": "api-key", "value": secrets.token_urlsafe(24)}
        connect.standin.add_item(VAULT, APP_ITEM, "PASSWORD", fields=[field])
    return connect.item_fields(VAULT, APP_ITEM)


def app_files(store_name: str, eso_api: str, greeting: str) -> dict[str, str]:
    """The app under gitopsPath, as its owner would write it: plain manifests, one per file."""
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": APP_NAMESPACE, "labels": {STORE_ACCESS_LABEL: store_name}},
    }
    external_secret = {
        "apiVersion": f"external-secrets.io/{eso_api}",
        "kind": "ExternalSecret",
        "metadata": {"name": "app-secret", "namespace": APP_NAMESPACE},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": store_name},
            "target": {"name": "app-secret"},
            "data": [{"secretKey": "api-key", "remoteRef": {"key": APP_ITEM, "property": "api-key"}}],
        },
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": APP_NAMESPACE},
        "data": {"greeting": greeting},
    }
    return {
        f"{REPO_PATH}/namespace.yaml": yaml.safe_dump(namespace),
        f"{REPO_PATH}/external-secret.yaml": yaml.safe_dump(external_secret),
        f"{REPO_PATH}/config-map.yaml": yaml.safe_dump(config_map),
    }


def annotate(primary: Deployment, path: str, key: str, value: str) -> None:
    primary.cluster.api("PATCH", path, {"metadata": {"annotations": {key: value}}})


def refresh_root(primary: Deployment, kind: str = "normal") -> None:
    """Make the application controller compare `root` again now (`hard`: past the repo-server's caches
    and the controller's grace period for repository errors)."""
    annotate(primary, APPLICATION, ARGOCD_REFRESH, kind)


def root_synced_at(primary: Deployment, revision: str) -> dict[str, Any] | None:
    """`root` when it is Synced to `revision`, Healthy, with no error condition and its last sync Succeeded."""
    found = primary.get(APPLICATION) or {}
    status = found.get("status") or {}
    errors = [c for c in status.get("conditions") or [] if c.get("type", "").endswith("Error")]
    synced = (status.get("sync") or {}).get("status") == "Synced"
    healthy = (status.get("health") or {}).get("status") == "Healthy"
    at = (status.get("sync") or {}).get("revision") == revision
    succeeded = (status.get("operationState") or {}).get("phase") == "Succeeded"
    return found if synced and healthy and at and succeeded and not errors else None


def gitops_links(run: Run) -> dict[str, tuple[str, str]]:
    """link -> (OK|BROKEN, text) for status's two GitOps links."""
    return status_links(run.output, ("gitops creds", "gitops"))


def app_objects(primary: Deployment) -> dict[str, dict[str, Any] | None]:
    return {name: primary.get(path) for name, path in APP_OBJECTS.items()}


def assert_app_deployed(primary: Deployment, what: str) -> None:
    """The app's namespace, ConfigMap and Secret exist and none is being deleted."""
    objects = app_objects(primary)
    missing = [name for name, found in objects.items() if found is None]
    assert missing == [], f"{what}: the app's {missing} are gone"
    deleting = [name for name, found in objects.items() if (found or {})["metadata"].get("deletionTimestamp")]
    assert deleting == [], f"{what}: the app's {deleting} are being deleted"


@dataclass
class GitOpsStack:
    """The primary stack with the GitOps keys, Argo CD running, the Git server serving the app."""

    primary: Deployment
    connect: Connect
    git: GitServer
    repo: Repository
    item: dict[str, Secret]  # the Login item's username and password
    app_item: dict[str, Secret]
    store_name: str
    eso_api: str
    argocd_secret_uid: str
    revision: str = ""  # the commit root should be synced to
    run: Run | None = None  # up with the GitOps keys
    removed: bool = False


@pytest.fixture(scope="module")
def gitops(primary: Deployment, connect: Connect, workdir: Path) -> Iterator[GitOpsStack]:
    primary.require_converged()
    outputs = primary.outputs()
    argocd: list[HostProcess] = []
    with GitServer(workdir / "git") as git:
        state = GitOpsStack(
            primary,
            connect,
            git,
            git.repository("homelab-gitops"),
            seed_login_item(connect),
            seed_app_item(connect),
            outputs["secretStoreName"],
            str(eso_version(outputs)),
            primary.get(ARGOCD_SECRET)["metadata"]["uid"],
        )
        git.allow(state.item["username"].value, state.item["password"].value)
        state.revision = state.repo.commit(app_files(state.store_name, state.eso_api, "hello"), "the app")
        try:
            try:
                argocd.append(start_argocd_server(primary.cluster))
                argocd += start_argocd_gitops(primary.cluster)
            except Unavailable as missing:
                pytest.skip(str(missing))
            primary.set_keys(gitopsRepoURL=state.repo.url, gitopsPath=REPO_PATH, gitopsCredentialsItem=ITEM)
            state.run = primary.tool("up", "i: up with GitOps")
            yield state
        finally:
            if not state.removed:
                # The removal test did not run or failed early: leave the stack as the scenarios found it.
                remove_stack_keys(primary, GITOPS_KEYS)
                primary.tool("up", "i: up without GitOps (clean-up)")
            for process in reversed(argocd):
                process.stop()
            # The app is Git's, not the stack's: the scenarios after this one do not expect it.
            if primary.get(APP_OBJECTS["namespace"]) is not None:
                primary.cluster.api("DELETE", APP_OBJECTS["namespace"])


def test_up_with_gitops_syncs_root_from_the_git_server_with_the_items_credentials(gitops: GitOpsStack) -> None:
    primary, item, run, git = gitops.primary, gitops.item, gitops.run, gitops.git
    assert run is not None and run.code == 0, "up with the GitOps keys failed (its output is above)"
    # No 1Password item was written: ESO reads the credentials item, Pulumi never does.
    assert [route for route in run.requests if not route.startswith("GET ")] == []
    outputs = primary.outputs()
    assert outputs["gitopsRootApplication"] == "argocd/root"

    # The root Application, as the API server stores it under Argo CD's CRD (from the argo-cd chart).
    application = primary.get(APPLICATION)
    assert application is not None, "no Application argocd/root"
    spec = application["spec"]
    assert spec == root_application("argocd", gitops.repo.url, REPO_PATH, "HEAD")["spec"]
    # No resources finalizer: deleting root must not make Argo CD delete every app it holds.
    assert FINALIZER not in (application["metadata"].get("finalizers") or [])

    # The ExternalSecret `gitops-repository`, Ready, under the API version of the stack's ESO.
    path = EXTERNAL_SECRET.format(version=gitops.eso_api)
    external_secret = wait_until(
        lambda: found if ready(found := primary.get(path)) else None, 60, "the ExternalSecret gitops-repository Ready"
    )
    # Its Secret: labelled for Argo CD as a repository, holding exactly url, type and the item's fields.
    secret = primary.get(REPOSITORY_SECRET)
    assert secret is not None, "no Secret argocd/gitops-repository"
    labels = secret["metadata"].get("labels") or {}
    assert {key: labels.get(key) for key in REPOSITORY_LABELS} == REPOSITORY_LABELS
    data = secret_data(secret)
    assert sorted(data) == ["password", "type", "url", "username"]
    assert (data["url"], data["type"]) == (Secret(gitops.repo.url), Secret("git"))
    assert data["username"] == item["username"], "username differs from the 1Password item"
    assert data["password"] == item["password"], "password differs from the 1Password item"
    (controller,) = [o for o in secret["metadata"].get("ownerReferences", []) if o.get("controller")]
    assert (controller["kind"], controller["uid"]) == ("ExternalSecret", external_secret["metadata"]["uid"])

    # Argo CD fetched the repository with those credentials and deployed the app.
    started = time.monotonic()
    wait_until(lambda: root_synced_at(primary, gitops.revision), SYNC_TIMEOUT, "root Synced and Healthy")
    FIGURES.note(f"i: root Synced and Healthy {time.monotonic() - started:.0f}s after up returned")
    assert_app_deployed(primary, "after the first sync")
    config_map = primary.get(APP_OBJECTS["configmap"])
    assert config_map["data"] == {"greeting": "hello"}
    assert secret_data(primary.get(APP_OBJECTS["secret"])) == {"api-key": gitops.app_item["api-key"]}
    assert git.logins(item["username"].value, item["password"].value) > 0, "Argo CD never logged in"
    assert git.refused == 0, f"the Git server refused {git.refused} logins"
    logins = git.logins(item["username"].value, item["password"].value)
    FIGURES.note(f"i: the Git server accepted {logins} requests with the item's credentials, refused {git.refused}")

    # The credentials never pass through Pulumi: not in the tool's output, nor anywhere in the state.
    leaked = [name for name in ("username", "password") if item[name].value in run.output]
    assert leaked == [], f"the up output shows the item's {leaked}"
    assert state_holds(primary, [item["username"], item["password"]]) == [], "the state holds the item's fields"

    # The in-cluster cluster Secret the argo-cd chart makes carries the stack's metadata.
    (cluster,) = cluster_secrets_of(primary)
    annotations = cluster["metadata"].get("annotations") or {}
    assert annotations.get("cluster-secrets.io/stack") == primary.stack
    assert annotations.get("cluster-secrets.io/gitops-repo-url") == gitops.repo.url
    assert annotations.get("cluster-secrets.io/gitops-path") == REPO_PATH
    assert secret_data(cluster)["server"] == Secret("https://kubernetes.default.svc")
    # argocd-secret was left alone (the Argo CD release's values changed: the cluster Secret).
    assert primary.get(ARGOCD_SECRET)["metadata"]["uid"] == gitops.argocd_secret_uid

    status = primary.tool("status", "i: status, GitOps synced")
    assert status.code == 0, "status found a broken link (its output is above)"
    links = gitops_links(status)
    assert [state for state, _ in links.values()] == ["OK", "OK"], links
    assert f"Synced at {gitops.revision[:12]}, Healthy" in links["gitops"][1]


def test_a_rotated_password_reaches_argo_cd_through_eso_and_the_next_sync_succeeds(gitops: GitOpsStack) -> None:
    primary, git, old = gitops.primary, gitops.git, gitops.item
    username, new_password = old["username"].value, secrets.token_urlsafe(24)
    # As a Git host's token rotation goes: the new password works, 1Password gets it, the old is revoked.
    git.allow(username, new_password)
    gitops.connect.standin.edit_item(VAULT, ITEM, {"password": new_password})

    def holds_new_password() -> bool:
        # ESO syncs at once when the annotation changes (FACTS.md, ESO); Connect may serve the old
        # item for its sync delay, so ask again until the Secret holds the new one.
        annotate(primary, EXTERNAL_SECRET.format(version=gitops.eso_api), REFRESH_ANNOTATION, str(time.time()))
        time.sleep(2)
        return secret_data(primary.get(REPOSITORY_SECRET))["password"] == Secret(new_password)

    wait_until(holds_new_password, 60, "the repository Secret to hold the new password")
    git.revoke(username, old["password"].value)
    gitops.item = {"username": old["username"], "password": Secret(new_password)}
    refused = git.refused
    revision = gitops.repo.commit(app_files(gitops.store_name, gitops.eso_api, "hello again"), "a new greeting")
    started = time.monotonic()
    refresh_root(primary)
    wait_until(lambda: root_synced_at(primary, revision), SYNC_TIMEOUT, "root Synced at the new commit")
    FIGURES.note(f"i: a new commit Synced {time.monotonic() - started:.0f}s after a refresh, with the rotated password")
    gitops.revision = revision
    assert primary.get(APP_OBJECTS["configmap"])["data"] == {"greeting": "hello again"}
    assert git.logins(username, new_password) > 0, "Argo CD never logged in with the new password"
    assert git.refused == refused, "a login was refused after the repository Secret held the new password"


def test_credentials_the_repository_refuses_break_the_gitops_link_and_keep_the_app(gitops: GitOpsStack) -> None:
    primary, git, item = gitops.primary, gitops.git, gitops.item
    username, password = item["username"].value, item["password"].value
    # The password changed on the Git server and not in 1Password.
    other = secrets.token_urlsafe(24)
    git.revoke(username, password)
    git.allow(username, other)
    refused = git.refused
    try:
        refresh_root(primary, "hard")

        def refused_condition() -> str | None:
            conditions = ((primary.get(APPLICATION) or {}).get("status") or {}).get("conditions") or []
            messages = [c.get("message", "") for c in conditions if c.get("type") == "ComparisonError"]
            return next((m for m in messages if "authentication" in m.lower()), None)

        started = time.monotonic()
        message = wait_until(refused_condition, SYNC_TIMEOUT, "root to report the refused login")
        FIGURES.note(f"i: root reported the refused login {time.monotonic() - started:.0f}s after a hard refresh")
        print(f"\n--- i: root's condition with refused credentials: {message}")
        assert git.refused > refused, "the Git server refused nothing"
        run = primary.tool("status", "i: status, credentials refused")
        assert run.code == 1, "status did not fail on refused credentials"
        links = gitops_links(run)
        state, text = links["gitops"]
        assert state == "BROKEN"
        assert f"({gitops.repo.url}): the repository refused the credentials" in text
        assert f"in the 1Password item {ITEM}" in text
        leaked = [name for name, value in (("password", password), ("other", other)) if value in run.output]
        assert leaked == [], f"status printed a password ({leaked})"
        assert_app_deployed(primary, "with refused credentials")
    finally:
        git.revoke(username, other)
        git.allow(username, password)
    refresh_root(primary, "hard")
    wait_until(lambda: root_synced_at(primary, gitops.revision), SYNC_TIMEOUT, "root Synced again")


def test_removing_the_gitops_keys_deletes_root_and_leaves_the_app(gitops: GitOpsStack) -> None:
    primary = gitops.primary
    remove_stack_keys(primary, GITOPS_KEYS)
    gitops.removed = True
    assert not [key for key in GITOPS_KEYS if f"{PROJECT}:{key}" in stack_keys(primary)]
    before = app_objects(primary)
    run = primary.tool("up", "i: up without GitOps")
    assert run.code == 0, "up without the GitOps keys failed (its output is above)"
    assert "gitopsRootApplication" not in primary.outputs()
    # No finalizer on root, so Pulumi's delete removes it at once, and Argo CD deletes nothing of it.
    assert primary.get(APPLICATION) is None
    assert primary.get(EXTERNAL_SECRET.format(version=gitops.eso_api)) is None
    wait_until(lambda: primary.get(REPOSITORY_SECRET) is None, 60, "the Secret gitops-repository to be deleted")
    assert [s["metadata"]["name"] for s in cluster_secrets_of(primary)] == []
    # The application controller is running and has seen root go; the app is still there, the same objects.
    time.sleep(15)
    running = [p.name for p in primary.cluster.extras if p.name == "argocd-application-controller" and p.running]
    assert running == ["argocd-application-controller"], "the application controller is not running"
    assert_app_deployed(primary, "after root was deleted")
    uids = {name: (found or {}).get("metadata", {}).get("uid") for name, found in app_objects(primary).items()}
    assert uids == {name: found["metadata"]["uid"] for name, found in before.items()}
    assert primary.get(ARGOCD_SECRET)["metadata"]["uid"] == gitops.argocd_secret_uid

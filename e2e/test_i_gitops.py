"""Scenario i: GitOps on the converged primary stack `e2e` (README, GitOps; components/gitops.py).

With `gitopsRepoURL`, `gitopsPath` and `gitopsCredentialsItem` (a Login item seeded in the Connect
stand-in) set, one `up` makes the root Application, accepted by the real API server against the
Application CRD the argo-cd chart installs, and the ExternalSecret `gitops-repository`, whose Secret
holds exactly the item's username and password, labelled for Argo CD as a repository. Removing the
keys and running `up` again takes all of it away, so the stack is as scenarios a-h left it.

Argo CD's application controller and repo-server do not run here (e2e/README.md): nothing ever syncs
`root` or clones the repository (https://git.example is not a real host), so the Application has no
status; what is proved is what the API server stores and what ESO makes.
"""

import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cluster_secrets.kube import eso_version
from components.gitops import REPOSITORY_LABELS, root_application
from e2e.conftest import Connect, Deployment
from e2e.controlplane import wait_until
from e2e.harness import PROJECT, Run, Secret, ready, secret_data

REPO_URL = "https://git.example/homelab-gitops.git"
REPO_PATH = "clusters/e2e"
ITEM = "homelab-gitops"  # a Login item in the primary's working vault, which its store searches
VAULT = "HomeLab"
GITOPS_KEYS = ("gitopsRepoURL", "gitopsPath", "gitopsCredentialsItem")

APPLICATION = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/root"
EXTERNAL_SECRET = "/apis/external-secrets.io/{version}/namespaces/argocd/externalsecrets/gitops-repository"
REPOSITORY_SECRET = "/api/v1/namespaces/argocd/secrets/gitops-repository"
ARGOCD_SECRET = "/api/v1/namespaces/argocd/secrets/argocd-secret"
SECRETS = "/api/v1/namespaces/argocd/secrets"
FINALIZER = "resources-finalizer.argocd.argoproj.io"


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


class GitOpsStack:
    """The primary stack with the GitOps keys, for the two tests; put back as it was at the end."""

    def __init__(self, primary: Deployment, item: dict[str, Secret], run: Run, argocd_secret_uid: str):
        self.primary, self.item, self.run, self.argocd_secret_uid = primary, item, run, argocd_secret_uid
        self.removed = False


@pytest.fixture(scope="module")
def gitops(primary: Deployment, connect: Connect) -> Iterator[GitOpsStack]:
    primary.require_converged()
    item = seed_login_item(connect)
    argocd_secret_uid = primary.get(ARGOCD_SECRET)["metadata"]["uid"]
    primary.set_keys(gitopsRepoURL=REPO_URL, gitopsPath=REPO_PATH, gitopsCredentialsItem=ITEM)
    state = GitOpsStack(primary, item, primary.tool("up", "i: up with GitOps"), argocd_secret_uid)
    try:
        yield state
    finally:
        if not state.removed:
            # The removal test did not run or failed early: leave the stack as the scenarios found it.
            remove_stack_keys(primary, GITOPS_KEYS)
            primary.tool("up", "i: up without GitOps (clean-up)")


def test_up_with_gitops_makes_the_root_application_and_the_repository_secret(gitops: GitOpsStack) -> None:
    primary, item, run = gitops.primary, gitops.item, gitops.run
    assert run.code == 0, "up with the GitOps keys failed (its output is above)"
    # No 1Password item was written: ESO reads the credentials item, Pulumi never does.
    assert [route for route in run.requests if not route.startswith("GET ")] == []
    outputs = primary.outputs()
    assert outputs["gitopsRootApplication"] == "argocd/root"

    # The root Application, as the API server stores it under Argo CD's CRD (from the argo-cd chart).
    application = primary.get(APPLICATION)
    assert application is not None, "no Application argocd/root"
    spec = application["spec"]
    assert spec["source"] == {"repoURL": REPO_URL, "path": REPO_PATH, "targetRevision": "HEAD"}
    assert spec["project"] == "default"
    assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "argocd"}
    assert spec["syncPolicy"] == {"automated": {"prune": True, "selfHeal": True}}
    # Nothing the program sets was pruned by the CRD's schema: the stored spec is the program's.
    assert spec == root_application("argocd", REPO_URL, REPO_PATH, "HEAD")["spec"]
    # No resources finalizer: deleting root must not make Argo CD delete every app it holds.
    assert FINALIZER not in (application["metadata"].get("finalizers") or [])
    # No application controller runs here, so nobody ever reports on root: no sync, no health.
    assert not (application.get("status") or {}).get("sync"), "something synced root (no controller should run)"

    # The ExternalSecret `gitops-repository`, Ready, under the API version of the stack's ESO.
    version = eso_version(outputs)
    path = EXTERNAL_SECRET.format(version=version)
    external_secret = wait_until(
        lambda: found if ready(found := primary.get(path)) else None, 60, "the ExternalSecret gitops-repository Ready"
    )

    # Its Secret: labelled for Argo CD as a repository, holding exactly url, type and the item's fields.
    secret = primary.get(REPOSITORY_SECRET)
    assert secret is not None, "no Secret argocd/gitops-repository"
    labels = secret["metadata"].get("labels") or {}
    assert labels.get("argocd.argoproj.io/secret-type") == "repository"
    assert {key: labels.get(key) for key in REPOSITORY_LABELS} == REPOSITORY_LABELS
    data = secret_data(secret)
    assert sorted(data) == ["password", "type", "url", "username"]
    assert data["url"] == Secret(REPO_URL)
    assert data["type"] == Secret("git")
    assert data["username"] == item["username"], "username differs from the 1Password item"
    assert data["password"] == item["password"], "password differs from the 1Password item"
    (controller,) = [o for o in secret["metadata"].get("ownerReferences", []) if o.get("controller")]
    assert (controller["kind"], controller["uid"]) == ("ExternalSecret", external_secret["metadata"]["uid"])

    # The credentials never pass through Pulumi: not in the tool's output, nor anywhere in the state.
    leaked = [name for name in ("username", "password") if item[name].value in run.output]
    assert leaked == [], f"the up output shows the item's {leaked}"
    assert state_holds(primary, [item["username"], item["password"]]) == [], "the state holds the item's fields"

    # The in-cluster cluster Secret the argo-cd chart makes carries the stack's metadata.
    (cluster,) = cluster_secrets_of(primary)
    annotations = cluster["metadata"].get("annotations") or {}
    assert annotations.get("cluster-secrets.io/stack") == primary.stack
    assert annotations.get("cluster-secrets.io/gitops-repo-url") == REPO_URL
    assert annotations.get("cluster-secrets.io/gitops-path") == REPO_PATH
    assert secret_data(cluster)["server"] == Secret("https://kubernetes.default.svc")

    # argocd-secret was left alone (the Argo CD release's values changed: the cluster Secret).
    assert primary.get(ARGOCD_SECRET)["metadata"]["uid"] == gitops.argocd_secret_uid


def test_removing_the_gitops_keys_takes_it_all_away(gitops: GitOpsStack) -> None:
    primary = gitops.primary
    remove_stack_keys(primary, GITOPS_KEYS)
    gitops.removed = True
    assert not [key for key in GITOPS_KEYS if f"{PROJECT}:{key}" in stack_keys(primary)]
    run = primary.tool("up", "i: up without GitOps")
    assert run.code == 0, "up without the GitOps keys failed (its output is above)"
    assert "gitopsRootApplication" not in primary.outputs()
    # No finalizer on root, so Pulumi's delete removes it at once (no controller would ever clear one).
    assert primary.get(APPLICATION) is None
    version = eso_version(primary.outputs())
    assert primary.get(EXTERNAL_SECRET.format(version=version)) is None
    # The repository Secret goes with its owner, through the garbage collector.
    wait_until(lambda: primary.get(REPOSITORY_SECRET) is None, 60, "the Secret gitops-repository to be deleted")
    # The chart no longer makes the annotated cluster Secret.
    assert [s["metadata"]["name"] for s in cluster_secrets_of(primary)] == []
    assert primary.get(ARGOCD_SECRET)["metadata"]["uid"] == gitops.argocd_secret_uid

"""GitOps: the root Application, the repository Secret from 1Password, the cluster's metadata."""

import json

import pytest

from cluster_secrets.offline import plaintext_strings
from components import outputs
from components.errors import ConfigError
from tests.conftest import CANARIES, Run, default_vaults, fakes, run_stack
from tests.test_policies import POLICIES, violations
from tests.test_program import HOMELAB_INVENTORY, depends_on
from tests.test_second_cluster import run_second

APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
REPO = "https://github.com/example/homelab-gitops.git"
SSH_REPO = "git@github.com:example/homelab-gitops.git"
PUBLIC = {"gitopsRepoURL": REPO, "gitopsPath": "clusters/homelab"}
HTTPS = {**PUBLIC, "gitopsCredentialsItem": "gitops-repository"}
SSH = {**PUBLIC, "gitopsRepoURL": SSH_REPO, "gitopsCredentialsItem": "gitops-deploy-key"}
# The items behind the credentials: canaries, which the program must never read.
CANARY_GIT_PASSWORD = "canary-git-token-91c2"
CANARY_SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----canary-ssh-key-55e0"


def vaults_with_repository_items() -> dict:
    vaults = default_vaults()
    vaults["HomeLab"] = {
        "gitops-repository": {"username": "git", "password": CANARY_GIT_PASSWORD},
        "gitops-deploy-key": {"sshPrivateKey": CANARY_SSH_KEY},
    }
    return vaults


def gitops_run(config: dict, **kwargs) -> Run:
    return run_stack(config=config, vaults=vaults_with_repository_items(), **kwargs)


@pytest.fixture(scope="module")
def https() -> Run:
    return gitops_run(HTTPS)


def gitops_names(run: Run) -> set[str]:
    return {r.name for r in run.registrations if r.name.startswith("gitops")}


# Without a repository nothing of this exists.


def test_without_a_repository_nothing_new_is_registered_or_exported(homelab):
    assert {(r.type, r.name) for r in homelab.registrations} == {(t, n) for t, n, _ in HOMELAB_INVENTORY}
    assert gitops_names(homelab) == set()
    assert outputs.GITOPS_ROOT_APPLICATION not in homelab.outputs
    assert "clusterCredentials" not in homelab.named("argocd-release").plain["values"]["configs"]


# A public repository: the root Application, no credentials.


def test_a_public_repository_gets_the_root_application_only():
    run = gitops_run(PUBLIC)
    assert gitops_names(run) == {"gitops", "gitops-root"}
    application = run.one(APPLICATION).plain
    assert application == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "root", "namespace": "argocd", "annotations": {"pulumi.com/patchForce": "true"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": REPO, "path": "clusters/homelab", "targetRevision": "HEAD"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }
    assert run.outputs[outputs.GITOPS_ROOT_APPLICATION] == "argocd/root"
    assert outputs.GITOPS_ROOT_APPLICATION not in run.secret_outputs


def test_the_root_has_no_cascading_finalizer():
    # Deleting the root (destroy, replacement) must not make Argo CD delete every app in the cluster.
    assert "finalizers" not in gitops_run(PUBLIC).one(APPLICATION).plain["metadata"]


def test_path_and_revision_come_from_config():
    run = gitops_run({**PUBLIC, "gitopsPath": ".", "gitopsRevision": "v1.2.0"})
    source = run.one(APPLICATION).plain["spec"]["source"]
    assert (source["path"], source["targetRevision"]) == (".", "v1.2.0")


# Credentials from 1Password, through ESO alone.


def test_https_credentials_make_a_repository_secret_from_the_items_username_and_password(https):
    external_secret = https.named("gitops-repository").plain
    assert external_secret["apiVersion"] == "external-secrets.io/v1beta1"
    assert external_secret["metadata"] == {
        "name": "gitops-repository",
        "namespace": "argocd",
        "annotations": {
            "pulumi.com/waitFor": "condition=Ready",
            "pulumi.com/timeoutSeconds": "300",
            "pulumi.com/patchForce": "true",
        },
    }
    spec = external_secret["spec"]
    assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "one-secretstore"}
    assert spec["target"] == {
        "name": "gitops-repository",
        "creationPolicy": "Owner",
        "template": {
            "metadata": {
                "labels": {"argocd.argoproj.io/secret-type": "repository", "app.kubernetes.io/part-of": "argocd"}
            },
            "data": {"url": REPO, "type": "git", "username": "{{ .username }}", "password": "{{ .password }}"},
        },
    }
    assert spec["data"] == [
        {"secretKey": field, "remoteRef": {"key": "gitops-repository", "property": field}}
        for field in ("username", "password")
    ]


def test_an_ssh_url_reads_the_items_ssh_private_key():
    run = gitops_run(SSH)
    spec = run.named("gitops-repository").plain["spec"]
    assert spec["target"]["template"]["data"] == {
        "url": SSH_REPO,
        "type": "git",
        "sshPrivateKey": "{{ .sshPrivateKey }}",
    }
    assert spec["data"] == [
        {"secretKey": "sshPrivateKey", "remoteRef": {"key": "gitops-deploy-key", "property": "sshPrivateKey"}}
    ]
    assert run.one(APPLICATION).plain["spec"]["source"]["repoURL"] == SSH_REPO


def test_an_ssh_scheme_url_is_ssh_too():
    run = gitops_run({**SSH, "gitopsRepoURL": "ssh://git@git.example:2222/homelab.git"})
    assert "sshPrivateKey" in run.named("gitops-repository").plain["spec"]["target"]["template"]["data"]


def test_the_repository_secret_uses_the_v1_api_with_a_newer_eso():
    run = gitops_run({**HTTPS, "esoChartVersion": "2.9.0"})
    assert run.named("gitops-repository").type == "kubernetes:external-secrets.io/v1:ExternalSecret"


@pytest.mark.parametrize("config", [HTTPS, SSH], ids=["https", "ssh"])
def test_the_credentials_never_pass_through_pulumi(config):
    run = gitops_run(config)
    # 1Password is read exactly as without GitOps: the item behind the credentials is ESO's to read.
    assert sorted(run.onepassword_invokes()) == sorted(
        ["onepassword:index/getVault:getVault"] * 2 + ["onepassword:index/getItem:getItem"] * 2
    )
    assert not any(args.get("title") in ("gitops-repository", "gitops-deploy-key") for _, args in run.monitor.invokes)
    everything = json.dumps([r.inputs for r in run.registrations]) + json.dumps(run.monitor.registered_outputs)
    everything += json.dumps(run.outputs)
    assert CANARY_GIT_PASSWORD not in everything and "canary-ssh-key" not in everything


def test_no_secret_in_plaintext_anywhere_with_gitops(https):
    checked = 0
    places = [(r.name, r.inputs) for r in https.registrations]
    places += [(urn, registered) for urn, registered in https.monitor.registered_outputs.items()]
    for place, values in places:
        for path, text in plaintext_strings(values):
            checked += 1
            for canary in (*CANARIES, CANARY_GIT_PASSWORD, https.outputs[outputs.ARGOCD_ADMIN_PASSWORD]):
                assert canary not in text, f"{place}{path} carries a secret in plaintext"
    assert checked > 100


# Order: the Application after its CRD (the Argo CD release) and after its credentials.


@pytest.mark.parametrize(
    "previous",
    [{}, {outputs.ARGOCD_CREATE_SECRET: False, outputs.ARGOCD_SECRET_SYNCED: True}],
    ids=["new-stack", "handed-over"],
)
def test_the_root_comes_after_the_argo_cd_release_and_the_repository_secret(previous):
    run = gitops_run(HTTPS, previous_outputs=previous)
    assert depends_on(run, "gitops-root", "argocd-release", "argocd-external-secret", "gitops-repository")
    assert depends_on(run, "gitops-repository", "external-secrets-store", "argocd-namespace")
    # And nothing of Argo CD waits for GitOps: no cycle, and the hand-off order is unchanged.
    assert not depends_on(run, "argocd-release", "gitops-repository")


def test_a_public_root_comes_after_the_argo_cd_release():
    run = gitops_run(PUBLIC)
    assert depends_on(run, "gitops-root", "argocd-release")


def test_every_kubernetes_resource_uses_the_explicit_provider(https):
    provider = https.one("pulumi:providers:kubernetes")
    kubernetes = [r for r in https.registrations if r.type.startswith("kubernetes:")]
    assert len(kubernetes) == 12
    assert all(r.provider.startswith(provider.urn + "::") for r in kubernetes)
    assert {r.name for r in kubernetes} >= {"gitops-root", "gitops-repository"}


def test_what_a_gitops_stack_registers_passes_every_policy(https):
    for registration in https.registrations:
        for policy in POLICIES:
            assert violations(policy, registration.type, registration.plain, registration.name) == [], (
                policy.name,
                registration.name,
            )


# Cluster metadata for ApplicationSets, on the chart's in-cluster cluster Secret.


def test_the_in_cluster_secret_carries_the_stacks_metadata(https):
    clusters = https.named("argocd-release").plain["values"]["configs"]["clusterCredentials"]
    assert clusters == {
        "in-cluster": {
            "server": "https://kubernetes.default.svc",
            "config": {"tlsClientConfig": {"insecure": False}},
            "annotations": {
                "cluster-secrets.io/stack": "homelab",
                "cluster-secrets.io/secret-store": "one-secretstore",
                "cluster-secrets.io/connect-host": "http://onepassword-connect.onepassword.svc.cluster.local:8080",
                "cluster-secrets.io/connect-chart-version": "1.17.0",
                "cluster-secrets.io/external-secrets-chart-version": "0.12.1",
                "cluster-secrets.io/argocd-chart-version": "10.1.1",
                "cluster-secrets.io/gitops-repo-url": REPO,
                "cluster-secrets.io/gitops-path": "clusters/homelab",
                "cluster-secrets.io/gitops-revision": "HEAD",
            },
        }
    }
    # Plain config only: the release waits for nothing new.
    assert not depends_on(https, "argocd-release", "external-secrets-store")


# The second cluster: its own root, its own path; the credentials item shared by title, read-only.

SECOND = {"gitopsRepoURL": REPO, "gitopsPath": "clusters/homelab-2", "gitopsCredentialsItem": "gitops-repository"}


def test_the_second_cluster_gets_its_own_root_application():
    run = run_second(config=SECOND)
    provider = run.one("pulumi:providers:kubernetes")
    assert provider.plain["context"] == "homelab-2"
    application = run.one(APPLICATION)
    assert application.provider.startswith(provider.urn + "::")
    assert application.plain["spec"]["source"]["path"] == "clusters/homelab-2"
    assert run.outputs[outputs.GITOPS_ROOT_APPLICATION] == "argocd/root"
    annotations = run.named("argocd-release").plain["values"]["configs"]["clusterCredentials"]["in-cluster"]
    assert annotations["annotations"]["cluster-secrets.io/stack"] == "homelab-2"
    assert annotations["annotations"]["cluster-secrets.io/argocd-chart-version"] == "9.4.2"  # the primary's


def test_the_second_cluster_reads_the_shared_item_and_writes_nothing():
    run = run_second(config=SECOND)
    data = run.named("gitops-repository").plain["spec"]["data"]
    assert {entry["remoteRef"]["key"] for entry in data} == {"gitops-repository"}
    # Sharing the admin items too: no 1Password item is written, by this stack or for the repository.
    assert run.by_type("onepassword:index/item:Item") == []
    assert len(run.registrations) == 14 + 3  # the sharing secondary's 14, plus GitOps, root, repository


def test_the_second_cluster_must_search_the_vault_of_the_shared_item():
    config = {**SECOND, "gitopsCredentialsVault": "GitOps"}
    with pytest.raises(ConfigError, match="storeVaults: must include 'GitOps', the vault of gitopsCredentialsItem"):
        run_second(config=config)
    run = run_second(config={**config, "storeVaults": {"HomeLab": 1, "GitOps": 2}})
    assert run.named("external-secrets-store").plain["spec"]["provider"]["onepassword"]["vaults"] == {
        "HomeLab": 1,
        "GitOps": 2,
    }


def test_bad_gitops_config_stops_the_program_before_anything_is_registered():
    monitor = fakes()
    with pytest.raises(ConfigError, match="gitopsCredentialsItem: must be set for an SSH repository URL"):
        run_stack(config={"gitopsRepoURL": SSH_REPO}, monitor=monitor)
    assert monitor.registrations == [] and monitor.invokes == []

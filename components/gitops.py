"""GitOps: Argo CD takes the cluster over from Git, through a root Application (app of apps),
with the repository's credentials from 1Password through ESO."""

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.argocd import IN_CLUSTER_SERVER
from components.config import CREDENTIAL_FIELDS, GitRepositoryKind, OnePasswordAccess, StackConfig
from components.connect import effective_connect_host
from components.external_secrets import remote_ref
from components.kube import WAIT_READY, external_secrets_object, once_created, owned

ROOT_APPLICATION = "root"
REPOSITORY_SECRET = "gitops-repository"
# Argo CD finds repositories by this label on Secrets in its namespace.
REPOSITORY_LABELS = {"argocd.argoproj.io/secret-type": "repository", "app.kubernetes.io/part-of": "argocd"}
# Annotations of the in-cluster cluster Secret, for ApplicationSets' cluster generator to template from.
METADATA_PREFIX = "cluster-secrets.io/"


def cluster_metadata(stack: str, config: StackConfig) -> dict[str, str]:
    """What this stack tells Argo CD about the cluster (the GitOps Bridge idea): names, a URL and
    versions, all plain config, never a credential (they end up in Helm's release records)."""
    return {
        f"{METADATA_PREFIX}{key}": value
        for key, value in {
            "stack": stack,
            "secret-store": config.secret_store_name,
            "connect-host": effective_connect_host(config),
            "connect-chart-version": config.connect_chart_version,
            "external-secrets-chart-version": config.eso_chart_version,
            "argocd-chart-version": config.argocd_chart_version,
            "gitops-repo-url": config.gitops_repo_url,
            "gitops-path": config.gitops_path,
            "gitops-revision": config.gitops_revision,
        }.items()
    }


def repository_external_secret(
    api_version: str,
    namespace: pulumi.Input[str],
    store_name: pulumi.Input[str],
    url: str,
    kind: GitRepositoryKind,
    item_title: str,
    access: OnePasswordAccess = "connect",
) -> dict[str, Any]:
    """The ExternalSecret that makes Argo CD's repository Secret from a 1Password item.

    The credentials go from 1Password to the Secret through ESO alone: never through Pulumi, its
    state or Helm. The template gives the Secret exactly Argo CD's keys (`url`, `type` and the
    credentials); without a template `data` ESO would pass every field of the item through.
    """
    fields = CREDENTIAL_FIELDS[kind]
    return {
        "apiVersion": api_version,
        "kind": "ExternalSecret",
        "metadata": owned({"name": REPOSITORY_SECRET, "namespace": namespace, "annotations": dict(WAIT_READY)}),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": store_name},
            "target": {
                "name": REPOSITORY_SECRET,
                "creationPolicy": "Owner",
                "template": {
                    "metadata": {"labels": dict(REPOSITORY_LABELS)},
                    # The URL cannot hold braces (components/config.py), so it is literal here.
                    "data": {"url": url, "type": "git", **{field: f"{{{{ .{field} }}}}" for field in fields}},
                },
            },
            "data": [{"secretKey": field, "remoteRef": remote_ref(access, item_title, field)} for field in fields],
        },
    }


def root_application(namespace: pulumi.Input[str], url: str, path: str, revision: str) -> dict[str, Any]:
    """The root Application: syncs `path` of the repository into the cluster, pruning and self-healing.

    Its destination namespace is Argo CD's, where the child Applications it holds must live.
    No `resources-finalizer.argocd.argoproj.io`: with it, deleting the root (a `pulumi destroy`, or a
    replacement) would make Argo CD delete every child Application and, through their own finalizers,
    every workload in the cluster. Without it the children are left running; Git, not Pulumi,
    decides what the cluster runs, and pruning in Git still removes an app on purpose.
    """
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": owned({"name": ROOT_APPLICATION, "namespace": namespace}),
        "spec": {
            "project": "default",
            "source": {"repoURL": url, "path": path, "targetRevision": revision},
            "destination": {"server": IN_CLUSTER_SERVER, "namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


@dataclass(frozen=True)
class GitOpsArgs:
    config: StackConfig
    external_secrets_api_version: str
    store_name: pulumi.Input[str]
    # Argo CD's namespace, and the component whose release installs the Application CRD.
    argocd_namespace: pulumi.Input[str]
    argocd: pulumi.Resource


class GitOps(pulumi.ComponentResource):
    root_application: pulumi.Output[str]  # "<namespace>/<name>"

    def __init__(self, name: str, args: GitOpsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cluster-secrets:index:GitOps", name, None, opts)
        config = args.config
        # FACTS.md (pulumi-kubernetes): a custom resource must wait for the release that installs its
        # CRD. Depending on the ArgoCD component waits for all of it: the release and argocd-secret.
        after: list[pulumi.Resource] = [args.argocd]
        if config.gitops_credentials_item:
            manifest = repository_external_secret(
                args.external_secrets_api_version,
                args.argocd_namespace,
                args.store_name,
                config.gitops_repo_url,
                config.gitops_repository_kind,
                config.gitops_credentials_item,
                config.onepassword_access,
            )
            # Awaited until Ready (WAIT_READY): the root's first sync finds its credentials in place.
            after.append(external_secrets_object(f"{name}-repository", manifest, pulumi.ResourceOptions(parent=self)))
        manifest = root_application(
            args.argocd_namespace, config.gitops_repo_url, config.gitops_path, config.gitops_revision
        )
        application = k8s.apiextensions.CustomResource(
            f"{name}-root",
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        self.root_application = once_created(application, f"{config.argocd_namespace}/{ROOT_APPLICATION}")
        self.register_outputs({"root_application": self.root_application})

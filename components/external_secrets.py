"""ExternalSecrets: the External Secrets Operator and a ClusterSecretStore reading 1Password."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.admin_secret import ARGOCD_SECRET_KEYS
from components.chart_values import merge_values
from components.config import CREDENTIAL_FIELDS, OnePasswordAccess, StackConfig
from components.kube import KEEP, WAIT_READY, external_secrets_object, helm_release, once_created, owned
from components.versions import eso_api_version


def eso_values() -> dict[str, Any]:
    """Helm values: CRDs installed by the chart, annotated so Helm never deletes them.

    FACTS.md (ESO): the chart installs its CRDs as templates, so an uninstall or a replacement of
    the release would delete the CRDs, every ExternalSecret and every Secret they own
    (argocd-secret included); `crds.annotations` carries `helm.sh/resource-policy: keep` to stop that.
    """
    return {"installCRDs": True, "crds": {"annotations": dict(KEEP)}}


# A namespace carrying this label with the store's name as its value may use the store.
STORE_ACCESS_LABEL = "cluster-secrets.io/secret-store"


def namespace_conditions(store_name: str, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """ClusterSecretStore conditions: the namespaces that may use the store.

    ESO lets a namespace through when any condition matches it, by label selector or by name
    (external-secrets pkg/controllers/secretstore/client_manager.go, shouldProcessSecret).
    """
    conditions: list[dict[str, Any]] = [{"namespaceSelector": {"matchLabels": {STORE_ACCESS_LABEL: store_name}}}]
    if namespaces:
        conditions.append({"namespaces": list(namespaces)})
    return conditions


# Service accounts are rate limited (FACTS.md, 1Password provider and limits): reads an hour.
SERVICE_ACCOUNT_READS_PER_HOUR = {"Teams": 1_000, "Business": 10_000}


def service_account_reads(config: StackConfig) -> dict[str, int]:
    """The 1Password reads an hour of this stack's ExternalSecrets, by name: with the SDK provider each
    field is one read, on each refresh (every hour here: components/argocd.py, gitops.py)."""
    reads = {"argocd-secret": len(ARGOCD_SECRET_KEYS)}
    if config.gitops_credentials_item:
        reads["gitops-repository"] = len(CREDENTIAL_FIELDS[config.gitops_repository_kind])
    return reads


def store_provider(
    access: OnePasswordAccess, host: pulumi.Input[str] | None, vaults: Mapping[str, int], token_ref: dict[str, Any]
) -> dict[str, Any]:
    """The store's provider: ESO's `onepassword` provider through a Connect server (`host`), or its
    `onepasswordSDK` provider with a service account token, for one vault.

    FACTS.md (ESO): `vaults` maps vault name to a unique priority (lower is searched first), and the
    token reference needs its namespace on a cluster-wide store. FACTS.md (1Password access modes):
    the SDK provider takes one vault per store (the config allows exactly one).
    """
    if access == "service-account":
        (vault,) = vaults
        return {"onepasswordSDK": {"vault": vault, "auth": {"serviceAccountSecretRef": token_ref}}}
    return {
        "onepassword": {
            "connectHost": host,
            "vaults": dict(vaults),
            "auth": {"secretRef": {"connectTokenSecretRef": token_ref}},
        }
    }


def remote_ref(access: OnePasswordAccess, item: pulumi.Input[str], field: str) -> dict[str, Any]:
    """Where an ExternalSecret finds a field: by item title and field label through Connect; as the
    secret reference `<item>/<field>` with the SDK provider (ESO's 1Password SDK provider page)."""
    if access == "service-account":
        return {"key": pulumi.Output.concat(item, "/", field)}
    return {"key": item, "property": field}


def cluster_secret_store(
    name: str, api_version: str, provider: dict[str, Any], conditions: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The ClusterSecretStore manifest, for the namespaces `conditions` allow (None: every namespace)."""
    restriction = {} if conditions is None else {"conditions": conditions}
    return {
        "apiVersion": api_version,
        "kind": "ClusterSecretStore",
        "metadata": owned({"name": name, "annotations": dict(WAIT_READY)}),
        "spec": {**restriction, "provider": provider},
    }


@dataclass(frozen=True)
class ExternalSecretsArgs:
    config: StackConfig
    connect_host: pulumi.Input[str] | None  # None with a service account
    token: pulumi.Input[str]  # secret: the Connect token, or the service account token


class ExternalSecrets(pulumi.ComponentResource):
    store_name: pulumi.Output[str]
    api_version: str
    # The label a namespace needs to use the store.
    access_label: dict[str, str]

    def __init__(self, name: str, args: ExternalSecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cluster-secrets:index:ExternalSecrets", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.api_version = eso_api_version(config.eso_chart.parsed)
        self.access_label = {STORE_ACCESS_LABEL: config.secret_store_name}
        if config.onepassword_access == "service-account":
            reads = service_account_reads(config)
            limits = ", ".join(f"{limit:,} on {plan}" for plan, limit in SERVICE_ACCOUNT_READS_PER_HOUR.items())
            pulumi.log.warn(
                f"onepasswordAccess service-account: this stack's ExternalSecrets read 1Password about "
                f"{sum(reads.values())} times an hour at their refresh intervals "
                f"({', '.join(f'{name} {n}' for name, n in reads.items())}), plus one read a field on each forced "
                f"sync, of the service account's {limits} an hour, which everything using it shares.",
                resource=self,
            )
        if config.store_open_to_all_namespaces:
            pulumi.log.warn(
                f"ClusterSecretStore {config.secret_store_name} is open to every namespace "
                "(storeOpenToAllNamespaces): any namespace can read the vaults it serves.",
                resource=self,
            )

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=owned({"name": config.eso_namespace}), opts=child
        )
        token = k8s.core.v1.Secret(
            f"{name}-connect-token",
            metadata=owned({"name": config.eso_token_secret, "namespace": namespace.metadata.name}),
            type="Opaque",
            string_data={config.eso_token_key: pulumi.Output.secret(args.token)},
            opts=child,
        )
        release = helm_release(
            f"{name}-release",
            "external-secrets",
            "external-secrets",
            config.eso_chart,
            namespace.metadata.name,
            # The user's values over ours; the paths we own were refused with the config.
            merge_values(eso_values(), config.eso_values),
            child,
        )
        token_ref = {"name": token.metadata.name, "key": config.eso_token_key, "namespace": token.metadata.namespace}
        manifest = cluster_secret_store(
            config.secret_store_name,
            self.api_version,
            store_provider(config.onepassword_access, args.connect_host, config.store_vaults, token_ref),
            conditions=None
            if config.store_open_to_all_namespaces
            else namespace_conditions(config.secret_store_name, config.store_namespaces),
        )
        # FACTS.md (pulumi-kubernetes): a custom resource must wait for the release that installs its CRD.
        # The Connect release and the token Secret are edges through connect_host and the token's metadata.
        store = external_secrets_object(
            f"{name}-store", manifest, pulumi.ResourceOptions(parent=self, depends_on=[release])
        )
        # Awaited until Ready (WAIT_READY), so its users wait for a working store.
        self.store_name = once_created(store, config.secret_store_name)
        self.register_outputs({"store_name": self.store_name})

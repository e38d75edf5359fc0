"""ExternalSecrets: the External Secrets Operator and a ClusterSecretStore reading 1Password via Connect."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.chart_values import merge_values
from components.config import StackConfig
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


def cluster_secret_store(
    name: str,
    api_version: str,
    host: pulumi.Input[str],
    vaults: Mapping[str, int],
    token_secret: pulumi.Input[str],
    token_key: str,
    token_namespace: pulumi.Input[str],
    conditions: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """The ClusterSecretStore manifest: the onepassword provider through Connect, for the
    namespaces `conditions` allow (None: every namespace).

    FACTS.md (ESO): `vaults` maps vault name to a unique priority (lower is searched first), and
    the token reference needs its namespace on a cluster-wide store.
    """
    restriction = {} if conditions is None else {"conditions": conditions}
    return {
        "apiVersion": api_version,
        "kind": "ClusterSecretStore",
        "metadata": owned({"name": name, "annotations": dict(WAIT_READY)}),
        "spec": {
            **restriction,
            "provider": {
                "onepassword": {
                    "connectHost": host,
                    "vaults": dict(vaults),
                    "auth": {
                        "secretRef": {
                            "connectTokenSecretRef": {
                                "name": token_secret,
                                "key": token_key,
                                "namespace": token_namespace,
                            }
                        }
                    },
                }
            },
        },
    }


@dataclass(frozen=True)
class ExternalSecretsArgs:
    config: StackConfig
    connect_host: pulumi.Input[str]
    connect_token: pulumi.Input[str]  # secret


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
            string_data={config.eso_token_key: pulumi.Output.secret(args.connect_token)},
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
        manifest = cluster_secret_store(
            config.secret_store_name,
            self.api_version,
            host=args.connect_host,
            vaults=config.store_vaults,
            token_secret=token.metadata.name,
            token_key=config.eso_token_key,
            token_namespace=token.metadata.namespace,
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

"""ArgoCD: Argo CD whose argocd-secret comes from a 1Password item through an ExternalSecret."""

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_onepassword as onepassword
import pulumi_random as random
import pulumiverse_time as pulumi_time

from components.admin_secret import (
    ADMIN_PASSWORD,
    ADMIN_PASSWORD_MTIME,
    ARGOCD_SECRET_KEYS,
    BCRYPT_SALT_BYTES,
    SERVER_SECRET_KEY,
    hash_admin_password,
    item_digests,
)
from components.chart_values import merge_values
from components.config import OnePasswordAccess, StackConfig
from components.external_secrets import remote_ref
from components.handoff import Handoff
from components.kube import KEEP, WAIT_READY, external_secrets_object, helm_release, once_created, owned
from components.onepassword_items import AdoptedAdmin

# Argo CD reads this exact Secret name.
ARGOCD_SECRET = "argocd-secret"
# FACTS.md (Argo CD): from v3.5.0 settings reload only for Secrets labelled part-of argocd.
ARGOCD_SECRET_LABELS = {"app.kubernetes.io/name": ARGOCD_SECRET, "app.kubernetes.io/part-of": "argocd"}
SERVER_SECRET_KEY_BYTES = 32
# The two items' resource names end so (the tool tells them apart in the state by it).
SECRET_ITEM_RESOURCE, ADMIN_ITEM_RESOURCE = "secret-item", "admin-item"
FORCE_SYNC = "force-sync"
# The API server as Argo CD's application controller sees it from inside the cluster.
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"


def rotation_keepers(rotation: int) -> dict[str, str] | None:
    """Keepers of a random value: none before the first rotation, so that stacks deployed before
    rotation existed keep their values; from then on the counter, whose bump replaces it."""
    return {"rotation": str(rotation)} if rotation else None


def secret_revision(password_rotation: int, secret_key_rotation: int) -> str:
    """Names the contents of argocd-secret: changes exactly when a rotation is asked for."""
    return f"password-{password_rotation}.secretkey-{secret_key_rotation}"


def argocd_values(create_secret: bool, cluster_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """Helm values of the reference setup, plus the createSecret hand-off, plus (with GitOps) the
    in-cluster cluster Secret carrying `cluster_annotations`.

    The keep annotation goes on the chart's Secret from the first install, so that the later flip
    to createSecret=false cannot make Helm delete argocd-secret (FACTS.md, Helm).
    FACTS.md (Argo CD chart): `server.insecure` is a free-form key of configs.params, still honoured.

    The cluster Secret is the chart's (`configs.clusterCredentials`, chart 10.1.1 templates
    argocd-configs/cluster-secrets.yaml), not a Secret resource of ours: Argo CD's configuration keeps
    one owner, its release, and goes with it. It can live in Helm's release records because it holds
    no credential: for https://kubernetes.default.svc the application controller uses its own
    service account, and the annotations are names and versions (components/gitops.py).
    """
    configs: dict[str, Any] = {
        "params": {"server.insecure": True},
        "secret": {"createSecret": create_secret, "annotations": dict(KEEP)},
    }
    if cluster_annotations is not None:
        configs["clusterCredentials"] = {
            "in-cluster": {
                "server": IN_CLUSTER_SERVER,
                "annotations": dict(cluster_annotations),
                "config": {"tlsClientConfig": {"insecure": False}},
            }
        }
    return {"dex": {"enabled": False}, "notifications": {"enabled": False}, "configs": configs}


def argocd_external_secret(
    api_version: str,
    namespace: pulumi.Input[str],
    store_name: pulumi.Input[str],
    item_title: pulumi.Input[str],
    revision: pulumi.Input[str],
    access: OnePasswordAccess = "connect",
) -> dict[str, Any]:
    """The ExternalSecret that owns argocd-secret, filled from one 1Password item.

    Explicit `data` entries give the Secret exactly our three keys: `dataFrom.extract` would also
    bring the item category's built-in fields (FACTS.md, ESO). `creationPolicy: Owner` adopts a
    Secret the chart created (FACTS.md, ESO); the template's labels and keep annotation are copied
    onto the Secret, so Helm keeps it when createSecret turns false.
    FACTS.md (ESO): any change to its annotations makes ESO sync at once, so `force-sync` carries
    the rotation counters: a rotation reaches the cluster in this deployment, not within the hour.
    """
    return {
        "apiVersion": api_version,
        "kind": "ExternalSecret",
        "metadata": owned(
            {"name": ARGOCD_SECRET, "namespace": namespace, "annotations": {**WAIT_READY, FORCE_SYNC: revision}}
        ),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": store_name},
            "target": {
                "name": ARGOCD_SECRET,
                "creationPolicy": "Owner",
                "template": {"metadata": {"labels": dict(ARGOCD_SECRET_LABELS), "annotations": dict(KEEP)}},
            },
            "data": [
                {"secretKey": key, "remoteRef": remote_ref(access, item_title, key)} for key in ARGOCD_SECRET_KEYS
            ],
        },
    }


@dataclass(frozen=True)
class AdminItems:
    """Where argocd-secret's contents and the clear admin password live in 1Password."""

    vault: str
    secret_item_title: pulumi.Output[str]
    admin_item_title: pulumi.Output[str]
    admin_password: pulumi.Output[str]  # secret
    password_mtime: pulumi.Output[str | None]  # admin.passwordMtime, RFC3339
    revision: pulumi.Input[str]  # secret_revision() of the stack that owns the items
    # Secret: admin_secret.item_digests of what the owning stack wrote (None from an older primary).
    digests: pulumi.Output[Any]


@dataclass(frozen=True)
class OwnItems:
    """This stack owns the two admin items, in this vault; `adopted` holds their values when `adopt`
    took them over (components/onepassword_items.py)."""

    vault: str
    vault_id: str
    adopted: AdoptedAdmin | None = None


@dataclass(frozen=True)
class ArgoCDArgs:
    config: StackConfig
    handoff: Handoff
    external_secrets_api_version: str
    store_name: pulumi.Input[str]
    # Its own admin items, or the primary stack's (which only the primary writes).
    admin: OwnItems | AdminItems
    # Labels for the Argo CD namespace: the one that lets it use the secret store.
    namespace_labels: dict[str, str]
    # With GitOps: annotations of the in-cluster cluster Secret, for ApplicationSets to template from.
    cluster_annotations: dict[str, str] | None = None


class ArgoCD(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    admin: AdminItems
    secret_synced: pulumi.Output[bool]
    create_secret: pulumi.Output[bool]  # the chart's createSecret, once its release has it

    def __init__(self, name: str, args: ArgoCDArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cluster-secrets:index:ArgoCD", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=owned({"name": config.argocd_namespace, "labels": args.namespace_labels}),
            opts=child,
        )
        admin = args.admin if isinstance(args.admin, AdminItems) else self._own_items(name, config, args.admin)

        manifest = argocd_external_secret(
            args.external_secrets_api_version,
            namespace.metadata.name,
            args.store_name,
            admin.secret_item_title,
            admin.revision,
            config.onepassword_access,
        )

        def external_secret(depends_on: list[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
            return external_secrets_object(
                f"{name}-external-secret", manifest, pulumi.ResourceOptions(parent=self, depends_on=depends_on)
            )

        def release(depends_on: list[pulumi.Resource]) -> k8s.helm.v3.Release:
            return helm_release(
                f"{name}-release",
                "argocd",
                "argo-cd",
                config.argocd_chart,
                namespace.metadata.name,
                # The user's values over ours; the paths we own were refused with the config.
                merge_values(argocd_values(args.handoff.create_secret, args.cluster_annotations), config.argocd_values),
                pulumi.ResourceOptions(parent=self, depends_on=depends_on),
            )

        # The order is the hand-off (components/handoff.py): Argo CD never starts without argocd-secret.
        if args.handoff.external_secret_first:
            synced_secret = external_secret([])
            argocd_release = release([synced_secret])
        else:
            argocd_release = release([])
            synced_secret = external_secret([argocd_release])

        self.namespace = namespace.metadata.name
        self.admin = admin
        # The ExternalSecret is awaited until Ready (WAIT_READY): once it is registered, it synced.
        self.secret_synced = once_created(synced_secret, True)
        # Known only once the release took the value: a failed or interrupted upgrade leaves the
        # output, and so the hand-off phase, as the last finished run recorded it.
        self.create_secret = once_created(argocd_release, args.handoff.create_secret)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "admin_password": admin.admin_password,
                "secret_item_title": admin.secret_item_title,
                "admin_item_title": admin.admin_item_title,
                "secret_synced": self.secret_synced,
            }
        )

    def _own_items(self, name: str, config: StackConfig, own: OwnItems) -> AdminItems:
        """The admin password, argocd-secret's contents, and the two 1Password items holding them:
        generated, or for an adopted stack the items' own values until the first rotation of each."""
        child = pulumi.ResourceOptions(parent=self)
        adopted = own.adopted
        if adopted is not None and not config.argocd_admin_password_rotation:
            clear_password, password_hash = adopted.password, adopted.password_hash
            password_mtime: pulumi.Output[str] = pulumi.Output.from_input(adopted.password_mtime)
        else:
            clear_password, password_hash, password_mtime = self._new_password(name, config)
        if adopted is not None and not config.argocd_server_secret_key_rotation:
            server_secret_key = adopted.secret_key
        else:
            # A bump of the counter replaces the key.
            secret_key = random.RandomBytes(
                f"{name}-server-secretkey",
                length=SERVER_SECRET_KEY_BYTES,
                keepers=rotation_keepers(config.argocd_server_secret_key_rotation),
                opts=child,
            )
            server_secret_key = pulumi.Output.secret(secret_key.hex)

        # Both items name their vault by UUID: given a vault's name, pulumi-onepassword reads back the
        # UUID and replaces the item on every `up` (FACTS.md, 1Password provider: its issue #62).
        # The clear password, for people who log in from their password manager.
        admin_item = onepassword.Item(
            f"{name}-{ADMIN_ITEM_RESOURCE}",
            vault=own.vault_id,
            title=config.argocd_admin_item,
            category=adopted.admin_category if adopted else "login",
            username="admin",
            password=clear_password,
            opts=child,
        )
        # The item holds argocd-secret's contents; all of it is secret in state and in 1Password.
        fields: dict[str, pulumi.Output[str]] = {
            ADMIN_PASSWORD: password_hash,
            ADMIN_PASSWORD_MTIME: pulumi.Output.secret(password_mtime),
            SERVER_SECRET_KEY: server_secret_key,
        }
        secret_item = onepassword.Item(
            f"{name}-{SECRET_ITEM_RESOURCE}",
            vault=own.vault_id,
            title=config.argocd_secret_item,
            category=adopted.secret_category if adopted else "secure_note",
            sections=[
                {
                    "label": ARGOCD_SECRET,
                    "fields": [{"label": key, "type": "CONCEALED", "value": fields[key]} for key in ARGOCD_SECRET_KEYS],
                }
            ],
            opts=child,
        )
        return AdminItems(
            vault=own.vault,
            secret_item_title=once_created(secret_item, config.argocd_secret_item),
            admin_item_title=once_created(admin_item, config.argocd_admin_item),
            admin_password=clear_password,
            password_mtime=password_mtime,
            revision=secret_revision(config.argocd_admin_password_rotation, config.argocd_server_secret_key_rotation),
            digests=pulumi.Output.secret(
                pulumi.Output.all(clear_password, *(fields[key] for key in ARGOCD_SECRET_KEYS)).apply(
                    lambda values: item_digests(values[0], dict(zip(ARGOCD_SECRET_KEYS, values[1:], strict=True)))
                )
            ),
        )

    def _new_password(
        self, name: str, config: StackConfig
    ) -> tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str]]:
        """A generated admin password, its bcrypt hash and its mtime (all kept in state)."""
        child = pulumi.ResourceOptions(parent=self)
        # A bump of the rotation counter replaces the password, and everything keyed to it.
        password = random.RandomPassword(
            f"{name}-admin-password",
            length=config.argocd_admin_password_length,
            special=False,
            keepers=rotation_keepers(config.argocd_admin_password_rotation),
            opts=child,
        )
        # The provider marks `result` secret; wrapping it says so here too, for every use below.
        clear_password: pulumi.Output[str] = pulumi.Output.secret(password.result)
        # Salt and mtime are kept in state and renewed only with the password, so a re-run
        # with nothing changed yields the same hash and mtime.
        renew_with_password = {"password": clear_password}
        salt = random.RandomBytes(
            f"{name}-admin-password-salt", length=BCRYPT_SALT_BYTES, keepers=renew_with_password, opts=child
        )
        mtime = pulumi_time.Static(f"{name}-admin-password-mtime", triggers=renew_with_password, opts=child)
        password_hash = pulumi.Output.all(clear_password, salt.hex).apply(
            lambda parts: hash_admin_password(parts[0], parts[1])
        )
        return clear_password, password_hash, mtime.rfc3339

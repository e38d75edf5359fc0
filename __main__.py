"""cluster-secrets: 1Password Connect, External Secrets and Argo CD, bootstrapped from 1Password."""

import pulumi
import pulumi_kubernetes as k8s

from components import outputs
from components.argocd import AdminItems, ArgoCD, ArgoCDArgs, OwnItems
from components.config import load_config, read_raw_config
from components.connect import OnePasswordConnect, OnePasswordConnectArgs
from components.external_secrets import ExternalSecrets, ExternalSecretsArgs
from components.gitops import GitOps, GitOpsArgs, cluster_metadata
from components.handoff import PreviousHandoff, decide_handoff
from components.onepassword_items import read_adopted_admin, read_connect_credentials, read_token, vault_uuid
from components.stack_references import PrimaryStack, previous_handoff

# Config, and the primary stack this one follows, if any (chart versions, shared admin items).
config = load_config(read_raw_config(), pulumi.get_stack())
primary = PrimaryStack(config.primary_stack) if config.primary_stack else None
if primary:
    config = config.following(primary.chart_versions())
shared_admin = primary.shared_admin_items(config) if primary else None

# Every 1Password read comes before any resource: bad data stops the program at preview with
# nothing registered.
# How ESO reaches 1Password (onepasswordAccess): its own Connect (credentials and a token), another
# Connect (a token), or a service account (its token).
access = config.onepassword_access
init_vault_id = vault_uuid(config.init_vault)
connect_credentials = (
    read_connect_credentials(config.init_vault, init_vault_id, config.credentials_item) if access == "connect" else None
)
if access == "service-account":
    eso_token = read_token(config.init_vault, init_vault_id, config.service_account_token_item, "service account token")
else:
    eso_token = read_token(config.init_vault, init_vault_id, config.token_item)
admin: AdminItems | OwnItems
if shared_admin:
    admin = shared_admin
else:
    # An adopted stack keeps the values of the items `adopt` took over (components/config.py).
    working_vault_id = vault_uuid(config.working_vault)
    adopted = (
        read_adopted_admin(config.working_vault, working_vault_id, config.argocd_secret_item, config.argocd_admin_item)
        if config.adopted_argocd_items
        else None
    )
    admin = OwnItems(vault=config.working_vault, vault_id=working_vault_id, adopted=adopted)

# In auto mode the hand-off continues from what the previous deployment of this stack recorded.
argocd_mode = config.argocd_create_secret
handoff = decide_handoff(argocd_mode, previous_handoff() if argocd_mode == "auto" else PreviousHandoff())

# One explicit provider per cluster; the ambient default provider is disabled in the stack file.
# Its Secrets (Connect's credentials, the token) change in place: pulumi-kubernetes would otherwise
# replace one whose data changes, deleting it before its new copy exists (FACTS.md, the real 1Password
# provider).
cluster = k8s.Provider(
    "cluster",
    kubeconfig=config.kubeconfig_path or None,
    context=config.kube_context,
    enable_secret_mutable=True,
)

connect = (
    OnePasswordConnect(
        "connect",
        OnePasswordConnectArgs(config=config, credentials_json=connect_credentials, token=eso_token),
        opts=pulumi.ResourceOptions(providers=[cluster]),
    )
    if connect_credentials is not None
    else None
)
connect_host = connect.host if connect else (config.connect_host or None)
external_secrets = ExternalSecrets(
    "external-secrets",
    ExternalSecretsArgs(config=config, connect_host=connect_host, token=eso_token),
    opts=pulumi.ResourceOptions(providers=[cluster]),
)
argocd = ArgoCD(
    "argocd",
    ArgoCDArgs(
        config=config,
        handoff=handoff,
        external_secrets_api_version=external_secrets.api_version,
        store_name=external_secrets.store_name,
        admin=admin,
        namespace_labels=external_secrets.access_label,
        cluster_annotations=cluster_metadata(pulumi.get_stack(), config) if config.gitops_repo_url else None,
    ),
    opts=pulumi.ResourceOptions(providers=[cluster]),
)
# With a repository, Argo CD takes the cluster over from Git; without one nothing of this is declared.
gitops = (
    GitOps(
        "gitops",
        GitOpsArgs(
            config=config,
            external_secrets_api_version=external_secrets.api_version,
            store_name=external_secrets.store_name,
            argocd_namespace=argocd.namespace,
            argocd=argocd,
        ),
        opts=pulumi.ResourceOptions(providers=[cluster]),
    )
    if config.gitops_repo_url
    else None
)

pulumi.export(outputs.CONNECT_HOST, connect_host or "")
pulumi.export(outputs.SECRET_STORE_NAME, external_secrets.store_name)
pulumi.export(outputs.ARGOCD_NAMESPACE, argocd.namespace)
pulumi.export(outputs.ARGOCD_CREATE_SECRET, argocd.create_secret)
pulumi.export(outputs.ARGOCD_SECRET_SYNCED, argocd.secret_synced)
pulumi.export(outputs.ARGOCD_ADMIN_PASSWORD, argocd.admin.admin_password)
pulumi.export(outputs.ARGOCD_ADMIN_PASSWORD_MTIME, argocd.admin.password_mtime)
pulumi.export(outputs.ARGOCD_SECRET_ITEM_VAULT, argocd.admin.vault)
pulumi.export(outputs.ARGOCD_SECRET_ITEM_TITLE, argocd.admin.secret_item_title)
pulumi.export(outputs.ARGOCD_ADMIN_ITEM_TITLE, argocd.admin.admin_item_title)
pulumi.export(outputs.ARGOCD_SECRET_REVISION, argocd.admin.revision)
pulumi.export(outputs.ARGOCD_ITEM_DIGESTS, argocd.admin.digests)
pulumi.export(
    outputs.CHART_VERSIONS,
    {
        "connect": config.connect_chart_version,
        "externalSecrets": config.eso_chart_version,
        "argocd": config.argocd_chart_version,
    },
)
if gitops:
    pulumi.export(outputs.GITOPS_ROOT_APPLICATION, gitops.root_application)

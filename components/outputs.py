"""Stack output names: a contract that other stacks and tools read. Change them only with care."""

CONNECT_HOST = "connectHost"
SECRET_STORE_NAME = "secretStoreName"
ARGOCD_NAMESPACE = "argocdNamespace"
# The createSecret value this deployment applied, and whether the ExternalSecret was Ready after it.
# In `auto` mode the next deployment reads both (components/handoff.py).
ARGOCD_CREATE_SECRET = "argocdCreateSecret"
ARGOCD_SECRET_SYNCED = "argocdSecretSynced"
ARGOCD_ADMIN_PASSWORD = "argocdAdminPassword"  # secret
# argocd-secret's admin.passwordMtime (RFC3339, not secret): `status` compares the cluster's with it.
ARGOCD_ADMIN_PASSWORD_MTIME = "argocdAdminPasswordMtime"
# Where the item behind argocd-secret lives in 1Password (vault name and item title).
ARGOCD_SECRET_ITEM_VAULT = "argocdSecretItemVault"
ARGOCD_SECRET_ITEM_TITLE = "argocdSecretItemTitle"
ARGOCD_ADMIN_ITEM_TITLE = "argocdAdminItemTitle"
# Secret: the SHA-256 of each value the stack wrote to its two items (components/admin_secret.py,
# item_digests), so that the tool can tell an item, or argocd-secret, that differs from them.
ARGOCD_ITEM_DIGESTS = "argocdItemDigests"
# Names the contents of that item; changes with each rotation (a sharing stack re-syncs on it).
ARGOCD_SECRET_REVISION = "argocdSecretRevision"
# The chart versions this cluster runs: {connect, externalSecrets, argocd}.
CHART_VERSIONS = "chartVersions"
# "<namespace>/<name>" of the root Application; exported only when gitopsRepoURL is set.
GITOPS_ROOT_APPLICATION = "gitopsRootApplication"

"""Chart values users can extend: deep-merged over the values the program sets, except the paths it
owns. Pure functions, no Pulumi runtime.

Owned paths are those the design depends on: change one and the hand-off breaks, a credential
lands in Helm values, or the store stops reaching Connect. A user value at an owned path, under
it, or replacing it whole (a non-map above it) is refused at preview, naming the key and the path.

The merged values are not checked against a chart's values.schema.json here: the program has no
chart at run time, and Helm checks them against the schema at install (ESO's charts and Connect
2.x ship one; argo-cd 10.1.1 does not). The tests check them against the pinned schemas.
"""

import copy
from collections.abc import Iterator, Mapping
from typing import Any

Path = tuple[str, ...]

# Config key -> owned path -> why the program owns it (said in the error message).
OWNED_VALUES: dict[str, dict[Path, str]] = {
    "connectValues": {
        ("connect", "create"): "the store needs the Connect server this chart installs",
        ("connect", "credentialsName"): "the program creates the credentials Secret (connectCredentialsSecret)",
        ("connect", "credentialsKey"): "the program creates the credentials Secret (connectCredentialsKey)",
        ("connect", "credentials"): "credentials never go in Helm values; the program creates their Secret",
        ("connect", "credentials_base64"): "credentials never go in Helm values; the program creates their Secret",
        ("connect", "serviceType"): "Connect stays ClusterIP (chart 1.x would expose it on every node)",
        ("connect", "applicationName"): "it names the Service the store's connectHost points at",
        ("connect", "api", "httpPort"): "it is the port of the store's connectHost",
        ("connect", "tls"): "the store reaches Connect over plain HTTP inside the cluster (connectHost)",
        ("connect", "podAnnotations", "cluster-secrets.io/credentials-digest"): "it restarts Connect when its "
        "credentials or token change",
    },
    "esoValues": {
        ("installCRDs",): "the store and the ExternalSecrets need ESO's CRDs",
        ("crds", "annotations"): "the keep annotation stops an uninstall from deleting the CRDs, and with "
        "them argocd-secret",
        ("crds", "createClusterSecretStore"): "the store is a ClusterSecretStore",
        ("processClusterStore",): "ESO must serve the ClusterSecretStore",
        ("scopedNamespace",): "ESO must serve Argo CD's namespace as well as its own",
    },
    "argocdValues": {
        ("configs", "secret"): "argocd-secret comes from 1Password (the createSecret hand-off and its keep "
        "annotation), and ESO replaces anything else the chart would put in it",
        ("configs", "clusterCredentials", "in-cluster"): "the in-cluster Secret carries this stack's metadata "
        "for ApplicationSets",
        ("configs", "params", "server.insecure"): "without it argocd-server writes a certificate of its own into "
        "argocd-secret, which ESO takes out again on every sync; terminate TLS in front of Argo CD instead",
        ("crds", "install"): "the root Application needs the Application CRD",
        ("crds", "keep"): "an uninstall must not delete the Application CRD, and with it every Application",
        ("namespaceOverride",): "Argo CD runs in argocdNamespace, where argocd-secret and the repository "
        "Secret are made",
    },
}


def merge_values(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """`theirs` deep-merged over `ours`, as Helm merges a values file over a chart's defaults: maps
    merge key by key, anything else (lists included) replaces. Neither argument is changed."""
    merged = copy.deepcopy(dict(ours))
    for key, value in theirs.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def dotted(path: Path) -> str:
    return ".".join(path)


def _leaves(value: Any, path: Path) -> Iterator[Path]:
    """The paths a value sets: each leaf of a map, or the path itself."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    else:
        yield path


def owned_conflicts(values: Mapping[str, Any], owned: Mapping[Path, str], prefix: Path = ()) -> Iterator[str]:
    """One line for each place where `values` would change a path in `owned`. Names paths, never values."""
    for key, value in values.items():
        path = (*prefix, str(key))
        at_or_under = next((o for o in owned if path[: len(o)] == o), None)
        if at_or_under is not None:
            for leaf in _leaves(value, path):
                yield f"{dotted(leaf)} is set by cluster-secrets: {owned[at_or_under]}"
            continue
        below = [o for o in owned if o[: len(path)] == path]
        if not below:
            continue
        if isinstance(value, Mapping):
            yield from owned_conflicts(value, owned, path)
        else:
            yield (
                f"{dotted(path)} would replace {dotted(below[0])}, which is set by cluster-secrets: {owned[below[0]]}"
            )

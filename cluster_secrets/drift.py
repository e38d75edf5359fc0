"""Drift: what changed in the cluster by hand since `up` applied it.

Pulumi compares the program with its state, not with the cluster, so an ExternalSecret deleted by
hand, or a store whose spec was edited, looks unchanged to a plain `up`. The objects the program
applies itself (not those inside its Helm releases) are cheap to read, so the preflight reads them
and compares each with the inputs the state recorded: `up` then refreshes just those from the
cluster (`pulumi refresh --target`), and its update applies them again. Inside the releases: an
`up` that changes nothing in a release runs no Helm upgrade, so a Deployment scaled to 0 by hand
stays at 0; `up` scales it back to the replicas of the release's manifest.

The stack's two 1Password items are compared with what it wrote to them: their titles with those
the program gave them, their values with the digests it exports (`argocdItemDigests`), so no value
of the state is decrypted for it. An edited item is refreshed like an edited object, and the update
writes the stack's values back; ESO then copies them into argocd-secret (synced.py waits for it).

Not seen here: objects inside the releases other than their main Deployments' replicas.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cluster_secrets.kube import CLUSTER_SCOPED, Api, object_path
from cluster_secrets.onepassword import ItemDetails
from cluster_secrets.takeover import HELM_RELEASE, RELEASE_DEPLOYMENTS, helm_release
from components.admin_secret import ADMIN_ITEM_PASSWORD, digest

# Pulumi's marker of an encrypted value in an exported state: never compared, never shown.
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"


@dataclass(frozen=True)
class Drift:
    urn: str
    what: str  # "ExternalSecret argocd/argocd-secret"
    how: str  # "deleted", or the fields that differ


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and SECRET_SIGNATURE in value


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """The paths where `live` lacks or differs from what `desired` (recorded inputs) sets; secrets skipped."""
    if _is_secret(desired):
        return []
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [path or "."]
        return [
            p for key, value in desired.items() for p in differences(value, live.get(key), f"{path}.{key}".lstrip("."))
        ]
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [path]
        return [
            p for i, (d, v) in enumerate(zip(desired, live, strict=True)) for p in differences(d, v, f"{path}[{i}]")
        ]
    return [] if desired == live else [path]


def find(deployment: Mapping[str, Any] | None, api: Api) -> list[Drift]:
    """The objects of the state the program applies itself that are gone from the cluster, or whose
    recorded `spec` (data is left alone: a Secret's is secret) differs from the live one."""
    drifts = []
    for resource in (deployment or {}).get("resources") or []:
        inputs = resource.get("inputs") or {}
        kind, meta = inputs.get("kind"), inputs.get("metadata")
        if resource.get("delete") or resource["type"] == HELM_RELEASE or not isinstance(meta, Mapping) or not kind:
            continue
        # A cluster-scoped kind may still carry a namespace in its recorded inputs (a create that failed).
        name, namespace = meta.get("name"), None if kind in CLUSTER_SCOPED else meta.get("namespace")
        if not isinstance(name, str) or not (namespace is None or isinstance(namespace, str)):
            continue
        what = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        live = api.get(object_path(str(inputs["apiVersion"]), str(kind), name, namespace))
        if live is None:
            drifts.append(Drift(resource["urn"], what, "deleted"))
        elif "spec" in inputs and (changed := differences(inputs["spec"], live.get("spec"), "spec")):
            drifts.append(Drift(resource["urn"], what, f"{', '.join(changed)} changed"))
    return drifts


def item_drift(urn: str, what: str, item: ItemDetails, title: str, written: Mapping[str, str]) -> Drift | None:
    """An item of the stack as 1Password holds it, against the title the program gave it and the
    digests of the values the stack wrote (`written`: field label -> digest); None when they match.
    Only labels are named, never a value."""
    changes = [f"title changed to {item.title!r}"] if item.title != title else []
    edited = [label for label, wanted in written.items() if digest(_field(item, label)) != wanted]
    if edited:
        changes.append(f"{', '.join(edited)} edited")
    return Drift(urn, what, f"{' and '.join(changes)} in 1Password") if changes else None


def _field(item: ItemDetails, label: str) -> str:
    # argocd-secret's keys are fields of a section; a login item's password is its built-in field.
    return item.password if label == ADMIN_ITEM_PASSWORD else item.value(label, in_section=True)


def drift_message(stack: str, drifts: Sequence[Drift], command: str) -> str:
    lines = [f"Stack {stack}: changed by hand since the last up:"]
    lines += [f"  {d.what}: {d.how}" for d in drifts]
    if command == "up":
        lines.append("Refreshing them from where they live first, so this up applies them again.")
    else:
        lines.append(f"`./cluster-secrets up {stack}` applies them again (a preview without --refresh cannot see it).")
    return "\n".join(lines)


@dataclass(frozen=True)
class ScaledDown:
    path: str  # the Deployment's API path
    what: str
    replicas: int  # what the release's manifest gives it


def scaled_down(api: Api, releases: Mapping[str, str]) -> list[ScaledDown]:
    """The releases' main Deployments (`releases`: release name -> namespace) at 0 replicas that their
    release's manifest runs with more."""
    found = []
    for release, namespace in releases.items():
        deployment = RELEASE_DEPLOYMENTS[release]
        path = object_path("apps/v1", "Deployment", deployment, namespace)
        live = api.get(path)
        if live is None or (live.get("spec") or {}).get("replicas", 1) != 0:
            continue
        record = helm_release(api, namespace, release)
        wanted = _manifest_replicas(str((record or {}).get("manifest", "")), deployment)
        if wanted:
            found.append(ScaledDown(path, f"Deployment {namespace}/{deployment}", wanted))
    return found


def _manifest_replicas(manifest: str, name: str) -> int:
    for document in yaml.safe_load_all(manifest):
        is_it = isinstance(document, dict) and document.get("kind") == "Deployment"
        if is_it and (document.get("metadata") or {}).get("name") == name:
            return int((document.get("spec") or {}).get("replicas", 1))
    return 0

"""What a stack would create that exists already, made outside it: the reference setup's objects and items.

The program's own registrations (the stack evaluated offline, desired.py) say what it creates: each
Kubernetes object by kind, namespace and name, each Helm release by namespace and name, each 1Password
item by title. This module looks each up in the live cluster and the working vault, skips what the
stack's state already holds, and says who owns the rest:
- a Helm release (the chart's labels and annotations, `app.kubernetes.io/managed-by: Helm` and
  `meta.helm.sh/release-name`), or for a release, its own release record (`sh.helm.release.v1.*`);
- an Argo CD Application (the `argocd.argoproj.io/tracking-id` annotation, or the
  `app.kubernetes.io/instance` label of Argo CD's label tracking), when that Application exists;
- a controller (a controller ownerReference: ESO's ExternalSecret for a Secret it makes);
- nobody (made with kubectl, or left by a deleted Argo CD Application).

Why it matters: pulumi-kubernetes from 4.29.0 fails a create with AlreadyExists, and older releases took
an existing object over silently and deleted it on `destroy`; the 1Password provider posts a second
item of a title the vault holds, and ESO then refuses both (FACTS.md, "pulumi-kubernetes and objects
that already exist", "The real 1Password provider"). `up` and `preview` stop on anything found here
(preflight.py); `adopt` takes over what it can (adopt.py).
"""

import base64
import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster_secrets.kube import Api, Obj, object_path
from cluster_secrets.offline import Registration
from cluster_secrets.onepassword import ItemSummary
from components.config import StackConfig

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
ITEM = "onepassword:index/item:Item"
TRACKING_ID = "argocd.argoproj.io/tracking-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
# Helm's ownership metadata: which release an object belongs to (Helm 3.2+ adopts an object that names its release).
MANAGED_BY, HELM = "app.kubernetes.io/managed-by", "Helm"
RELEASE_NAME, RELEASE_NAMESPACE = "meta.helm.sh/release-name", "meta.helm.sh/release-namespace"
# Each release's main Deployment, by release name (chart defaults: connect's `connect.applicationName`,
# external-secrets' and argo-cd's full names with our release names): a release's objects that Helm
# does not track (an Argo CD Application rendered the chart) are found by it.
RELEASE_DEPLOYMENTS = {
    "connect": "onepassword-connect",
    "external-secrets": "external-secrets",
    "argocd": "argocd-server",
}


@dataclass(frozen=True)
class Wanted:
    """A resource the program registers that lives outside Pulumi, and how to find it."""

    name: str  # the resource's logical name
    type: str  # its Pulumi type token
    parent: str  # the logical name of its component
    import_id: str  # what its provider finds it by: `ns/name` or `name`, a release's `ns/name`; items get theirs
    what: str  # for people: "Namespace onepassword", "Helm release onepassword/connect", "1Password item ..."
    path: str = ""  # a Kubernetes object's API path
    title: str = ""  # an item's title
    chart: str = ""  # a release's chart


@dataclass(frozen=True)
class Found:
    wanted: Wanted
    import_id: str  # for an item, `vaults/<vault>/items/<item>`
    owner: str  # "nobody", "Helm release ns/name", "Argo CD Application name", "ExternalSecret ns/name", ...
    blocker: str = ""  # why adopt cannot take it over, and what to do; empty when it can
    application: str = ""  # the Argo CD Application that tracks it, if one does (it may be gone)


def wanted(registrations: Iterable[Registration], config: StackConfig) -> list[Wanted]:
    """What the stack's registrations create in the cluster and in 1Password (providers, components,
    random values and timestamps live in the state only)."""
    names = {r.urn: r.name for r in registrations}
    result = []
    for r in registrations:
        inputs, parent = r.plain, names.get(r.parent, "")
        if r.type == HELM_RELEASE:
            where = f"{inputs['namespace']}/{inputs['name']}"
            what = f"Helm release {where} (chart {inputs['chart']})"
            result.append(Wanted(r.name, r.type, parent, where, what, chart=inputs["chart"]))
        elif r.type.startswith("kubernetes:") and "metadata" in inputs:
            meta = inputs["metadata"]
            namespace, name = meta.get("namespace"), meta["name"]
            import_id = f"{namespace}/{name}" if namespace else name
            path = object_path(inputs["apiVersion"], inputs["kind"], name, namespace)
            result.append(Wanted(r.name, r.type, parent, import_id, f"{inputs['kind']} {import_id}", path=path))
        elif r.type == ITEM:
            what = f"1Password item {inputs['title']!r} in vault {config.working_vault!r}"
            result.append(Wanted(r.name, r.type, parent, "", what, title=inputs["title"]))
    return result


def unversioned(type_token: str) -> str:
    """A Kubernetes type token without its API version (`kubernetes:group/v1:Kind` -> `kubernetes:group:Kind`):
    one object whichever version it is read through, as the program's ESO objects are across a chart bump."""
    package, _, rest = type_token.partition(":")
    if package != "kubernetes" or rest.count(":") != 1:
        return type_token
    group_version, kind = rest.split(":")
    return f"{package}:{group_version.rsplit('/', 1)[0] if '/' in group_version else ''}:{kind}"


def state_ids(deployment: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """(type without API version, ID) of every resource in an exported deployment; an item's ID is its UUID."""
    ids = set()
    for resource in (deployment or {}).get("resources") or []:
        if resource.get("delete"):
            continue
        if resource["type"] == ITEM:
            ids.add((ITEM, str((resource.get("outputs") or {}).get("uuid", ""))))
        else:
            ids.add((unversioned(resource["type"]), str(resource.get("id", ""))))
    return ids


def helm_release(api: Api, namespace: str, name: str) -> Obj | None:
    """The latest deployed revision of a Helm release (its record, decoded), or None.

    Helm 3 keeps each revision in a Secret `sh.helm.release.v1.<name>.v<N>` labelled owner=helm,
    name=<name>, status=...; its `release` key is base64 of the gzipped release JSON (and the
    Secret's data adds a base64 of its own)."""
    records = api.list(f"/api/v1/namespaces/{namespace}/secrets", f"owner=helm,name={name}")
    deployed = [r for r in records if (r["metadata"].get("labels") or {}).get("status") == "deployed"]
    if not deployed:
        return None
    latest = max(deployed, key=lambda r: int((r["metadata"].get("labels") or {}).get("version", "0")))
    packed = base64.b64decode(base64.b64decode(latest["data"]["release"]))
    return dict(json.loads(gzip.decompress(packed)))


def helm_ownership(release: str, namespace: str) -> dict[str, dict[str, str]]:
    """The labels and annotations that make an object `release`'s, in Helm's eyes."""
    return {"labels": {MANAGED_BY: HELM}, "annotations": {RELEASE_NAME: release, RELEASE_NAMESPACE: namespace}}


def owner_of(obj: Obj) -> tuple[str, str]:
    """(owner, Argo CD Application tracking it) of a live object, from its own metadata."""
    meta = obj.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    application = ""
    if TRACKING_ID in annotations:
        application = str(annotations[TRACKING_ID]).split(":", 1)[0]
    elif labels.get(MANAGED_BY) != HELM and INSTANCE_LABEL in labels:
        application = str(labels[INSTANCE_LABEL])
    controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
    if controller:
        return f"{controller['kind']} {meta.get('namespace', '')}/{controller['name']}".replace(" /", " "), application
    if labels.get(MANAGED_BY) == HELM and RELEASE_NAME in annotations:
        release = f"{annotations.get(RELEASE_NAMESPACE, '')}/{annotations[RELEASE_NAME]}"
        return f"Helm release {release}", application
    return "nobody", application


def detach_hint(namespace: str, application: str) -> str:
    return (
        f"detach it without deleting what it made (a non-cascading delete: no resources finalizer): "
        f"kubectl -n {namespace} patch application {application} --type merge -p "
        f'\'{{"metadata":{{"finalizers":null}}}}\' && kubectl -n {namespace} delete application {application}; '
        "and take it out of the Git repository that defines it, or its parent Application makes it again"
    )


def _judged(config: StackConfig, api: Api, found: Found) -> Found:
    """`found` with its blocker: an Argo CD Application that exists, or a second owner."""
    namespace = config.argocd_namespace
    if found.application and api.get(object_path("argoproj.io/v1alpha1", "Application", found.application, namespace)):
        owner = f"Argo CD Application {namespace}/{found.application}"
        blocker = f"{found.wanted.what} is managed by {owner}: {detach_hint(namespace, found.application)}"
        return Found(found.wanted, found.import_id, owner, blocker, found.application)
    if found.owner in ("nobody", "its objects: nobody"):
        return found
    blocker = (
        f"{found.wanted.what} belongs to {found.owner}: two owners would fight over it; delete it there first, "
        "or let this stack make its own under another name"
    )
    return Found(found.wanted, found.import_id, found.owner, blocker, found.application)


def _found_release(config: StackConfig, api: Api, want: Wanted) -> Found | None:
    namespace, name = want.import_id.split("/", 1)
    record = helm_release(api, namespace, name)
    if record is not None:
        chart = ((record.get("chart") or {}).get("metadata") or {}).get("name", "")
        found = Found(want, want.import_id, f"Helm, revision {record.get('version', '?')}")
        if chart != want.chart:
            blocker = f"{want.what}: the release there has chart {chart!r}; remove it (helm uninstall) or rename ours"
            return Found(want, want.import_id, found.owner, blocker)
        return found
    # No release record, but the chart's objects may be there all the same (rendered by Argo CD).
    deployment = RELEASE_DEPLOYMENTS.get(name)
    obj = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}") if deployment else None
    if obj is None:
        return None
    owner, application = owner_of(obj)
    if owner == f"Helm release {want.import_id}":
        return None  # marked for this release (by adopt): `helm install` adopts such objects (Helm 3.2+)
    return _judged(config, api, Found(want, want.import_id, f"its objects: {owner}", application=application))


def discover(
    config: StackConfig,
    registrations: Sequence[Registration],
    deployment: Mapping[str, Any] | None,
    api: Api,
    vault_items: Sequence[ItemSummary],
    vault_id: str,
) -> list[Found]:
    """Everything the stack would create that exists already outside its state, in registration order."""
    known = state_ids(deployment)
    found: list[Found] = []
    for want in wanted(registrations, config):
        if want.type == ITEM:
            for item in vault_items:
                if item.title == want.title and (ITEM, item.id) not in known:
                    found.append(Found(want, f"vaults/{vault_id}/items/{item.id}", "nobody"))
            continue
        if (unversioned(want.type), want.import_id) in known:
            continue
        if want.type == HELM_RELEASE:
            release = _found_release(config, api, want)
            if release is not None:
                found.append(release)
            continue
        obj = api.get(want.path)
        if obj is not None:
            owner, application = owner_of(obj)
            found.append(_judged(config, api, Found(want, want.import_id, owner, application=application)))
    return sorted(_one_item_per_title(found), key=lambda f: ORDER.index(_kind(f.wanted.type)))


# How a plan lists what was found: namespaces, then what is in them, releases, ESO's objects, items.
ORDER = ("Namespace", "Secret", "Release", "other", "Item")


def _kind(type_token: str) -> str:
    kind = type_token.rsplit(":", 1)[-1]
    return kind if kind in ORDER else "other"


def _one_item_per_title(found: list[Found]) -> list[Found]:
    """Two items of one title cannot both be taken over: ESO would refuse the title."""
    titles = [f.wanted.title for f in found if f.wanted.title]
    return [
        Found(
            f.wanted,
            f.import_id,
            f.owner,
            f"{f.wanted.what}: the vault holds {titles.count(f.wanted.title)} items "
            "of that title, and ESO refuses a title it finds twice: delete or rename all but one",
        )
        if f.wanted.title and titles.count(f.wanted.title) > 1
        else f
        for f in found
    ]


def conflict_message(stack: str, found: Sequence[Found]) -> str:
    """`up` and `preview`: one message listing everything found, naming adopt."""
    lines = [f"Stack {stack} would create what exists already, made outside it (nothing was changed):"]
    lines += [f"  {f.wanted.what} (owner: {f.owner})" for f in found]
    if any(f.wanted.title for f in found):
        lines.append(
            'A second item of a title the vault holds would make ESO refuse both ("expected one 1Password Item '
            'matching ..., got 2"); pulumi-kubernetes from 4.29.0 fails on an object that exists, and older '
            "versions take it over silently and delete it on destroy."
        )
    lines.append(
        f"Take them over with `./cluster-secrets adopt {stack}`: it shows its plan and asks first. Or delete them, "
        "or give this stack other names (its config keys)."
    )
    blocked = [f.blocker for f in found if f.blocker]
    if blocked:
        lines.append("adopt would refuse until:")
        lines += [f"  - {line}" for line in blocked]
    return "\n".join(lines)

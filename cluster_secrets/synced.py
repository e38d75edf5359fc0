"""After `up`: wait until the cluster holds what the stack deployed, asking ESO to sync while it does not.

`up` succeeds once the ExternalSecret is Ready, but that does not prove the new contents arrived:
1Password Connect serves a write only after its sync (terraform-provider-onepassword v2.2.1,
connect_client.go, polls for exactly that, but only on Pulumi's own Connect), so ESO's force-sync
can read the item as it was; and a force-sync changes no `metadata.generation`, so an old
`Ready=True` passes pulumi-kubernetes' wait at once (FACTS.md, "The real 1Password provider").
And objects `up` does not change are not awaited at all: the store after a new token, the
ExternalSecret after its item was made again.

So the tool looks at the chain itself: the ClusterSecretStore and the ExternalSecret `argocd-secret`
Ready, `admin.passwordMtime` in argocd-secret equal to the stack's output (renewed with the
password: a rotation changes both), and each of its keys matching the digest of what the stack
wrote to the item (`argocdItemDigests`: a secret key rotated alone, or an item edited in 1Password
and put back, changes no mtime). Whatever is behind is asked to sync again with an annotation
(FACTS.md, ESO: any change to its annotations makes ESO reconcile it), every few seconds, bounded.
"""

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cluster_secrets.kube import ESO_GROUP, Cluster, ClusterError, Obj
from components.admin_secret import ADMIN_PASSWORD_MTIME, digest
from components.argocd import ARGOCD_SECRET

# Not `force-sync`, which the program manages (components/argocd.py) and an `up` would set back.
REFRESH_ANNOTATION = "cluster-secrets.io/refreshed-at"
WAIT_SECONDS = 150
NUDGE_EVERY = 5  # seconds between two looks (and two requests to sync)


@dataclass(frozen=True)
class Target:
    """What the stack deployed: where its store and ExternalSecret are, and the mtime it holds."""

    store: str
    namespace: str
    eso_version: str  # of the external-secrets.io API: v1beta1 or v1
    mtime: str
    digests: Mapping[str, str] | None = None  # argocd-secret's key -> the digest of its value, if known


@dataclass(frozen=True)
class Outcome:
    synced: bool
    message: str


def decoded(data: Mapping[str, str], key: str) -> str | None:
    """A Secret's value of `key` as text, or None."""
    raw = data.get(key)
    return base64.b64decode(raw).decode("utf-8", "replace") if raw else None


def differing_keys(data: Mapping[str, str], digests: Mapping[str, str]) -> list[str]:
    """The keys of a Secret's `data` whose values do not match `digests` (key -> digest); names only."""
    return [key for key, wanted in digests.items() if digest(decoded(data, key) or "") != wanted]


def not_ready(obj: Obj | None) -> str | None:
    """Why an ESO object is not Ready ("reason: message"), or None when it is."""
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return None
            return ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k)) or "no reason given"
    return "not found" if obj is None else "no Ready condition yet"


Lagging = tuple[str, str, str | None, str]  # (plural, name, namespace, why) of an object to sync again


def behind(cluster: Cluster, target: Target) -> list[Lagging]:
    """What is not yet as deployed, in the order of the chain."""
    lagging: list[Lagging] = []
    store = cluster.custom_object(ESO_GROUP, target.eso_version, "clustersecretstores", target.store)
    if (why := not_ready(store)) is not None:
        why = f"ClusterSecretStore {target.store} not Ready ({why})"
        lagging.append(("clustersecretstores", target.store, None, why))
    where = f"{target.namespace}/{ARGOCD_SECRET}"
    external_secret = cluster.custom_object(
        ESO_GROUP, target.eso_version, "externalsecrets", ARGOCD_SECRET, target.namespace
    )
    if (why := not_ready(external_secret)) is not None:
        why = f"ExternalSecret {where} not Ready ({why})"
        lagging.append(("externalsecrets", ARGOCD_SECRET, target.namespace, why))
    data = (cluster.secret(target.namespace, ARGOCD_SECRET) or {}).get("data") or {}
    if (live := decoded(data, ADMIN_PASSWORD_MTIME)) != target.mtime:
        why = f"Secret {where} has {ADMIN_PASSWORD_MTIME} {live}, the stack's is {target.mtime}"
        lagging.append(("externalsecrets", ARGOCD_SECRET, target.namespace, why))
    elif stale := differing_keys(data, target.digests or {}):
        why = f"Secret {where} has {', '.join(stale)} other than the stack wrote to the item"
        lagging.append(("externalsecrets", ARGOCD_SECRET, target.namespace, why))
    return lagging


def wait_until_synced(
    cluster: Cluster,
    target: Target,
    say: Callable[[str], None],
    seconds: float = WAIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Wait until nothing is `behind`, asking what is to sync each NUDGE_EVERY seconds."""
    started = clock()
    try:
        while lagging := behind(cluster, target):
            waited = clock() - started
            if waited >= seconds:
                return Outcome(
                    False,
                    f"After {waited:.0f}s the cluster does not hold what this `up` deployed: "
                    f"{'; '.join(why for *_, why in lagging)}. The stack itself is deployed; 1Password Connect may "
                    "not have synced the item yet, or ESO cannot read it: see ./cluster-secrets status.",
                )
            say(f"[{waited:.0f}s] waiting: {'; '.join(why for *_, why in lagging)}; asked ESO to sync again")
            for plural, name, namespace in {(plural, name, namespace) for plural, name, namespace, _ in lagging}:
                annotation = {REFRESH_ANNOTATION: str(int(time.time()))}
                cluster.annotate(ESO_GROUP, target.eso_version, plural, name, namespace, annotation)
            sleep(NUDGE_EVERY)
    except ClusterError as error:
        return Outcome(False, f"Could not confirm that the cluster holds what this `up` deployed: {error}")
    held = f"argocd-secret has {ADMIN_PASSWORD_MTIME} {target.mtime}"
    held += " and the values the stack wrote to its item" if target.digests else ""
    return Outcome(True, f"The cluster holds what was deployed: {held}.")

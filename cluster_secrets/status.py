"""`status STACK`: the chain from 1Password Connect to Argo CD, link by link, in the live cluster.

Pure checks over the stack's plain outputs and a small `Cluster` reader (tests use an in-memory fake),
a thin adapter over the official kubernetes client, and `run`. Secret values are compared, never
printed: only key names and `admin.passwordMtime` (a timestamp) appear in the output.
"""

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from cluster_secrets import converge, deploy, drift, preflight
from cluster_secrets.errors import UsageError
from cluster_secrets.kube import (
    ESO_GROUP,
    Cluster,
    ClusterError,
    KubeCluster,
    LiveCluster,
    Obj,
    eso_version,
    kubeconfig_file,
)
from cluster_secrets.onepassword import OnePasswordError, Vaults, reader
from cluster_secrets.stack_files import project_values, stack_config
from cluster_secrets.synced import REFRESH_ANNOTATION, decoded, differing_keys
from components import outputs
from components.admin_secret import ADMIN_PASSWORD_MTIME, ARGOCD_SECRET_KEYS, SECRET_ITEM
from components.argocd import ARGOCD_SECRET
from components.config import load_config
from components.errors import ConfigError
from components.gitops import REPOSITORY_SECRET, ROOT_APPLICATION
from components.kube import KEEP

# FACTS: Connect's chart names its Deployment `connect.applicationName` (default onepassword-connect,
# 1.17.0 and 2.4.1); argo-cd 10.1.1 names the server `<fullname>-server`, and with the chart's
# nameOverride `argocd` and our release `argocd` the full name is `argocd`.
CONNECT_DEPLOYMENT = "onepassword-connect"
# The external-secrets chart names its controller's Deployment after the release (components/external_secrets.py).
ESO_DEPLOYMENT = "external-secrets"
ARGOCD_SERVER_DEPLOYMENT = "argocd-server"
VaultReader = Callable[[Mapping[str, str], Mapping[str, str]], Vaults]


@dataclass(frozen=True)
class Target:
    stack: str
    connect_namespace: str
    eso_namespace: str
    create_secret_mode: str  # argocdCreateSecret in the stack's config
    onepassword_access: str = "connect"  # onepasswordAccess: only `connect` installs a Connect to check
    connect_host: str = ""  # connectHost, with external-connect
    gitops_repo_url: str = ""  # gitopsRepoURL: empty, no GitOps links
    gitops_credentials_item: str = ""  # gitopsCredentialsItem: empty, a public repository
    items_owner: str = ""  # the stack that owns the admin items, when not this one (shareArgocdAdmin)


@dataclass(frozen=True)
class Line:
    link: str
    ok: bool
    text: str

    def __str__(self) -> str:
        return f"{self.link:<16} {'OK' if self.ok else 'BROKEN':<6} {self.text}"


def _duration(text: Any) -> timedelta | None:
    """A Go duration in hours, minutes and seconds ("1h", "1h30m", "90s"); None for anything else."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", str(text))
    if not parts or "".join(number + unit for number, unit in parts) != str(text):
        return None
    return timedelta(seconds=sum(float(number) * {"h": 3600, "m": 60, "s": 1}[unit] for number, unit in parts))


def _overdue(obj: Obj, now: datetime) -> str | None:
    """Why an ExternalSecret's last sync is overdue, or None.

    ESO requeues an ExternalSecret `refreshInterval` after its last sync and sets `status.refreshTime`
    on each successful one (v0.12.1 pkg/controllers/externalsecret: markAsDone, getRequeueResult); a
    failed sync turns Ready False. So Ready with a sync older than twice the interval means the
    controller stopped or hung and left the condition as it was. An interval of 0 never refreshes."""
    interval = _duration((obj.get("spec") or {}).get("refreshInterval"))
    refreshed = (obj.get("status") or {}).get("refreshTime")
    if not interval or not refreshed:
        return None
    try:
        age = now - datetime.fromisoformat(str(refreshed).replace("Z", "+00:00"))
    except ValueError:
        return None
    if age <= 2 * interval:
        return None
    return f"last synced {refreshed}, {age // timedelta(minutes=1)} minutes ago: more than twice its refreshInterval"


def _ready_line(link: str, where: str, obj: Obj | None, check: str, up: str, now: datetime | None = None) -> Line:
    """An ESO object's Ready condition, with "reason: message" when it is not. Given the time `now`
    (for an ExternalSecret), also when it last synced, and whether that is overdue."""
    if obj is None:
        return Line(link, False, f"{where} not found. Fix: {up}")
    status = obj.get("status") or {}
    synced = f", last synced {status.get('refreshTime') or 'never'}" if now is not None else ""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            if now is not None and (overdue := _overdue(obj, now)):
                return Line(link, False, f"{where} Ready, but {overdue}. Fix: {check}")
            return Line(link, True, f"{where} Ready{synced}")
        if condition.get("type") == "Ready":
            why = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k)) or "no reason given"
            return Line(link, False, f"{where} not Ready ({why}){synced}. Fix: {check}")
    return Line(link, False, f"{where} not Ready (no Ready condition yet){synced}. Fix: {check}")


def check_deployment(cluster: Cluster, link: str, namespace: str, name: str, stack: str) -> Line:
    where = f"Deployment {namespace}/{name}"
    found = cluster.deployment(namespace, name)
    if found is None:
        return Line(link, False, f"{where} not found. Fix: ./cluster-secrets up {stack}")
    wanted = (found.get("spec") or {}).get("replicas", 1)
    ready = (found.get("status") or {}).get("readyReplicas") or 0
    if wanted == 0:
        return Line(
            link, False, f"{where} is scaled to 0. Fix: kubectl -n {namespace} scale deployment {name} --replicas=1"
        )
    if ready < wanted:
        return Line(
            link,
            False,
            f"{where} has {ready}/{wanted} replicas ready. Fix: kubectl -n {namespace} describe deployment {name}; "
            f"kubectl -n {namespace} logs deployment/{name}",
        )
    return Line(link, True, f"{where}, {ready}/{wanted} ready")


def _secret_lines(
    secret: Obj | None,
    external_secret: Obj | None,
    ns: str,
    mtime_in_state: Any,
    sync: str,
    owner: str,
    digests: Mapping[str, str] | None = None,
) -> list[Line]:
    """Lines 4 and 5: argocd-secret itself (with `digests`, its other values against what the stack
    wrote to the item), and its admin.passwordMtime against the state's."""
    where = f"Secret {ns}/{ARGOCD_SECRET}"
    if secret is None:
        return [
            Line("argocd-secret", False, f"{where} not found. ESO creates it from the ExternalSecret. Fix: {sync}"),
            Line("password mtime", False, f"no {where} to compare. Fix: see argocd-secret above"),
        ]
    meta = secret.get("metadata") or {}
    problems: list[str] = []
    fixes: list[str] = []
    controllers = [ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")]
    owned = any(
        ref.get("kind") == "ExternalSecret"
        and ref.get("name") == ARGOCD_SECRET
        and (external_secret is None or ref.get("uid") == (external_secret.get("metadata") or {}).get("uid"))
        for ref in controllers
    )
    if not owned:
        by = ", ".join(f"{ref.get('kind')} {ref.get('name')}" for ref in controllers) or "nothing"
        problems.append(f"not controlled by ExternalSecret {ARGOCD_SECRET} (controller: {by})")
        fixes.append(f"ESO adopts it on its next sync ({sync})")
    keep_key, keep_value = next(iter(KEEP.items()))
    if (meta.get("annotations") or {}).get(keep_key) != keep_value:
        problems.append(f"no {keep_key}: {keep_value} annotation (Helm would delete it when createSecret turns false)")
        fixes.append(f"kubectl -n {ns} annotate secret {ARGOCD_SECRET} {keep_key}={keep_value}")
    data: Mapping[str, str] = secret.get("data") or {}
    missing = [key for key in ARGOCD_SECRET_KEYS if key not in data]
    extra = sorted(key for key in data if key not in ARGOCD_SECRET_KEYS)
    if missing or extra:
        problems.append(f"keys missing: {', '.join(missing) or 'none'}; unexpected keys: {', '.join(extra) or 'none'}")
        fixes.append(f"check the 1Password item's fields, then {sync}")
    other_keys = {key: value for key, value in (digests or {}).items() if key != ADMIN_PASSWORD_MTIME}
    if stale := [key for key in differing_keys(data, other_keys) if key in data]:
        problems.append(f"{', '.join(stale)} other than the stack wrote to the item (an edit in 1Password synced)")
        fixes.append(f"./cluster-secrets up {owner} puts the item back and makes ESO sync")
    if problems:
        secret_line = Line("argocd-secret", False, f"{where}: {'; '.join(problems)}. Fix: {'; '.join(fixes)}")
    else:
        secret_line = Line(
            "argocd-secret",
            True,
            f"{where}, controlled by the ExternalSecret, kept, keys {', '.join(ARGOCD_SECRET_KEYS)}"
            + (", as the stack wrote them to the item" if digests else ""),
        )

    # admin.passwordMtime is a timestamp, not a secret: it may be printed.
    live = decoded(data, ADMIN_PASSWORD_MTIME)
    if mtime_in_state is None:
        mtime_line = Line(
            "password mtime", False, f"unknown, run up (the stack has no {outputs.ARGOCD_ADMIN_PASSWORD_MTIME} output)"
        )
    elif live is None:
        mtime_line = Line("password mtime", False, f"{where} has no {ADMIN_PASSWORD_MTIME}. Fix: {sync}")
    elif live != mtime_in_state:
        mtime_line = Line(
            "password mtime",
            False,
            f"{ADMIN_PASSWORD_MTIME} is {live} in the cluster but {mtime_in_state} in state: the Secret is stale "
            f"(a rotation not synced yet). Fix: {sync}",
        )
    else:
        mtime_line = Line("password mtime", True, f"{ADMIN_PASSWORD_MTIME} {live}, as in state")
    return [secret_line, mtime_line]


def connect_line(cluster: Cluster, target: Target) -> Line:
    """Connect's Deployment, when the stack installs Connect; else how ESO reaches 1Password (the
    store's line says whether that works)."""
    if target.onepassword_access == "external-connect":
        return Line(
            "connect", True, f"not installed by this stack: the store reads the Connect at {target.connect_host}"
        )
    if target.onepassword_access == "service-account":
        return Line("connect", True, "none: the store reads 1Password with a service account (onepasswordSDK)")
    return check_deployment(cluster, "connect", target.connect_namespace, CONNECT_DEPLOYMENT, target.stack)


ARGOCD_GROUP, ARGOCD_VERSION = "argoproj.io", "v1alpha1"
# Argo CD compares an Application again at once when this annotation changes; `hard` skips its caches.
ARGOCD_REFRESH = "argocd.argoproj.io/refresh"
# What a refused login looks like in Argo CD's conditions: go-git's transport errors for 401 and 403
# ("authentication required", "authorization failed") and the git CLI's "Authentication failed".
_AUTH_REFUSED = re.compile(r"authentication required|authentication failed|authorization failed", re.IGNORECASE)


def gitops_line(application: Obj | None, target: Target, ns: str) -> Line:
    """The root Application as Argo CD's application controller reports it: its sync and health,
    and how its last look at the repository went.

    Argo CD keeps a repository's connection state in its API server's cache (redis), not in the
    cluster; what the cluster shows is the Application's conditions, where the controller records a
    failed fetch of the repository (a `ComparisonError`) and any other error (types ending in Error).
    """
    where = f"Application {ns}/{ROOT_APPLICATION} ({target.gitops_repo_url})"
    up = f"./cluster-secrets up {target.stack}"
    if application is None:
        return Line("gitops", False, f"{where} not found. Fix: {up}")
    status = application.get("status") or {}
    describe = f"kubectl -n {ns} describe application {ROOT_APPLICATION}"
    errors = [c for c in status.get("conditions") or [] if str(c.get("type", "")).endswith("Error")]
    if errors:
        why = "; ".join(f"{c.get('type')}: {c.get('message', '')}" for c in errors)
        refresh = f"kubectl -n {ns} annotate application {ROOT_APPLICATION} {ARGOCD_REFRESH}=hard --overwrite"
        if not _AUTH_REFUSED.search(why):
            return Line("gitops", False, f"{where}: {why}. Fix: {describe}; then {refresh}")
        if target.gitops_credentials_item:
            fix = (
                f"put the repository's current credentials in the 1Password item {target.gitops_credentials_item}, "
                f"make ESO sync: kubectl -n {ns} annotate externalsecret {REPOSITORY_SECRET} "
                f"{REFRESH_ANNOTATION}=$(date +%s) --overwrite; then {refresh}"
            )
        else:
            fix = f"set gitopsCredentialsItem to an item with the repository's credentials, then {up}"
        return Line("gitops", False, f"{where}: the repository refused the credentials ({why}). Fix: {fix}")
    operation = status.get("operationState") or {}
    if operation.get("phase") in ("Failed", "Error"):
        return Line(
            "gitops",
            False,
            f"{where}: the last sync {operation['phase']}: {operation.get('message', '')}. Fix: {describe}",
        )
    synced = status.get("sync") or {}
    sync, health = synced.get("status"), (status.get("health") or {}).get("status")
    if not sync:
        return Line(
            "gitops",
            False,
            f"{where} has no status: no application controller has looked at it. Fix: kubectl -n {ns} get pods",
        )
    if sync != "Synced" or health != "Healthy":
        return Line("gitops", False, f"{where} {sync}, {health or 'no health'}. Fix: wait for the sync, or {describe}")
    revision = str(synced.get("revision") or "")[:12]
    return Line("gitops", True, f"{where} Synced at {revision or 'an unknown revision'}, Healthy")


def gitops_lines(cluster: Cluster, target: Target, ns: str, version: str | None, now: datetime) -> list[Line]:
    """With GitOps: the repository Secret's ExternalSecret (when credentials come from 1Password),
    then the root Application."""
    if not target.gitops_repo_url:
        return []
    lines = []
    if target.gitops_credentials_item and version is not None:
        found = cluster.custom_object(ESO_GROUP, version, "externalsecrets", REPOSITORY_SECRET, ns)
        where = f"ExternalSecret {ns}/{REPOSITORY_SECRET} ({ESO_GROUP}/{version})"
        item = target.gitops_credentials_item
        check = f"check the 1Password item {item}; kubectl -n {ns} describe externalsecret {REPOSITORY_SECRET}"
        lines.append(_ready_line("gitops creds", where, found, check, f"./cluster-secrets up {target.stack}", now))
    application = cluster.custom_object(ARGOCD_GROUP, ARGOCD_VERSION, "applications", ROOT_APPLICATION, ns)
    return [*lines, gitops_line(application, target, ns)]


def drift_line(
    deployment: Mapping[str, Any], cluster: LiveCluster, stack: str, edited: Sequence[drift.Drift] | str = ()
) -> Line:
    """The objects the stack applies itself, against what its state recorded, and its 1Password items
    against what it wrote to them (`edited`, or why they could not be read): drift.py."""
    drifts = drift.find(deployment, cluster) + ([] if isinstance(edited, str) else list(edited))
    problems = []
    if drifts:
        changed = "; ".join(f"{d.what}: {d.how}" for d in drifts)
        problems.append(f"changed by hand: {changed}. Fix: ./cluster-secrets up {stack} (it applies them again)")
    if isinstance(edited, str):
        problems.append(
            f"the 1Password items were not compared ({edited}). Fix: run status with the 1Password credentials up uses"
        )
    if problems:
        return Line("drift", False, "; ".join(problems))
    return Line("drift", True, "the objects the stack applies itself and its items are as its last up left them")


def check_chain(
    stack_outputs: Mapping[str, Any],
    target: Target,
    cluster: LiveCluster,
    now: datetime,
    deployment: Mapping[str, Any] | None = None,
    edited: Sequence[drift.Drift] | str = (),
) -> list[Line]:
    """One line per link of the chain, in order, from the stack's plain (non-secret) outputs, at time `now`;
    with the stack's exported `deployment`, a last line on drift (`edited`: the items, see drift_line)."""
    stack = target.stack
    up = f"./cluster-secrets up {stack}"
    lines = [
        connect_line(cluster, target),
        # A stopped controller leaves the Ready conditions below as they were: its Deployment says more.
        check_deployment(cluster, "eso", target.eso_namespace, ESO_DEPLOYMENT, stack),
    ]

    store_name = stack_outputs.get(outputs.SECRET_STORE_NAME)
    ns = str(stack_outputs.get(outputs.ARGOCD_NAMESPACE) or "argocd")
    version = eso_version(stack_outputs)
    external_secret: Obj | None = None
    # Any change to the ExternalSecret's annotations makes ESO sync at once (FACTS.md, ESO).
    sync = (
        f"make ESO sync now: kubectl -n {ns} annotate externalsecret {ARGOCD_SECRET} "
        f"{REFRESH_ANNOTATION}=$(date +%s) --overwrite; kubectl -n {ns} describe externalsecret {ARGOCD_SECRET}"
    )
    if version is None or not store_name:
        unknown = f"the stack has no {outputs.SECRET_STORE_NAME} or {outputs.CHART_VERSIONS} output. Fix: {up}"
        lines += [Line("secret store", False, unknown), Line("external secret", False, unknown)]
    else:
        api = f"{ESO_GROUP}/{version}"
        store = cluster.custom_object(ESO_GROUP, version, "clustersecretstores", str(store_name))
        check = f"check Connect (above) and the token Secret; kubectl describe clustersecretstore {store_name}"
        lines.append(_ready_line("secret store", f"ClusterSecretStore {store_name} ({api})", store, check, up))
        external_secret = cluster.custom_object(ESO_GROUP, version, "externalsecrets", ARGOCD_SECRET, ns)
        where = f"ExternalSecret {ns}/{ARGOCD_SECRET} ({api})"
        check = (
            f"check the store (above), the 1Password item and ESO's log "
            f"(kubectl -n {target.eso_namespace} logs deployment/{ESO_DEPLOYMENT}); {sync}"
        )
        lines.append(_ready_line("external secret", where, external_secret, check, up, now))

    secret = cluster.secret(ns, ARGOCD_SECRET)
    mtime = stack_outputs.get(outputs.ARGOCD_ADMIN_PASSWORD_MTIME)
    digests = (stack_outputs.get(outputs.ARGOCD_ITEM_DIGESTS) or {}).get(SECRET_ITEM)
    lines += _secret_lines(secret, external_secret, ns, mtime, sync, target.items_owner or stack, digests)

    phase = converge.phase_of(stack_outputs)
    done = phase == converge.target_phase(target.create_secret_mode)
    lines.append(Line("hand-off", done, phase.value if done else f"{phase.value}. Fix: {up}"))
    lines.append(check_deployment(cluster, "argocd server", ns, ARGOCD_SERVER_DEPLOYMENT, stack))
    lines += gitops_lines(cluster, target, ns, version, now)
    return lines if deployment is None else [*lines, drift_line(deployment, cluster, stack, edited)]


@dataclass(frozen=True)
class StackView:
    """What status reads of a stack: its outputs but the secret ones (the item digests excepted), its
    state (secrets encrypted), and its `onepassword:` config, for reading its items as `up` does."""

    outputs: dict[str, Any]
    deployment: Mapping[str, Any]
    onepassword: Mapping[str, str] = field(default_factory=dict)


def read_stack(project_dir: Path, stack_name: str, environ: Mapping[str, str], say: deploy.Print) -> StackView:
    """The stack, opened once as `up` opens it, but never created."""
    stack = deploy.open_stack(project_dir, stack_name, environ, say, create=False)
    # Secret outputs (the admin password) are dropped at once; the digests tell nothing of the values.
    kept = {
        name: value.value
        for name, value in stack.outputs().items()
        if not value.secret or name == outputs.ARGOCD_ITEM_DIGESTS
    }
    onepassword = {k: v.value for k, v in stack.get_all_config().items() if k.startswith("onepassword:")}
    return StackView(kept, dict(preflight.StateFile(stack, say).export().get("deployment") or {}), onepassword)


def edited_items(view: StackView, environ: Mapping[str, str], vaults: VaultReader) -> list[drift.Drift] | str:
    """The stack's items against what it wrote to them (preflight.edited_items), or why 1Password
    could not be read."""
    items = preflight.state_items(view.deployment)
    try:
        return preflight.edited_items(items, view.outputs, lambda: vaults(view.onepassword, environ))
    except OnePasswordError as error:
        return str(error)


def run(
    project_dir: Path,
    stack: str,
    environ: Mapping[str, str],
    say: deploy.Print,
    complain: deploy.Print | None = None,
    connect: Callable[[str, str], LiveCluster] = KubeCluster,
    stack_of: Callable[[Path, str, Mapping[str, str], deploy.Print], StackView] = read_stack,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    vaults: VaultReader = reader,
) -> int:
    """Print the chain (errors go to `complain`, stderr by default, as in deploy.run).

    Exit code 0 all OK, 1 a link is broken, 2 usage or environment, 127 no Pulumi CLI."""
    complain = complain or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        config = load_config(project_values(stack_config(project_dir, stack)), stack)
        view = stack_of(project_dir, stack, environ, say)
        cluster = connect(kubeconfig_file(config.kubeconfig_path, environ), config.kube_context)
        say(f"Stack {stack}, kube context {config.kube_context}:")
        lines = check_chain(
            view.outputs,
            Target(
                stack,
                config.connect_namespace,
                config.eso_namespace,
                config.argocd_create_secret,
                config.onepassword_access,
                config.connect_host,
                config.gitops_repo_url,
                config.gitops_credentials_item,
                # primaryStack is organization/project/stack; the tool takes the stack's name.
                config.primary_stack.rsplit("/", 1)[-1] if config.share_argocd_admin else "",
            ),
            cluster,
            clock(),
            view.deployment,
            edited_items(view, environ, vaults),
        )
    except (UsageError, ConfigError) as error:
        complain(f"error: {error}")
        return converge.EXIT_USAGE
    except deploy.CliMissing as error:
        complain(f"error: {error}")
        return converge.EXIT_NO_CLI
    except auto.CommandError as error:
        complain(f"error: cannot read the outputs of stack {stack}:\n{error}")
        return converge.EXIT_USAGE
    except ClusterError as error:
        complain(f"error: {error}")
        return converge.EXIT_USAGE
    for line in lines:
        say(str(line))
    return converge.EXIT_OK if all(line.ok for line in lines) else converge.EXIT_FAILED

"""Before `up`, `preview` and `destroy` change anything: the stack's 1Password items against the vault.

Two defects of the real provider (terraform-provider-onepassword v2.2.1, FACTS.md "The real 1Password
provider") are caught here rather than in the middle of a run:
- Its Create just posts the item, next to any item of the same title. ESO then refuses the title
  ("expected one 1Password Item matching ..., got 2") and `up` waits five minutes on the
  ExternalSecret. So an item this stack would create whose title the vault already holds, made
  outside this stack, stops `up` and `preview` here, with the ways out.
- Its Read, Update and Delete of an item that is gone error instead of dropping it, so an item
  deleted by hand in 1Password leaves `up` and `destroy` stuck. Such an item is taken out of the
  state (secrets stay encrypted: the state is exported and imported as ciphertext), so `up`
  creates it again, with the same contents (the password, hash, mtime and key live in the state,
  in the random and time resources), and `destroy` goes on. `preview` only says so.

It also carries out the checks of the other modules before Pulumi runs: objects and items that
exist outside the stack (takeover.py), an ESO bump that needs a step first (upgrade_guard.py), what
an interrupted run left (recovery.py) and what changed by hand in the cluster or in the stack's
1Password items (drift.py).

Pure decisions over the exported state and the vault's item list; the glue (`check`) reads them.
"""

import copy
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from cluster_secrets import charts, desired, drift, recovery, upgrade_guard
from cluster_secrets.errors import UsageError
from cluster_secrets.kube import Api, ClusterError, KubeCluster, kubeconfig_file
from cluster_secrets.onepassword import ItemSummary, OnePasswordError, Vaults, reader
from cluster_secrets.takeover import HELM_RELEASE, ITEM, Found, conflict_message, discover
from components import outputs
from components.admin_secret import ADMIN_ITEM, SECRET_ITEM
from components.argocd import ADMIN_ITEM_RESOURCE, SECRET_ITEM_RESOURCE
from components.config import StackConfig

Print = Callable[[str], None]


@dataclass(frozen=True)
class StateItem:
    """An item the stack's state holds: its resource and where it is in 1Password."""

    urn: str
    title: str
    item_id: str
    vault_id: str


def state_items(deployment: Mapping[str, Any] | None) -> list[StateItem]:
    """The 1Password items of an exported deployment (`pulumi stack export`)."""
    items = []
    for resource in (deployment or {}).get("resources") or []:
        if resource.get("type") != ITEM or resource.get("delete"):
            continue
        out = resource.get("outputs") or {}
        items.append(StateItem(resource["urn"], str(out.get("title", "")), str(out.get("uuid", "")), str(out["vault"])))
    return items


def deleted_items(state: Sequence[StateItem], listed: Mapping[str, Sequence[ItemSummary]]) -> list[StateItem]:
    """The state's items that their vault (vault ID -> its item list) no longer holds."""
    return [item for item in state if item.item_id not in {found.id for found in listed[item.vault_id]}]


def edited_items(
    items: Sequence[StateItem], stack_outputs: Mapping[str, Any], vaults: Callable[[], Vaults]
) -> list[drift.Drift]:
    """The stack's items whose title or values 1Password no longer holds as the stack wrote them
    (drift.item_drift, against the argocdItemDigests output). Reads each such item once; none for a
    stack deployed before that output existed, or that owns no items."""
    digests = stack_outputs.get(outputs.ARGOCD_ITEM_DIGESTS) or {}
    # Each item by its resource's name, with the title the program gave it (the state's may be a
    # refresh's reading of an edit).
    roles = {
        SECRET_ITEM_RESOURCE: (SECRET_ITEM, stack_outputs.get(outputs.ARGOCD_SECRET_ITEM_TITLE)),
        ADMIN_ITEM_RESOURCE: (ADMIN_ITEM, stack_outputs.get(outputs.ARGOCD_ADMIN_ITEM_TITLE)),
    }
    vault = stack_outputs.get(outputs.ARGOCD_SECRET_ITEM_VAULT)
    found = []
    for item in items:
        role, title = next((r for suffix, r in roles.items() if item.urn.endswith(f"-{suffix}")), ("", None))
        written = digests.get(role)
        if not written or not isinstance(title, str):
            continue
        what = f"1Password item {title!r} in vault {vault!r}"
        edited = drift.item_drift(item.urn, what, vaults().item(item.vault_id, item.item_id), title, written)
        found += [edited] if edited else []
    return found


def deleted_message(deleted: Sequence[StateItem], command: str) -> str:
    names = ", ".join(f"{item.title!r} (item {item.item_id} in vault {item.vault_id})" for item in deleted)
    what = {
        "up": "taken out of this stack's state, so this `up` creates them again with the same contents "
        "(kept in the state); argocd-secret keeps its data meanwhile",
        "destroy": "taken out of this stack's state, as they are gone already",
        "preview": "still in this stack's state; `up` takes them out and creates them again with the same contents",
    }[command]
    return (
        f"1Password items of this stack were deleted outside Pulumi: {names}. "
        f"terraform-provider-onepassword v2.2.1 cannot read, update or delete an item that is gone, so they are {what}."
    )


def without(deployment: Mapping[str, Any], urns: set[str]) -> dict[str, Any]:
    """`deployment` with the resources `urns` taken out, and every reference to them."""
    result = copy.deepcopy(dict(deployment))
    kept = [r for r in result.get("resources") or [] if r["urn"] not in urns]
    for resource in kept:
        if "dependencies" in resource:
            resource["dependencies"] = [urn for urn in resource["dependencies"] if urn not in urns]
        for name, deps in (resource.get("propertyDependencies") or {}).items():
            resource["propertyDependencies"][name] = [urn for urn in deps if urn not in urns]
    result["resources"] = kept
    return result


def settle(
    state: "StateFile",
    deployment: Mapping[str, Any] | None,
    pending: Sequence[recovery.Pending],
    created: Sequence[Found],
    say: Print,
) -> dict:
    """Before `up`: the operations an interrupted run left in `deployment`, settled (recovery.py); the
    state afterwards. The refresh keeps the components and the provider the imports name."""
    say(settling_message(pending, created))
    state.refresh(["--clear-pending-creates"])
    if created:
        state.import_resources(*pending_imports(created, deployment))
    return state.export()


def repair(
    state: "StateFile",
    api: Api,
    drifts: Sequence[drift.Drift],
    scaled: Sequence[drift.ScaledDown],
    command: str,
    stack: str,
    say: Print,
) -> bool:
    """What changed by hand (drift.py): named, and before `up` refreshed from the cluster or scaled
    back. Whether the state changed."""
    if drifts:
        say(drift.drift_message(stack, drifts, command))
        if command == "up":
            state.refresh([word for d in drifts for word in ("--target", d.urn)])
    for down in scaled:
        if command == "up":
            api.merge_patch(down.path, {"spec": {"replicas": down.replicas}})
            say(f"{down.what} was scaled to 0 by hand: scaled back to {down.replicas}, as its release runs it.")
        else:
            say(f"{down.what} is scaled to 0: `up` scales it back to {down.replicas}, as its release runs it.")
    return bool(drifts) and command == "up"


def release_namespaces(config: StackConfig) -> dict[str, str]:
    """The stack's Helm releases by name, with their namespaces (Connect's only when the stack installs it)."""
    releases = {"external-secrets": config.eso_namespace, "argocd": config.argocd_namespace}
    return {"connect": config.connect_namespace, **releases} if config.onepassword_access == "connect" else releases


def created_by(pending: Sequence[recovery.Pending], found: Sequence[Found]) -> list[Found]:
    """What interrupted creates made: the objects and items of pending creates that exist (found
    outside the state by takeover.discover, with nobody else owning them)."""
    creates = {(op.name, op.type) for op in pending if op.operation == "creating"}
    return [f for f in found if (f.wanted.name, f.wanted.type) in creates and not f.blocker]


def pending_imports(
    created: Sequence[Found], deployment: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The `pulumi import` file that takes `created` into the state: each under its component and, for
    Kubernetes objects, the cluster's provider, named by their URNs in the state (its name table)."""
    urns = {urn.rsplit("::", 1)[-1]: urn for urn in (r["urn"] for r in (deployment or {}).get("resources") or [])}
    provider = next(
        (r["urn"] for r in (deployment or {}).get("resources") or [] if r["type"] == "pulumi:providers:kubernetes"), ""
    )
    resources: list[dict[str, Any]] = []
    for f in created:
        entry: dict[str, Any] = {"type": f.wanted.type, "name": f.wanted.name, "id": f.import_id}
        entry["parent"] = f.wanted.parent
        if f.wanted.type == ITEM:
            entry.update(plugin_of("pulumi_onepassword"))
        else:
            entry["provider"] = "cluster-provider"
        resources.append(entry)
    table = {f.wanted.parent: urns[f.wanted.parent] for f in created if f.wanted.parent in urns}
    if provider:
        table["cluster-provider"] = provider
    return resources, table


def settling_message(pending: Sequence[recovery.Pending], created: Sequence[Found]) -> str:
    made = {f.wanted.name for f in created}
    imported = [op.name for op in pending if op.name in made]
    cleared = [op.name for op in pending if op.operation == "creating" and op.name not in made]
    return (
        "Settling them before up: `pulumi refresh` reads every resource again and forgets the unfinished creates"
        + (f"; `pulumi import` takes in what they made ({', '.join(imported)})" if imported else "")
        + (f"; the others made nothing ({', '.join(cleared)}): up makes them" if cleared else "")
        + "."
    )


def plugin_of(distribution: str) -> dict[str, str]:
    """The version and download URL the program's SDK asks for its plugin (its pulumi-plugin.json),
    so that an imported resource gets the same default provider as the program's."""
    files = importlib.metadata.distribution(distribution).files or []
    plugin = next(f for f in files if f.name == "pulumi-plugin.json")
    server = json.loads(plugin.read_text()).get("server", "")
    version = importlib.metadata.version(distribution)
    return {"version": version, **({"pluginDownloadUrl": server} if server else {})}


class StateFile:
    """The stack's state as `pulumi stack export` and `import` move it: secrets stay ciphertext (the
    Automation API's export_stack decrypts them, and its import_stack writes them to a file in clear)."""

    def __init__(self, stack: auto.Stack, say: Print):
        workspace = stack.workspace
        assert isinstance(workspace, auto.LocalWorkspace)
        self.stack, self.workspace, self.say = stack, workspace, say

    def _run(self, *args: str) -> str:
        """One `pulumi` command; a Ctrl-C cancels it gracefully and raises recovery.Cancelled."""
        command = [*args, "--stack", self.stack.name]
        workspace = self.workspace

        def run(interrupts: recovery.Interrupts) -> str:
            result = workspace.pulumi_command.run(command, workspace.work_dir, workspace.env_vars, interrupts.heard)
            return result.stdout

        return recovery.cancellable(self.say, run)

    def export(self) -> dict[str, Any]:
        return json.loads(self._run("stack", "export"))

    def import_resources(self, resources: list[dict[str, Any]], name_table: Mapping[str, str] | None = None) -> None:
        """`pulumi import` of `resources` (an import file's; `name_table` names the URNs of parents and
        providers the state holds already), into the state only: nothing else changes. The file is
        written in a private temporary folder, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="cluster-secrets-import-") as folder:  # mode 0700
            path = os.path.join(folder, "import.json")
            with open(path, "w", encoding="utf-8") as file:
                json.dump({"nameTable": dict(name_table or {}), "resources": resources}, file)
            self._run("import", "--file", path, "--yes", "--skip-preview", "--generate-code=false", "--protect=false")

    def refresh(self, arguments: Sequence[str]) -> None:
        """`pulumi refresh` of the whole stack (every resource read again from its provider)."""
        self._run("refresh", "--yes", "--skip-preview", *arguments)

    def replace(self, exported: Mapping[str, Any], urns: set[str]) -> None:
        """Import `exported` without the resources `urns`."""
        edited = {**exported, "deployment": without(exported["deployment"], urns)}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:  # mode 0600
            json.dump(edited, file)
        try:
            self._run("stack", "import", "--file", file.name)
        finally:
            os.remove(file.name)


def check_upgrade(
    stack: str, config: StackConfig, releases: Sequence[Mapping[str, Any]], live: upgrade_guard.LiveEso, say: Print
) -> None:
    """The upgrade guard (upgrade_guard.py) on the ESO chart the stack would install: warns of skipped
    minors, and raises UsageError naming the key and the path when the bump needs a step first."""
    target = next((chart.version for chart in charts.pinned(releases) if chart.chart == "external-secrets"), "")
    if not target:
        return
    for warning in upgrade_guard.minor_step_warnings(live.chart, target, upgrade_guard.ESO_KEY):
        say(f"warning: {warning}")
    found = upgrade_guard.problems(live, target, upgrade_guard.ESO_KEY)
    if found:
        followed = "" if config.eso_chart_version else config.primary_stack
        raise UsageError(upgrade_guard.stop_message(stack, found, followed))


def check(
    stack: auto.Stack,
    config: StackConfig | None,
    command: str,
    environ: Mapping[str, str],
    say: Print,
    vaults: Callable[[Mapping[str, str], Mapping[str, str]], Vaults] = reader,
    cluster: Callable[[str, str], Api] = KubeCluster,
    repositories: charts.Repositories | None = None,
) -> None:
    """The preflight of `command` (up, preview or destroy; `config` is None for a destroy, which reads
    only the state) on `stack`. Raises UsageError when the stack would create what exists already
    (takeover.py) or when its ESO chart bump needs a step first (upgrade_guard.py), OnePasswordError or
    ClusterError when 1Password or the cluster cannot be read. Not on preview: settles what an
    interrupted run left (recovery.py), refreshes what changed by hand in the cluster or in the items
    (drift.py), and takes items deleted by hand out of the state."""
    state = StateFile(stack, say)
    exported = state.export()
    deployment = exported.get("deployment")
    pending = recovery.pending_operations(deployment)
    if pending:
        say(recovery.pending_message(stack.name, pending))
    items = state_items(deployment)
    looks = config is not None and command != "destroy"  # for what exists already
    owns_items = config is not None and not config.share_argocd_admin
    if not looks and not items:
        return
    try:
        onepassword = vaults({key: value.value for key, value in stack.get_all_config().items()}, environ)
        working = onepassword.vault_id(config.working_vault) if config is not None and looks and owns_items else ""
        vault_ids = {item.vault_id for item in items} | ({working} if working else set())
        listed = {vault_id: onepassword.items(vault_id) for vault_id in vault_ids}
    except OnePasswordError as error:
        raise OnePasswordError(f"before {command}, reading 1Password: {error}") from None
    if config is not None and looks:
        registrations = desired.evaluate_stack(Path(stack.workspace.work_dir), stack.name).registrations
        releases = [r.plain for r in registrations if r.type == HELM_RELEASE]
        errors, warnings = charts.check(releases, config, repositories or charts.Repositories())
        for warning in warnings:
            say(f"warning: {warning}")
        if errors:
            raise UsageError("\n".join(errors))
        try:
            api = cluster(kubeconfig_file(config.kubeconfig_path, environ), config.kube_context)
            found = discover(config, registrations, deployment, api, listed.get(working, []), working)
            if pending and command == "up":
                exported = settle(state, deployment, pending, created_by(pending, found), say)
                deployment = exported.get("deployment")
                items = state_items(deployment)
                found = discover(config, registrations, deployment, api, listed.get(working, []), working)
            elif pending:
                say(f"`./cluster-secrets up {stack.name}` settles them before it changes anything.")
                found = [f for f in found if f.wanted.name not in {op.name for op in pending}]
            live_eso = upgrade_guard.read_live(api, config.eso_namespace)
            drifts = drift.find(deployment, api)
            scaled = drift.scaled_down(api, release_namespaces(config))
        except ClusterError as error:
            raise ClusterError(f"before {command}, reading the cluster: {error}") from None
        if found:
            raise UsageError(conflict_message(stack.name, found))
        check_upgrade(stack.name, config, releases, live_eso, say)
        deleted = deleted_items(items, listed)
        kept = [item for item in items if item not in deleted]
        stack_outputs = {name: output.value for name, output in stack.outputs().items()} if kept else {}
        try:
            edited = edited_items(kept, stack_outputs, lambda: onepassword)
        except OnePasswordError as error:
            raise OnePasswordError(f"before {command}, reading 1Password: {error}") from None
        if repair(state, api, drifts + edited, scaled, command, stack.name, say):
            exported = state.export()
        if edited and config.adopted_argocd_items:
            say(
                "The items are adopted (adoptedArgocdItems): their values not rotated since adopt are read from them "
                "at each evaluation, so `up` keeps an edit of those and has ESO copy it into argocd-secret."
            )
    else:
        deleted = deleted_items(items, listed)
    if deleted:
        say(deleted_message(deleted, command))
        if command != "preview":
            state.replace(exported, {item.urn for item in deleted})

"""`adopt STACK`: take over a cluster and items made by hand (the reference setup), in place.

1. Find what the stack would create that exists already (takeover.py), and refuse, with the way out,
   what cannot be taken over: an object an Argo CD Application manages, one a second owner has, two
   items of one title, admin items the program cannot keep as they are.
2. Show the plan and ask (or `--yes`).
3. Take over:
   - the stack file gets `adoptedArgocdItems: true` when the admin items are taken over (they stay
     the source of truth: their values are kept until the first rotation), and `argocdCreateSecret:
     'false'` when ESO owns argocd-secret already (so the chart does not try to make it);
   - argocd-secret gets `helm.sh/resource-policy: keep` if it lacks it, so that no chart upgrade can
     delete it (FACTS.md, Helm: the createSecret flip);
   - objects a deleted Argo CD Application left get Helm's ownership labels and annotations for the
     release that will render them, which `helm install` then adopts (Helm 3.2 and later);
   - `pulumi import` puts every object, release and item found into the state as it is: Kubernetes
     objects by name, Helm releases by their release record (the same release goes on, no
     reinstall), items by ID. Nothing in the cluster or in 1Password changes here.
4. `preview`: what the first `up` will change (another chart version or values, the item's shape)
   is shown; anything taken over that it would replace or delete stops adopt, and the state and
   stack file are put back as they were (an import followed by a replace deletes the live object:
   pulumi #14836).
5. `up`, as `./cluster-secrets up` does it (the preflight then finds nothing).

Helm releases: the pinned pulumi-kubernetes 4.34.2 also has `takeOwnership` on `helm.v3.Release`
(Helm's --take-ownership); the import keeps the user's release and history instead, works with the
end-to-end suite's 4.25.0 plugin (which has no takeOwnership), and Helm's ownership metadata covers
objects no release owns.
"""

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
from pulumi import automation as auto

from cluster_secrets import converge, deploy, desired, preflight, render
from cluster_secrets.errors import UsageError
from cluster_secrets.kube import CLUSTER_SCOPED, Api, ClusterError, KubeCluster, kubeconfig_file, object_path
from cluster_secrets.offline import Registration
from cluster_secrets.onepassword import ItemDetails, OnePasswordError, Vaults, reader
from cluster_secrets.stack_files import set_keys, stack_file
from cluster_secrets.takeover import HELM_RELEASE, ITEM, Found, detach_hint, discover, helm_ownership
from components.admin_secret import ADMIN_PASSWORD, ADMIN_PASSWORD_MTIME, ARGOCD_SECRET_KEYS
from components.argocd import ARGOCD_SECRET
from components.config import StackConfig
from components.kube import KEEP
from components.onepassword_items import ITEM_CATEGORIES

Print = Callable[[str], None]
REPLACING = {"replace", "create-replacement", "delete-replaced", "delete", "discard"}
# Argo CD parses admin.passwordMtime with Go's time.RFC3339 only (FACTS.md, Argo CD).
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Plan:
    found: list[Found]
    blockers: list[str]
    stack_keys: dict[str, Any]  # cluster-secrets keys adopt writes into the stack file
    keep_argocd_secret: bool  # argocd-secret lacks the keep annotation
    unreleased: list[str]  # logical names of releases whose objects no release owns (Argo CD made them)


def item_blockers(secret: ItemDetails | None, admin: ItemDetails | None, config: StackConfig) -> list[str]:
    """Why the admin items cannot be kept as they are; [] when they can (or are not there to adopt).
    Values are checked, never shown."""
    problems = []
    for item, title in ((secret, config.argocd_secret_item), (admin, config.argocd_admin_item)):
        if item is not None and item.category.lower() not in ITEM_CATEGORIES:
            problems.append(
                f"1Password item {title!r} is a {item.category} item; the provider keeps only "
                f"{', '.join(ITEM_CATEGORIES)} (and 1Password cannot change an item's category): make one of those "
                "with the same fields"
            )
    if secret is None or admin is None:
        if (secret is None) != (admin is None):
            absent = config.argocd_admin_item if admin is None else config.argocd_secret_item
            problems.append(f"1Password item {absent!r} is missing: adopt takes over both admin items or neither")
        return problems
    missing = [key for key in ARGOCD_SECRET_KEYS if not secret.value(key, True)]
    if missing:
        problems.append(
            f"1Password item {secret.title!r}: {', '.join(missing)} not found in a section of the item (the "
            "provider's item data source reads only fields in a section): move them into one in the 1Password app"
        )
        return problems
    password = admin.password
    if not password:
        problems.append(f"1Password item {admin.title!r} has no password: set the one Argo CD accepts")
        return problems
    try:
        matches = bcrypt.checkpw(password.encode(), secret.value(ADMIN_PASSWORD, True).encode())
    except ValueError:
        matches = False
    if not matches:
        problems.append(
            f"1Password items {secret.title!r} and {admin.title!r}: the admin.password hash does not match the "
            "password: set the one that Argo CD accepts in both"
        )
    if not RFC3339.match(secret.value(ADMIN_PASSWORD_MTIME, True)):
        problems.append(
            f"1Password item {secret.title!r}: admin.passwordMtime is not an RFC3339 time (Argo CD ignores it): "
            "set one, e.g. 2025-01-31T12:00:00Z"
        )
    return problems


def plan(
    config: StackConfig,
    found: list[Found],
    items: Mapping[str, ItemDetails],
    argocd_secret: dict[str, Any] | None,
) -> Plan:
    """What adopt will do with what was found (`items`: the details of the items found, by title)."""
    managed = application_blockers(found, config.argocd_namespace)
    blockers = managed + [f.blocker for f in found if f.blocker and not f.owner.startswith("Argo CD Application")]
    taken_items = [f for f in found if f.wanted.type == ITEM]
    keys: dict[str, Any] = {}
    if taken_items:
        blockers += item_blockers(items.get(config.argocd_secret_item), items.get(config.argocd_admin_item), config)
        keys["adoptedArgocdItems"] = True
    meta = (argocd_secret or {}).get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    eso_owned = any(ref.get("kind") == "ExternalSecret" and ref.get("controller") for ref in owners)
    if eso_owned and config.argocd_create_secret == "auto":
        keys["argocdCreateSecret"] = "false"
    keep_key, keep_value = next(iter(KEEP.items()))
    keep = argocd_secret is not None and (meta.get("annotations") or {}).get(keep_key) != keep_value
    unreleased = [f.wanted.name for f in found if f.wanted.type == HELM_RELEASE and f.owner.startswith("its objects")]
    return Plan(found, blockers, keys, keep, unreleased)


def application_blockers(found: Sequence[Found], namespace: str) -> list[str]:
    """One line for each Argo CD Application (in Argo CD's `namespace`) that manages something found,
    naming it all."""
    lines = []
    for owner in sorted({f.owner for f in found if f.blocker and f.owner.startswith("Argo CD Application")}):
        managed = [f for f in found if f.owner == owner and f.blocker]
        hint = detach_hint(namespace, managed[0].application)
        lines.append(f"{', '.join(f.wanted.what for f in managed)}: managed by {owner}; {hint}")
    return lines


def describe(plan_: Plan, stack: str) -> list[str]:
    """The plan, for people: what is taken over and how, and what adopt changes before `up`."""
    lines = [f"adopt {stack}: what exists already and how it is taken over"]
    for f in plan_.found:
        if f.blocker:
            how = "not taken over (below)"
        elif f.wanted.type == ITEM:
            how = "kept as the source of truth (its values stay until the first rotation)"
        elif f.wanted.name in plan_.unreleased:
            how = "installed over the objects, which get Helm's ownership metadata first"
        elif f.wanted.type == HELM_RELEASE:
            how = "imported: the same Helm release goes on, no reinstall"
        else:
            how = "imported into the state as it is"
        lines.append(f"  {f.wanted.what} (owner: {f.owner}): {how}")
    for key, value in plan_.stack_keys.items():
        lines.append(f"  Pulumi.{stack}.yaml: cluster-secrets:{key}: {json.dumps(value)}")
    if plan_.keep_argocd_secret:
        lines.append(f"  Secret {ARGOCD_SECRET}: annotated {next(iter(KEEP))}: keep, so no chart upgrade deletes it")
    if not plan_.blockers:
        lines.append("Then a preview shows what the first `up` changes, and `up` converges the stack.")
    return lines


def import_resources(
    taking: Plan, registrations: Sequence[Registration], onepassword_plugin: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The `pulumi import` file's resources: the components that are parents, the cluster's provider
    (with the program's own configuration) and everything found, but the releases no release record
    is there for (`up` installs them over their objects)."""
    by_name = {r.name: r for r in registrations}
    found = [f for f in taking.found if f.wanted.name not in taking.unreleased]
    parents = {f.wanted.parent for f in found}
    resources: list[dict[str, Any]] = [
        {"type": by_name[name].type, "name": name, "component": True} for name in sorted(parents)
    ]
    provider = next(r for r in registrations if r.type == "pulumi:providers:kubernetes")
    kubernetes_plugin = preflight.plugin_of("pulumi_kubernetes")
    resources.append({"type": provider.type, "name": provider.name, "inputs": provider.plain, **kubernetes_plugin})
    for f in found:
        entry: dict[str, Any] = {"type": f.wanted.type, "name": f.wanted.name, "id": f.import_id}
        entry["parent"] = f.wanted.parent
        if f.wanted.type == ITEM:
            entry.update(onepassword_plugin)
        else:
            entry["provider"] = provider.name
        resources.append(entry)
    return resources


def helm_owned(manifest: Mapping[str, Any], release: str, namespace: str) -> tuple[str, dict[str, Any]]:
    """The API path of a rendered object, and the merge patch that gives it Helm's ownership metadata."""
    meta = manifest.get("metadata") or {}
    scope = None if manifest["kind"] in CLUSTER_SCOPED else (meta.get("namespace") or namespace)
    path = object_path(manifest["apiVersion"], manifest["kind"], meta["name"], scope)
    return path, {"metadata": helm_ownership(release, namespace)}


@contextlib.contextmanager
def restored_on_failure(state: preflight.StateFile, stack_path: Path) -> Iterator[None]:
    """Put the state and the stack file back as they were if what follows fails."""
    saved_state, saved_file = state.export(), stack_path.read_text()
    try:
        yield
    except BaseException:
        state.replace(saved_state, set())
        stack_path.write_text(saved_file)
        raise


def preview_ops(stack: auto.Stack) -> list[tuple[str, str]]:
    """(operation, logical name) of each change a preview shows."""
    ops: list[tuple[str, str]] = []

    def record(event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            if meta.op not in (auto.OpType.SAME, auto.OpType.READ):
                ops.append((meta.op.value, meta.urn.split("::")[-1]))

    stack.preview(on_event=record)
    return ops


def run(
    project_dir: Path,
    stack_name: str,
    environ: Mapping[str, str],
    say: Print,
    confirm: Callable[[list[str]], bool],
    checks: deploy.Checks,
    vaults: Callable[[Mapping[str, str], Mapping[str, str]], Vaults] = reader,
    cluster: Callable[[str, str], Api] = KubeCluster,
) -> int:
    config = deploy.check_stack_file(project_dir, stack_name, "up")
    assert config is not None
    stack = deploy.open_for_run(project_dir, stack_name, environ, say)
    state = preflight.StateFile(stack, say)
    deployment = state.export().get("deployment")
    evaluation = desired.evaluate_stack(project_dir, stack_name)
    try:
        onepassword = vaults({key: value.value for key, value in stack.get_all_config().items()}, environ)
        working = onepassword.vault_id(config.working_vault)
        api = cluster(kubeconfig_file(config.kubeconfig_path, environ), config.kube_context)
        found = discover(config, evaluation.registrations, deployment, api, onepassword.items(working), working)
        items = {
            f.wanted.title: onepassword.item(working, f.import_id.rsplit("/", 1)[1])
            for f in found
            if f.wanted.type == ITEM
        }
        argocd_secret = api.get(f"/api/v1/namespaces/{config.argocd_namespace}/secrets/{ARGOCD_SECRET}")
    except OnePasswordError as error:
        raise OnePasswordError(f"adopt {stack_name}, reading 1Password: {error}") from None
    except ClusterError as error:
        raise ClusterError(f"adopt {stack_name}, reading the cluster: {error}") from None
    if not found:
        say(f"adopt {stack_name}: nothing made outside the stack to take over; run: ./cluster-secrets up {stack_name}")
        return converge.EXIT_OK
    taking = plan(config, found, items, argocd_secret)
    described = describe(taking, stack_name)
    for line in described:
        say(line)
    if taking.blockers:
        raise UsageError("adopt cannot take these over yet:\n" + "\n".join(f"  - {b}" for b in taking.blockers))
    if not confirm(described):
        say("Not adopted; nothing was changed.")
        return converge.EXIT_USAGE

    path = stack_file(project_dir, stack_name)
    with restored_on_failure(state, path):
        take_over(taking, config, path, api, evaluation.registrations, environ)
        state.import_resources(
            import_resources(taking, evaluation.registrations, preflight.plugin_of("pulumi_onepassword"))
        )
        imported = len(found) - len(taking.unreleased)
        say(f"Imported {imported} object(s), release(s) and item(s) into stack {stack_name}.")
        ops = preview_ops(stack)
        adopted = {f.wanted.name for f in found}
        dangerous = [f"{op} {name}" for op, name in ops if op in REPLACING and name in adopted]
        if dangerous:
            raise UsageError(
                "the first `up` would replace or delete what was taken over: " + ", ".join(dangerous) + ". Nothing "
                "was changed in the cluster; the state and the stack file are as they were. Make the stack file "
                "agree with what is there (a chart name, a namespace, an object's name) and adopt again."
            )
        say("The first `up` changes: " + (", ".join(f"{op} {name}" for op, name in ops) or "nothing") + ".")
    adopted_config = deploy.check_stack_file(project_dir, stack_name, "up")  # with the keys adopt wrote
    assert adopted_config is not None
    return deploy.up(project_dir, stack_name, environ, say, adopted_config, checks)


def take_over(
    taking: Plan,
    config: StackConfig,
    path: Path,
    api: Api,
    registrations: Sequence[Registration],
    environ: Mapping[str, str],
) -> None:
    """The changes adopt makes before the import: the stack file's keys, the keep annotation on
    argocd-secret, Helm's ownership metadata on objects no release owns."""
    set_keys(path, taking.stack_keys)
    if taking.keep_argocd_secret:
        api.merge_patch(
            f"/api/v1/namespaces/{config.argocd_namespace}/secrets/{ARGOCD_SECRET}",
            {"metadata": {"annotations": dict(KEEP)}},
        )
    by_name = {r.name: r for r in registrations}
    for name in taking.unreleased:
        inputs = by_name[name].plain
        for manifest in render.render_release(inputs, environ=environ):
            target, patch = helm_owned(manifest, inputs["name"], inputs["namespace"])
            if api.get(target) is not None:
                api.merge_patch(target, patch)

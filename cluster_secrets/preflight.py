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

Pure decisions over the exported state and the vault's item list; the glue (`check`) reads both.
"""

import copy
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi import automation as auto

from cluster_secrets.errors import UsageError
from cluster_secrets.onepassword import ItemSummary, OnePasswordError, Vaults, reader
from components.config import StackConfig

ITEM_TYPE = "onepassword:index/item:Item"

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
        if resource.get("type") != ITEM_TYPE or resource.get("delete"):
            continue
        out = resource.get("outputs") or {}
        items.append(StateItem(resource["urn"], str(out.get("title", "")), str(out.get("uuid", "")), str(out["vault"])))
    return items


def taken_titles(
    titles: Sequence[str], state: Sequence[StateItem], listed: Sequence[ItemSummary]
) -> dict[str, list[str]]:
    """Title this stack would create -> the IDs of the items of that title in the vault (`listed`)
    that are not this stack's own."""
    ours = {item.item_id for item in state}
    taken = {}
    for title in titles:
        others = sorted(item.id for item in listed if item.title == title and item.id not in ours)
        if others:
            taken[title] = others
    return taken


def deleted_items(state: Sequence[StateItem], listed: Mapping[str, Sequence[ItemSummary]]) -> list[StateItem]:
    """The state's items that their vault (vault ID -> its item list) no longer holds."""
    return [item for item in state if item.item_id not in {found.id for found in listed[item.vault_id]}]


def taken_message(stack: str, vault: str, taken: Mapping[str, list[str]], keys: Mapping[str, str]) -> str:
    """The error for titles the vault already holds; `keys` maps each title to the config key naming it."""
    lines = [f"1Password vault {vault!r} already holds items with the titles this stack would create:"]
    for title, ids in taken.items():
        lines.append(f"  {title!r} (item {', '.join(ids)}), named by cluster-secrets:{keys[title]}")
    lines += [
        'A second item of the same title would make ESO refuse both ("expected one 1Password Item matching ..., '
        'got 2"). Nothing was changed. Either:',
        f"  - give this stack other titles: set the keys named above in Pulumi.{stack}.yaml, or",
        "  - delete or rename the other items in 1Password if they are left over and nothing reads them.",
    ]
    return "\n".join(lines)


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


class StateFile:
    """The stack's state as `pulumi stack export` and `import` move it: secrets stay ciphertext (the
    Automation API's export_stack decrypts them, and its import_stack writes them to a file in clear)."""

    def __init__(self, stack: auto.Stack):
        workspace = stack.workspace
        assert isinstance(workspace, auto.LocalWorkspace)
        self.stack, self.workspace = stack, workspace

    def _run(self, *args: str) -> str:
        command = [*args, "--stack", self.stack.name]
        return self.workspace.pulumi_command.run(command, self.workspace.work_dir, self.workspace.env_vars).stdout

    def export(self) -> dict[str, Any]:
        return json.loads(self._run("stack", "export"))

    def replace(self, exported: Mapping[str, Any], urns: set[str]) -> None:
        """Import `exported` without the resources `urns`."""
        edited = {**exported, "deployment": without(exported["deployment"], urns)}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:  # mode 0600
            json.dump(edited, file)
        try:
            self._run("stack", "import", "--file", file.name)
        finally:
            os.remove(file.name)


def own_titles(config: StackConfig) -> dict[str, str]:
    """Title -> config key, of the items this stack creates (none when it shares its primary's)."""
    if config.share_argocd_admin:
        return {}
    return {config.argocd_secret_item: "argocdSecretItem", config.argocd_admin_item: "argocdAdminItem"}


def check(
    stack: auto.Stack,
    config: StackConfig | None,
    command: str,
    environ: Mapping[str, str],
    say: Print,
    vaults: Callable[[Mapping[str, str], Mapping[str, str]], Vaults] = reader,
) -> None:
    """The 1Password preflight of `command` (up, preview or destroy; `config` is None for a destroy,
    which reads only the state) on `stack`. Raises UsageError when the working vault holds a title
    this stack would create, OnePasswordError when 1Password cannot be read; takes items deleted by
    hand out of the state (not on preview)."""
    titles = own_titles(config) if config is not None else {}
    state = StateFile(stack)
    exported = state.export()
    items = state_items(exported.get("deployment"))
    if not titles and not items:
        return
    provider_config = {key: value.value for key, value in stack.get_all_config().items()}
    try:
        onepassword = vaults(provider_config, environ)
        working = onepassword.vault_id(config.working_vault) if config is not None and titles else None
        vault_ids = {item.vault_id for item in items} | ({working} if working else set())
        listed = {vault_id: onepassword.items(vault_id) for vault_id in vault_ids}
    except OnePasswordError as error:
        raise OnePasswordError(f"before {command}, reading 1Password: {error}") from None
    if config is not None and working is not None:
        taken = taken_titles(list(titles), items, listed[working])
        if taken:
            raise UsageError(taken_message(stack.name, config.working_vault, taken, titles))
    deleted = deleted_items(items, listed)
    if deleted:
        say(deleted_message(deleted, command))
        if command != "preview":
            state.replace(exported, {item.urn for item in deleted})

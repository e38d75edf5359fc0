"""The tool's own look at 1Password, before Pulumi runs: which items a vault holds, by ID and title.

It reaches 1Password as pulumi-onepassword does (terraform-provider-onepassword v2.2.1,
internal/provider/provider.go Configure; internal/onepassword/client.go NewClient): the stack's
`onepassword:` config, else the environment; a service account token or an account means the `op`
CLI, else a Connect server's URL and token. Tokens go to Connect in a header and to `op` in its
environment, never on a command line, and no message carries one.

Two reads per look: the vault by name, then its item summaries (Connect: `GET /v1/vaults?filter=`
and `GET /v1/vaults/{id}/items`; `op vault get` and `op item list`).
"""

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

TIMEOUT = 20  # seconds, for each request or `op` call

# Provider config key -> the environment variable it falls back to (the Python SDK's config/vars.py).
SETTINGS = {
    "url": "OP_CONNECT_HOST",
    "token": "OP_CONNECT_TOKEN",
    "serviceAccountToken": "OP_SERVICE_ACCOUNT_TOKEN",
    "account": "OP_ACCOUNT",
    "opCliPath": "OP_CLI_PATH",
}


class OnePasswordError(Exception):
    """1Password could not be read; the message names what was asked, never a credential."""


@dataclass(frozen=True)
class ItemSummary:
    id: str
    title: str


@dataclass(frozen=True)
class Field:
    label: str
    value: str  # may be a secret: compared, never printed
    in_section: bool  # a custom field in a section (the provider's data source reads only those)
    purpose: str  # USERNAME, PASSWORD, NOTES or ""


@dataclass(frozen=True)
class ItemDetails:
    id: str
    title: str
    category: str  # as Connect and op name it: SECURE_NOTE, LOGIN, PASSWORD, ...
    fields: tuple[Field, ...]

    def value(self, label: str, in_section: bool | None = None) -> str:
        """The value of the field labelled `label` (in a section, or not, if asked), or ""."""
        found = [f for f in self.fields if f.label == label and in_section in (None, f.in_section)]
        return found[0].value if found else ""

    @property
    def password(self) -> str:
        """A login or password item's password: the field labelled password, else the one of that purpose."""
        return self.value("password") or next((f.value for f in self.fields if f.purpose == "PASSWORD"), "")


class Vaults(Protocol):
    def vault_id(self, name: str) -> str: ...
    def items(self, vault_id: str) -> list[ItemSummary]: ...
    def item(self, vault_id: str, item_id: str) -> ItemDetails: ...


def settings(config: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The provider's settings as it resolves them: `onepassword:<key>` config over the environment."""
    return {key: config.get(f"onepassword:{key}") or environ.get(env, "") for key, env in SETTINGS.items()}


def reader(config: Mapping[str, str], environ: Mapping[str, str]) -> Vaults:
    """What the provider would talk to, for this stack's config and this environment."""
    chosen = settings(config, environ)
    if chosen["serviceAccountToken"] or chosen["account"]:
        return OpCli(chosen["opCliPath"] or "op", chosen["serviceAccountToken"], chosen["account"], environ)
    if chosen["url"] and chosen["token"]:
        return ConnectApi(chosen["url"], chosen["token"])
    raise OnePasswordError(
        "no 1Password credentials: set OP_SERVICE_ACCOUNT_TOKEN (a service account, with the op CLI), or "
        "OP_CONNECT_HOST and OP_CONNECT_TOKEN (a Connect server), or their onepassword: config keys"
    )


class ConnectApi:
    """A Connect server's REST API (https://developer.1password.com/docs/connect/api-reference)."""

    def __init__(self, url: str, token: str):
        self.url, self._token = url.rstrip("/"), token

    def _get(self, path: str) -> object:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("message", "")
            except (ValueError, AttributeError):
                message = ""
            raise OnePasswordError(f"Connect at {self.url}: GET {path.split('?')[0]}: {error.code} {message}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise OnePasswordError(f"cannot reach Connect at {self.url}: {error}") from None

    def vault_id(self, name: str) -> str:
        found = self._get("/v1/vaults?" + urllib.parse.urlencode({"filter": f'title eq "{name}"'}))
        return _one_vault(
            name, [v.get("id", "") for v in found if isinstance(v, dict)] if isinstance(found, list) else []
        )

    def items(self, vault_id: str) -> list[ItemSummary]:
        found = self._get(f"/v1/vaults/{vault_id}/items")
        return _summaries(found)

    def item(self, vault_id: str, item_id: str) -> ItemDetails:
        return _details(self._get(f"/v1/vaults/{vault_id}/items/{item_id}"))


class OpCli:
    """The `op` CLI, with the service account token (or account) in its environment."""

    def __init__(self, path: str, token: str, account: str, environ: Mapping[str, str]):
        self.path, self.account = path, account
        self._env = {**environ, "OP_FORMAT": "json"}
        if token:
            self._env["OP_SERVICE_ACCOUNT_TOKEN"] = token

    def _run(self, *args: str) -> object:
        command = [self.path, *args, "--format", "json", *(["--account", self.account] if self.account else [])]
        try:
            done = subprocess.run(command, env=self._env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise OnePasswordError(f"cannot run the 1Password CLI ({self.path}): {error}") from None
        if done.returncode != 0:
            raise OnePasswordError(f"`op {' '.join(args)}` failed: {done.stderr.strip()[-300:]}")
        try:
            return json.loads(done.stdout or "null")
        except ValueError:
            raise OnePasswordError(f"`op {' '.join(args)}` did not answer JSON") from None

    def vault_id(self, name: str) -> str:
        found = self._run("vault", "get", name)
        return _one_vault(name, [found.get("id", "")] if isinstance(found, dict) else [])

    def items(self, vault_id: str) -> list[ItemSummary]:
        return _summaries(self._run("item", "list", "--vault", vault_id))

    def item(self, vault_id: str, item_id: str) -> ItemDetails:
        return _details(self._run("item", "get", item_id, "--vault", vault_id))


def _one_vault(name: str, ids: list[str]) -> str:
    if len(ids) != 1 or not ids[0]:
        raise OnePasswordError(f"expected one 1Password vault named {name!r}, found {len(ids)}")
    return ids[0]


def _summaries(found: object) -> list[ItemSummary]:
    if not isinstance(found, list):
        raise OnePasswordError("an item list that is not a list")
    return [ItemSummary(str(i.get("id", "")), str(i.get("title", ""))) for i in found if isinstance(i, dict)]


def _details(found: object) -> ItemDetails:
    """An item as Connect (API reference: Item) and `op item get --format json` give it: the same keys."""
    if not isinstance(found, dict):
        raise OnePasswordError("an item that is not a JSON object")
    sections = {str(s.get("id")) for s in found.get("sections") or [] if isinstance(s, dict)}
    fields = tuple(
        Field(
            label=str(f.get("label", "")),
            value=str(f.get("value", "")),
            in_section=str((f.get("section") or {}).get("id")) in sections,
            purpose=str(f.get("purpose", "")),
        )
        for f in found.get("fields") or []
        if isinstance(f, dict)
    )
    return ItemDetails(str(found.get("id", "")), str(found.get("title", "")), str(found.get("category", "")), fields)

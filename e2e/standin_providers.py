"""STAND-IN provider plugins for the end-to-end suite: NOT the real random, time and onepassword providers.

The real plugins (pulumi-random 4.21.4, pulumiverse-time 0.1.1, pulumi-onepassword 1.2.1) cannot be
built here: the Go module proxy refuses their provider modules and no registry ships their binaries.
Without them `pulumi up` of the program cannot run at all, so this module serves three small
stand-ins that speak the engine's gRPC ResourceProvider protocol and implement exactly what
cluster-secrets uses, so that everything else (the engine, the Kubernetes provider, the API server,
ESO) runs for real:

- random: `RandomPassword` (length, special, upper, lower, numeric, min_*, override_special,
  keepers -> `result`, `bcryptHash`) and `RandomBytes` (length, keepers -> `hex`, `base64`).
  Every input is replace-on-change, as in the real provider's schema.
- time: `Static` (triggers, optional rfc3339 -> rfc3339, unix, year ... second). Replace when
  triggers or rfc3339 change.
- onepassword: invokes `getVault` and `getItem`, resource `Item`, all through the 1Password Connect
  REST API (the suite's Connect stand-in, e2e/connect_standin.py) with the bearer token from
  `onepassword:url`/`onepassword:token` or `OP_CONNECT_HOST`/`OP_CONNECT_TOKEN`. An Item is updated
  in place when its fields change and replaced when `vault` or `category` changes.

What these stand-ins cannot tell: how the real providers diff. pulumi-onepassword is reported to show
an update of every Item on every `up` (pulumi-onepassword issue 62); this stand-in diffs inputs
against the previous inputs and reports no change when nothing changed, so a run with it says
nothing about whether the real provider has that perpetual diff. Likewise the exact Connect calls
per operation, the error texts, retries, refresh (Read returns the stored state, after checking that
an Item still exists) and service-account mode (`op` CLI) are this module's, not the real ones.
`category` replaces because the upstream item schema marks it so. `bcryptHash` hashes the first 72
bytes of `result` (the program does not use it). The line each plugin prints on stderr at start
reaches the engine's debug log (`pulumi ... --debug` or `--logtostderr -v=3`), not the normal output.

Run: `python -m e2e.standin_providers serve random|time|onepassword` (what the installed plugin
scripts do), `python -m e2e.standin_providers install` / `install --uninstall` (or `uninstall`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import string
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import bcrypt
import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

# Versions exactly as the Python packages in requirements.txt: the engine wants an exact match.
VERSIONS = {"random": "4.21.4", "time": "0.1.1", "onepassword": "1.2.1"}
MARKER = "cluster-secrets STAND-IN provider plugin"  # in every installed script; uninstall checks it

Props = dict[str, Any]

# The engine's wire encodings inside a Struct (sdk/go/common/resource/plugin/rpc.go).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


# --- values ----------------------------------------------------------------------------------


def secret(value: Any) -> Props:
    """`value` marked secret, as the engine encodes it."""
    return {SIG_KEY: SECRET_SIG, "value": value}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def plain(value: Any) -> Any:
    """`value` with every secret marker removed (deeply)."""
    if is_secret(value):
        return plain(value.get("value"))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def has_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def from_struct(message: struct_pb2.Struct | None) -> Props:
    if message is None:
        return {}
    return dict(json_format.MessageToDict(message))


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update({k: v for k, v in props.items() if v is not None})
    return message


class ProviderError(Exception):
    """A failure to report to the engine as a gRPC error with this message (never a secret)."""


# --- diffs -----------------------------------------------------------------------------------

_KIND = provider_pb2.PropertyDiff
_KINDS = {
    ("add", False): _KIND.ADD,
    ("add", True): _KIND.ADD_REPLACE,
    ("delete", False): _KIND.DELETE,
    ("delete", True): _KIND.DELETE_REPLACE,
    ("update", False): _KIND.UPDATE,
    ("update", True): _KIND.UPDATE_REPLACE,
}


@dataclass(frozen=True)
class Diff:
    """Changed top-level properties: name -> (kind, replaces)."""

    changes: dict[str, tuple[str, bool]] = field(default_factory=dict)

    @property
    def replaces(self) -> list[str]:
        return sorted(k for k, (_, replace) in self.changes.items() if replace)

    def to_response(self) -> provider_pb2.DiffResponse:
        if not self.changes:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE, hasDetailedDiff=True)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME,
            replaces=self.replaces,
            diffs=sorted(self.changes),
            detailedDiff={
                key: provider_pb2.PropertyDiff(kind=_KINDS[(kind, replace)], inputDiff=True)
                for key, (kind, replace) in self.changes.items()
            },
            hasDetailedDiff=True,
        )


def diff_inputs(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    replace_on: Callable[[str], bool],
    ignore: frozenset[str] = frozenset(),
) -> Diff:
    """Compare inputs by value (secretness aside; absent equals null). An unknown new value counts as
    a change, as the engine cannot know better before the apply."""
    changes: dict[str, tuple[str, bool]] = {}
    for key in sorted((set(old) | set(new)) - ignore):
        before, after = plain(old.get(key)), new.get(key)
        if not has_unknown(after) and before == plain(after):
            continue
        kind = "add" if before is None else "delete" if after is None else "update"
        changes[key] = (kind, replace_on(key))
    return Diff(changes)


def _every_key(_: str) -> bool:
    return True


# --- resources -------------------------------------------------------------------------------


@dataclass
class Created:
    id: str
    outputs: Props


class Resource:
    """One resource type of a stand-in: check, diff, create, update, read, delete."""

    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        return news, []

    def diff(self, old_inputs: Props, news: Props, olds: Props) -> Diff:
        return diff_inputs(old_inputs, news, _every_key)

    def create(self, inputs: Props, preview: bool) -> Created:
        raise NotImplementedError

    def update(self, id_: str, olds: Props, news: Props, preview: bool) -> Props:
        """Only inputs that no stand-in treats as replace-on-change land here: keep computed outputs."""
        return {**olds, **news}

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props, Props]:
        return id_, state, inputs

    def delete(self, id_: str, state: Props) -> None:
        pass


def _int(value: Any) -> int | None:
    """An integral number from the wire (numbers are doubles there), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        return None
    return int(value)


# random ------------------------------------------------------------------------------------------

PASSWORD_DEFAULTS: Props = {
    "lower": True,
    "upper": True,
    "numeric": True,
    "number": True,
    "special": True,
    "minLower": 0,
    "minUpper": 0,
    "minNumeric": 0,
    "minSpecial": 0,
}
DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"
BCRYPT_COST = 10


def generate_password(inputs: Props) -> str:
    """A random password as the inputs ask: each enabled class at least its minimum, the rest drawn
    from all enabled classes, shuffled; `secrets` throughout."""
    values = {k: plain(v) for k, v in inputs.items()}
    length = _int(values.get("length")) or 0
    special = values.get("overrideSpecial")
    digits = values.get("numeric", True) and values.get("number", True)
    classes = [
        (values.get("lower", True), string.ascii_lowercase, _int(values.get("minLower")) or 0),
        (values.get("upper", True), string.ascii_uppercase, _int(values.get("minUpper")) or 0),
        (digits, string.digits, _int(values.get("minNumeric")) or 0),
        (
            values.get("special", True),
            special if isinstance(special, str) else DEFAULT_SPECIAL,
            _int(values.get("minSpecial")) or 0,
        ),
    ]
    chosen: list[str] = []
    pool = ""
    for enabled, alphabet, minimum in classes:
        if enabled and alphabet:
            pool += alphabet
            chosen.extend(secrets.choice(alphabet) for _ in range(minimum))
    if not pool:
        raise ProviderError("RandomPassword: every character class is disabled")
    chosen.extend(secrets.choice(pool) for _ in range(length - len(chosen)))
    shuffled: list[str] = []
    while chosen:
        shuffled.append(chosen.pop(secrets.randbelow(len(chosen))))
    return "".join(shuffled)


class RandomPassword(Resource):
    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        inputs = {**PASSWORD_DEFAULTS, **{k: v for k, v in news.items() if v is not None}}
        failures: list[tuple[str, str]] = []
        length = inputs.get("length")
        if length is None:
            failures.append(("length", "length is required"))
        elif not has_unknown(length):
            count = _int(plain(length))
            if count is None or count < 1:
                failures.append(("length", "length must be a whole number of at least 1"))
            else:
                minimums = [inputs[k] for k in ("minLower", "minUpper", "minNumeric", "minSpecial")]
                if not has_unknown(minimums) and sum(_int(plain(m)) or 0 for m in minimums) > count:
                    failures.append(("length", "length must be at least the sum of the min_* values"))
        return inputs, failures

    def create(self, inputs: Props, preview: bool) -> Created:
        if preview:
            return Created("", {**inputs, "result": UNKNOWN, "bcryptHash": UNKNOWN})
        result = generate_password(inputs)
        digest = bcrypt.hashpw(result.encode()[:72], bcrypt.gensalt(BCRYPT_COST)).decode()
        return Created("none", {**inputs, "result": secret(result), "bcryptHash": secret(digest)})


class RandomBytes(Resource):
    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        inputs = {k: v for k, v in news.items() if v is not None}
        length = inputs.get("length")
        if length is None:
            return inputs, [("length", "length is required")]
        if not has_unknown(length) and (_int(plain(length)) or 0) < 1:
            return inputs, [("length", "length must be a whole number of at least 1")]
        return inputs, []

    def create(self, inputs: Props, preview: bool) -> Created:
        if preview:
            return Created("", {**inputs, "hex": UNKNOWN, "base64": UNKNOWN})
        data = secrets.token_bytes(_int(plain(inputs["length"])) or 0)
        return Created("none", {**inputs, "hex": secret(data.hex()), "base64": secret(base64.b64encode(data).decode())})


# time --------------------------------------------------------------------------------------------

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def static_outputs(moment: datetime, rfc3339: str | None = None) -> Props:
    """Outputs of a time Static for `moment` (UTC, whole seconds unless an rfc3339 was given)."""
    utc = moment.astimezone(UTC)
    text = rfc3339 or utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "rfc3339": text,
        "unix": int(utc.timestamp()),
        "year": utc.year,
        "month": utc.month,
        "day": utc.day,
        "hour": utc.hour,
        "minute": utc.minute,
        "second": utc.second,
        "id": text,
    }


class Static(Resource):
    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        inputs = {k: v for k, v in news.items() if v is not None}
        given = inputs.get("rfc3339")
        if given is not None and not has_unknown(given) and not RFC3339.match(str(plain(given))):
            return inputs, [("rfc3339", "rfc3339 must be an RFC3339 timestamp, e.g. 2026-01-02T03:04:05Z")]
        return inputs, []

    def diff(self, old_inputs: Props, news: Props, olds: Props) -> Diff:
        # rfc3339 is computed when not given: only a given value that differs from the state replaces.
        found = diff_inputs(old_inputs, news, _every_key, ignore=frozenset({"rfc3339"}))
        wanted = news.get("rfc3339")
        if wanted is not None and (has_unknown(wanted) or plain(wanted) != plain(olds.get("rfc3339"))):
            kind = "add" if olds.get("rfc3339") is None else "update"
            return Diff({**found.changes, "rfc3339": (kind, True)})
        return found

    def create(self, inputs: Props, preview: bool) -> Created:
        if preview:
            computed = ("rfc3339", "unix", "year", "month", "day", "hour", "minute", "second", "id")
            return Created("", {**dict.fromkeys(computed, UNKNOWN), **inputs})
        given = plain(inputs.get("rfc3339"))
        if given:
            moment = datetime.fromisoformat(str(given).replace("Z", "+00:00"))
            outputs = static_outputs(moment, str(given))
        else:
            outputs = static_outputs(datetime.now(UTC))
        return Created(outputs["id"], {**inputs, **outputs})


# onepassword ---------------------------------------------------------------------------------------

ID_PATTERN = re.compile(r"^[a-z0-9]{26}$")
_ID_ALPHABET = string.ascii_lowercase + string.digits
ITEM_CATEGORIES = ("login", "password", "database", "secure_note")
# Top-level fields of an item as Connect holds them: (input name, field id, label, purpose, type).
USERNAME_FIELD = ("username", "username", "username", "USERNAME", "STRING")
PASSWORD_FIELD = ("password", "password", "password", "PASSWORD", "CONCEALED")
NOTES_FIELD = ("noteValue", "notesPlain", "notesPlain", "NOTES", "STRING")
DATABASE_FIELDS = (
    ("hostname", "hostname", "server", "", "STRING"),
    ("database", "database", "database", "", "STRING"),
    ("port", "port", "port", "", "STRING"),
    ("type", "database_type", "type", "", "MENU"),
)


def new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


class ConnectError(ProviderError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ConnectClient:
    """The few Connect REST calls the stand-in makes (connect-sdk-go's routes and JSON shapes)."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", f"cluster-secrets-standin-onepassword/{VERSIONS['onepassword']}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                payload = answer.read()
                if answer.headers.get_content_type() == "application/json":
                    return json.loads(payload or b"null")
                return payload
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                message = str(json.loads(raw).get("message") or "")
            except (ValueError, AttributeError):
                message = ""
            raise ConnectError(
                f"1Password Connect at {self.url} answered {method} {_route(path)} with {error.code}"
                + (f": {message}" if message else ""),
                error.code,
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ConnectError(f"cannot reach 1Password Connect at {self.url}: {reason}") from None

    def vault_by_name(self, name: str) -> Props:
        query = urllib.parse.quote_plus(f'title eq "{name}"')
        vaults = self.request("GET", f"/v1/vaults?filter={query}") or []
        if len(vaults) != 1:
            raise ProviderError(f"expected one vault named {name!r}, found {len(vaults)}")
        return dict(vaults[0])

    def vault(self, vault_id: str) -> Props:
        return dict(self.request("GET", f"/v1/vaults/{vault_id}"))

    def vault_id(self, vault: str) -> str:
        return vault if ID_PATTERN.match(vault) else str(self.vault_by_name(vault)["id"])

    def item_by_title(self, vault_id: str, title: str) -> Props:
        query = urllib.parse.quote_plus(f'title eq "{title}"')
        found = self.request("GET", f"/v1/vaults/{vault_id}/items?filter={query}") or []
        if len(found) != 1:
            raise ProviderError(f"expected one item titled {title!r} in vault {vault_id}, found {len(found)}")
        return self.item(vault_id, str(found[0]["id"]))

    def item(self, vault_id: str, item_id: str) -> Props:
        return dict(self.request("GET", f"/v1/vaults/{vault_id}/items/{item_id}"))

    def file_content(self, vault_id: str, item_id: str, file: Mapping[str, Any]) -> bytes:
        path = file.get("content_path") or f"/v1/vaults/{vault_id}/items/{item_id}/files/{file['id']}/content"
        content = self.request("GET", str(path))
        return content if isinstance(content, bytes) else json.dumps(content).encode()


def _route(path: str) -> str:
    """A request path without IDs or query, for messages."""
    bare = path.split("?", 1)[0]
    return re.sub(r"/[a-z0-9]{26}(?=/|$)", "/{id}", bare)


def item_body(inputs: Props, vault_id: str, previous: Props | None = None) -> Props:
    """The Connect item for an Item resource's inputs. Section and field IDs are kept from the
    previous outputs (by position and label) and made up for new ones."""
    values = plain(inputs)
    category = str(values.get("category") or "login").lower()
    body: Props = {"vault": {"id": vault_id}, "title": values.get("title") or "", "category": category.upper()}
    fields: list[Props] = []

    def top(spec: tuple[str, str, str, str, str], generate: bool = False) -> None:
        name, field_id, label, purpose, kind = spec
        value = values.get(name)
        if value is None and not generate:
            return
        entry: Props = {"id": field_id, "label": label, "type": kind}
        if purpose:
            entry["purpose"] = purpose
        if value is not None:
            entry["value"] = value
        else:
            entry["generate"] = True
            entry["recipe"] = _recipe(values.get("passwordRecipe"))
        fields.append(entry)

    if category == "login":
        top(USERNAME_FIELD)
    if category in ("login", "password", "database"):
        top(PASSWORD_FIELD, generate=category in ("login", "password"))
    if category == "database":
        top(USERNAME_FIELD)
        for spec in DATABASE_FIELDS:
            top(spec)
    top(NOTES_FIELD)
    old_sections = list((previous or {}).get("sections") or [])
    sections: list[Props] = []
    for index, section in enumerate(values.get("sections") or []):
        old = plain(old_sections[index]) if index < len(old_sections) else {}
        same = old.get("label") == section.get("label")
        section_id = section.get("id") or (old.get("id") if same else None) or new_id()
        sections.append({"id": section_id, "label": section.get("label") or ""})
        old_fields = list(old.get("fields") or []) if same else []
        for position, item_field in enumerate(section.get("fields") or []):
            before = old_fields[position] if position < len(old_fields) else {}
            field_id = (
                item_field.get("id")
                or (before.get("id") if before.get("label") == item_field.get("label") else None)
                or new_id()
            )
            entry = {
                "id": field_id,
                "section": {"id": section_id},
                "label": item_field.get("label") or "",
                "type": str(item_field.get("type") or "STRING").upper(),
            }
            if item_field.get("purpose"):
                entry["purpose"] = str(item_field["purpose"]).upper()
            if item_field.get("value") is not None:
                entry["value"] = item_field["value"]
            elif item_field.get("passwordRecipe"):
                entry["generate"] = True
                entry["recipe"] = _recipe(item_field.get("passwordRecipe"))
            fields.append(entry)
    body["fields"] = fields
    if sections:
        body["sections"] = sections
    if values.get("url"):
        body["urls"] = [{"primary": True, "href": values["url"]}]
    if values.get("tags"):
        body["tags"] = list(values["tags"])
    return body


def _recipe(recipe: Any) -> Props:
    given = recipe[0] if isinstance(recipe, list) and recipe else recipe if isinstance(recipe, dict) else {}
    sets = [
        name
        for name, key in (("LETTERS", "letters"), ("DIGITS", "digits"), ("SYMBOLS", "symbols"))
        if given.get(key, True)
    ]
    return {"length": _int(given.get("length")) or 32, "characterSets": sets}


def item_outputs(inputs: Props, item: Mapping[str, Any]) -> Props:
    """The Item resource's outputs: its inputs, with what Connect assigned (IDs, generated values),
    every password and field value secret."""
    vault_id = str((item.get("vault") or {}).get("id") or plain(inputs.get("vault")))
    outputs: Props = {**inputs, "uuid": item["id"], "id": f"vaults/{vault_id}/items/{item['id']}"}
    if "password" not in inputs:  # a generated password is an output
        generated = [
            f.get("value")
            for f in item.get("fields") or []
            if f.get("id") == PASSWORD_FIELD[1] and not (f.get("section") or {}).get("id")
        ]
        if generated and generated[0] is not None:
            outputs["password"] = generated[0]
    for name in ("password", "noteValue"):
        if outputs.get(name) is not None and not is_secret(outputs[name]):
            outputs[name] = secret(outputs[name])
    sections_out = []
    connect_sections = list(item.get("sections") or [])
    all_fields = list(item.get("fields") or [])
    for index, section in enumerate(plain(inputs.get("sections")) or []):
        section_id = connect_sections[index]["id"] if index < len(connect_sections) else new_id()
        in_section = [f for f in all_fields if (f.get("section") or {}).get("id") == section_id]
        fields_out = []
        for position, given in enumerate(section.get("fields") or []):
            stored = in_section[position] if position < len(in_section) else {}
            value = given.get("value") if given.get("value") is not None else stored.get("value")
            entry = {**given, "id": stored.get("id") or given.get("id") or "", "type": given.get("type") or "STRING"}
            entry["value"] = secret(value) if value is not None else None
            fields_out.append({k: v for k, v in entry.items() if v is not None})
        sections_out.append({**section, "id": section_id, "fields": fields_out})
    if inputs.get("sections") is not None:
        outputs["sections"] = sections_out
    return outputs


class Connection:
    """The onepassword stand-in's configuration, set by Configure."""

    def __init__(self) -> None:
        self.client: ConnectClient | None = None
        self.problem = "the onepassword stand-in was not configured"

    def configure(self, args: Props, variables: Mapping[str, str], env: Mapping[str, str]) -> None:
        def setting(key: str, variable: str) -> str:
            value = plain(args.get(key))
            if value in (None, ""):
                value = variables.get(f"onepassword:config:{key}") or variables.get(f"onepassword:{key}")
            return str(value or env.get(variable) or "")

        url, token = setting("url", "OP_CONNECT_HOST"), setting("token", "OP_CONNECT_TOKEN")
        if url and token:
            self.client = ConnectClient(url, token)
            return
        self.client = None
        if setting("serviceAccountToken", "OP_SERVICE_ACCOUNT_TOKEN"):
            self.problem = "the onepassword stand-in speaks Connect only; service accounts (op CLI) are not supported"
        else:
            self.problem = (
                "1Password Connect is not configured: set onepassword:url and onepassword:token "
                "(or OP_CONNECT_HOST and OP_CONNECT_TOKEN)"
            )

    def get(self) -> ConnectClient:
        if self.client is None:
            raise ProviderError(self.problem)
        return self.client


def get_vault(client: ConnectClient, args: Props) -> Props:
    name, uuid = plain(args.get("name")), plain(args.get("uuid"))
    try:
        vault = client.vault(str(uuid)) if uuid else client.vault_by_name(str(name or ""))
    except ConnectError as error:
        if error.status == 404:
            raise ProviderError(f"no vault {uuid or name!r} found") from None
        raise
    return {
        "id": f"vaults/{vault['id']}",
        "uuid": vault["id"],
        "name": vault.get("name") or "",
        "description": vault.get("description") or "",
    }


def get_item(client: ConnectClient, args: Props) -> Props:
    vault, title, uuid = (plain(args.get(k)) for k in ("vault", "title", "uuid"))
    if not vault:
        raise ProviderError("getItem needs a vault")
    if not (title or uuid):
        raise ProviderError("getItem needs a title or a uuid")
    vault_id = client.vault_id(str(vault))
    item = client.item_by_title(vault_id, str(title)) if title else client.item(vault_id, str(uuid))
    return item_result(client, vault_id, item)


def item_result(client: ConnectClient, vault_id: str, item: Mapping[str, Any]) -> Props:
    """getItem's result for a Connect item: sensitive values secret, files with their content."""
    result: Props = {
        "id": f"vaults/{vault_id}/items/{item['id']}",
        "uuid": item["id"],
        "vault": vault_id,
        "title": item.get("title") or "",
        "category": str(item.get("category") or "").lower(),
    }
    urls = [u for u in item.get("urls") or [] if u.get("primary")] or list(item.get("urls") or [])
    if urls:
        result["url"] = urls[0].get("href") or ""
    if item.get("tags"):
        result["tags"] = list(item["tags"])
    # As the real data source documents its attributes: a field's purpose names username, password
    # and notes wherever the field is; other fields outside sections are named by their label; the
    # credential is the field with ID `credential` of an API Credential item. A later field wins.
    sensitive = {"password", "credential", "noteValue", "privateKey"}
    by_purpose = {"USERNAME": "username", "PASSWORD": "password", "NOTES": "noteValue"}
    by_label = {
        "username": "username",
        "password": "password",
        "server": "hostname",
        "hostname": "hostname",
        "database": "database",
        "port": "port",
        "type": "type",
        "private key": "privateKey",
        "public key": "publicKey",
    }
    category = str(item.get("category") or "")
    sections = {
        s["id"]: {"id": s["id"], "label": s.get("label") or "", "fields": [], "files": []}
        for s in item.get("sections") or []
    }
    for entry in item.get("fields") or []:
        section_id = (entry.get("section") or {}).get("id")
        value = entry.get("value") or ""
        if section_id in sections:
            sections[section_id]["fields"].append(
                {
                    "id": entry.get("id") or "",
                    "label": entry.get("label") or "",
                    "purpose": entry.get("purpose") or "",
                    "type": entry.get("type") or "",
                    "value": secret(value),
                }
            )
        names = []
        if entry.get("purpose") in by_purpose:
            names.append(by_purpose[entry["purpose"]])
        else:
            if not section_id and entry.get("label") in by_label:
                names.append(by_label[entry["label"]])
            if entry.get("id") == "credential" and category == "API_CREDENTIAL":
                names.append("credential")
        for name in names:
            result[name] = secret(value) if name in sensitive else value
    files = []
    for file in item.get("files") or []:
        content = client.file_content(vault_id, str(item["id"]), file)
        entry = {
            "id": file.get("id") or "",
            "name": file.get("name") or "",
            "content": secret(content.decode("utf-8", errors="replace")),
            "contentBase64": secret(base64.b64encode(content).decode()),
        }
        section_id = (file.get("section") or {}).get("id")
        if section_id and section_id in sections:
            sections[section_id]["files"].append(entry)
        else:
            files.append(entry)
    result["files"] = files
    result["sections"] = list(sections.values())
    return result


class Item(Resource):
    def __init__(self, connection: Connection):
        self.connection = connection

    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        inputs = {k: v for k, v in news.items() if v is not None}
        failures: list[tuple[str, str]] = []
        if "vault" not in inputs:
            failures.append(("vault", "vault is required"))
        inputs.setdefault("category", "login")
        category = inputs["category"]
        if not has_unknown(category) and str(plain(category)).lower() not in ITEM_CATEGORIES:
            failures.append(("category", f"category must be one of {', '.join(ITEM_CATEGORIES)}"))
        sections = inputs.get("sections")
        if isinstance(sections, list):
            checked = []
            for section in sections:
                if isinstance(section, dict) and isinstance(section.get("fields"), list):
                    fields = [
                        {"type": "STRING", **f} if isinstance(f, dict) and f.get("type") is None else f
                        for f in section["fields"]
                    ]
                    section = {**section, "fields": fields}
                checked.append(section)
            inputs["sections"] = checked
        return inputs, failures

    def diff(self, old_inputs: Props, news: Props, olds: Props) -> Diff:
        return diff_inputs(old_inputs, news, lambda key: key in ("vault", "category"))

    def create(self, inputs: Props, preview: bool) -> Created:
        if preview:
            return Created("", {**inputs, "uuid": UNKNOWN, "id": UNKNOWN})
        client = self.connection.get()
        vault_id = client.vault_id(str(plain(inputs["vault"])))
        try:
            created = client.request("POST", f"/v1/vaults/{vault_id}/items", item_body(inputs, vault_id))
        except ProviderError as error:
            raise ProviderError(f"1Password item create error: {error}") from None
        outputs = item_outputs(inputs, created)
        return Created(str(outputs["id"]), outputs)

    def update(self, id_: str, olds: Props, news: Props, preview: bool) -> Props:
        if preview:
            return {**news, "uuid": olds.get("uuid", UNKNOWN), "id": olds.get("id", id_)}
        client = self.connection.get()
        vault_id, item_id = _ids(id_, olds)
        body = {**item_body(news, vault_id, olds), "id": item_id}
        try:
            answer = client.request("PUT", f"/v1/vaults/{vault_id}/items/{item_id}", body)
            # Connect answers with the version before the write: read until the write shows.
            stored = client.item(vault_id, item_id)
            for _ in range(20):
                if int(stored.get("version") or 0) > int(answer.get("version") or 0):
                    break
                time.sleep(0.1)
                stored = client.item(vault_id, item_id)
        except ProviderError as error:
            raise ProviderError(f"1Password item update error (item {item_id}, vault {vault_id}): {error}") from None
        return item_outputs(news, stored)

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props, Props]:
        client = self.connection.get()
        vault_id, item_id = _ids(id_, state)
        try:
            client.item(vault_id, item_id)
        except ConnectError as error:
            if error.status == 404:
                return "", {}, {}
            raise ProviderError(f"1Password item read error (item {item_id}, vault {vault_id}): {error}") from None
        return id_, state, inputs

    def delete(self, id_: str, state: Props) -> None:
        client = self.connection.get()
        vault_id, item_id = _ids(id_, state)
        try:
            client.request("DELETE", f"/v1/vaults/{vault_id}/items/{item_id}")
        except ProviderError as error:
            raise ProviderError(f"1Password item delete error (item {item_id}, vault {vault_id}): {error}") from None


def _ids(id_: str, state: Mapping[str, Any]) -> tuple[str, str]:
    """(vault id, item id) of an Item: from its ID `vaults/V/items/I`, else from the state."""
    parts = id_.split("/")
    if len(parts) == 4 and parts[0] == "vaults" and parts[2] == "items":
        return parts[1], parts[3]
    return str(plain(state.get("vault"))), str(plain(state.get("uuid")))


# --- the plugins -----------------------------------------------------------------------------


@dataclass
class Plugin:
    name: str
    resources: dict[str, Resource]
    invokes: dict[str, Callable[[Props], Props]] = field(default_factory=dict)
    connection: Connection | None = None


def make_plugin(name: str) -> Plugin:
    if name == "random":
        return Plugin(
            name,
            {
                "random:index/randomPassword:RandomPassword": RandomPassword(),
                "random:index/randomBytes:RandomBytes": RandomBytes(),
            },
        )
    if name == "time":
        return Plugin(name, {"time:index/static:Static": Static()})
    if name == "onepassword":
        connection = Connection()
        return Plugin(
            name,
            {"onepassword:index/item:Item": Item(connection)},
            {
                "onepassword:index/getVault:getVault": lambda args: get_vault(connection.get(), args),
                "onepassword:index/getItem:getItem": lambda args: get_item(connection.get(), args),
            },
            connection,
        )
    raise ValueError(f"no stand-in for provider {name!r} (there are: {', '.join(VERSIONS)})")


def _type_of(urn: str) -> str:
    """The type token of a URN: urn:pulumi:stack::project::[parent$]type::name."""
    qualified = urn.split("::")[2] if urn.count("::") >= 3 else ""
    return qualified.rsplit("$", 1)[-1]


def _abort(context: grpc.ServicerContext, message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


class Servicer(provider_pb2_grpc.ResourceProviderServicer):
    """The ResourceProvider service over one Plugin."""

    def __init__(self, plugin: Plugin, env: Mapping[str, str] | None = None):
        self.plugin = plugin
        self.env = dict(os.environ if env is None else env)

    def _resource(self, urn: str, type_: str, context: grpc.ServicerContext) -> Resource:
        token = type_ or _type_of(urn)
        found = self.plugin.resources.get(token)
        if found is None:
            _abort(
                context,
                f"the {self.plugin.name} stand-in does not implement resource type {token!r}",
                grpc.StatusCode.UNIMPLEMENTED,
            )
        return found

    # Plugin-level --------------------------------------------------------------------------

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:  # noqa: N802
        return plugin_pb2.PluginInfo(version=VERSIONS[self.plugin.name])

    def Handshake(  # noqa: N802
        self, request: provider_pb2.ProviderHandshakeRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ProviderHandshakeResponse:
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def GetSchema(
        self, request: provider_pb2.GetSchemaRequest, context: grpc.ServicerContext
    ) -> provider_pb2.GetSchemaResponse:  # noqa: N802
        schema = {"name": self.plugin.name, "version": VERSIONS[self.plugin.name], "description": MARKER}
        return provider_pb2.GetSchemaResponse(schema=json.dumps(schema))

    def CheckConfig(
        self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> provider_pb2.CheckResponse:  # noqa: N802
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:  # noqa: N802
        old = from_struct(request.old_inputs) if request.HasField("old_inputs") else from_struct(request.olds)
        found = diff_inputs(old, from_struct(request.news), lambda _: False, ignore=frozenset({"version"}))
        return found.to_response()

    def Configure(
        self, request: provider_pb2.ConfigureRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ConfigureResponse:  # noqa: N802
        if self.plugin.connection is not None:
            self.plugin.connection.configure(from_struct(request.args), dict(request.variables), self.env)
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:  # noqa: N802
        return empty_pb2.Empty()

    def Invoke(self, request: provider_pb2.InvokeRequest, context: grpc.ServicerContext) -> provider_pb2.InvokeResponse:  # noqa: N802
        function = self.plugin.invokes.get(request.tok)
        if function is None:
            _abort(
                context,
                f"the {self.plugin.name} stand-in does not implement function {request.tok!r}",
                grpc.StatusCode.UNIMPLEMENTED,
            )
        try:
            result = function(from_struct(request.args))
        except ProviderError as error:
            _abort(context, str(error))
        return provider_pb2.InvokeResponse(**{"return": to_struct(result)})

    # Resources -----------------------------------------------------------------------------

    def Check(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> provider_pb2.CheckResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        inputs, failures = resource.check(from_struct(request.news))
        return provider_pb2.CheckResponse(
            inputs=to_struct(inputs),
            failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures],
        )

    def Diff(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        olds = from_struct(request.olds)
        old_inputs = from_struct(request.old_inputs) if request.HasField("old_inputs") else olds
        return resource.diff(old_inputs, from_struct(request.news), olds).to_response()

    def Create(self, request: provider_pb2.CreateRequest, context: grpc.ServicerContext) -> provider_pb2.CreateResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            created = resource.create(from_struct(request.properties), request.preview)
        except ProviderError as error:
            _abort(context, str(error))
        return provider_pb2.CreateResponse(id=created.id, properties=to_struct(created.outputs))

    def Read(self, request: provider_pb2.ReadRequest, context: grpc.ServicerContext) -> provider_pb2.ReadResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            id_, state, inputs = resource.read(request.id, from_struct(request.properties), from_struct(request.inputs))
        except ProviderError as error:
            _abort(context, str(error))
        return provider_pb2.ReadResponse(id=id_, properties=to_struct(state), inputs=to_struct(inputs))

    def Update(self, request: provider_pb2.UpdateRequest, context: grpc.ServicerContext) -> provider_pb2.UpdateResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            outputs = resource.update(request.id, from_struct(request.olds), from_struct(request.news), request.preview)
        except ProviderError as error:
            _abort(context, str(error))
        return provider_pb2.UpdateResponse(properties=to_struct(outputs))

    def Delete(self, request: provider_pb2.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            resource.delete(request.id, from_struct(request.properties))
        except ProviderError as error:
            _abort(context, str(error))
        return empty_pb2.Empty()


def serve(name: str) -> None:
    """Serve the stand-in `name` on 127.0.0.1 and print its port on stdout (the plugin handshake),
    until the engine stops the process."""
    plugin = make_plugin(name)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(Servicer(plugin), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(
        f"pulumi-resource-{name} {VERSIONS[name]}: {MARKER} (e2e/standin_providers.py), not the real "
        "provider; it implements only what cluster-secrets uses",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1)


# --- installing them into the suite's PULUMI_HOME ---------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def plugins_dir() -> Path:
    cache = os.environ.get("CLUSTER_SECRETS_E2E_CACHE") or str(Path.home() / ".cache" / "cluster-secrets-e2e")
    return Path(cache) / "pulumi-home" / "plugins"


def plugin_path(name: str, plugins: Path | None = None) -> Path:
    return (plugins or plugins_dir()) / f"resource-{name}-v{VERSIONS[name]}" / f"pulumi-resource-{name}"


def plugin_script(name: str, repo: Path = REPO) -> str:
    python = repo / ".venv" / "bin" / "python"  # the venv's interpreter, not the file it links to
    return (
        "#!/bin/sh\n"
        f"# {MARKER}: pulumi-resource-{name} v{VERSIONS[name]} is NOT the real provider.\n"
        f"# Installed by `python -m e2e.standin_providers install` from {repo}.\n"
        f"PYTHONPATH='{repo}'\n"
        "export PYTHONPATH\n"
        f"exec '{python}' -m e2e.standin_providers serve {name} \"$@\"\n"
    )


def _is_standin(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")[:2000]
    except OSError:
        return False


def install(plugins: Path | None = None, repo: Path = REPO) -> list[str]:
    """Write the three plugin scripts (idempotent); refuse to overwrite anything that is not ours."""
    done = []
    for name in VERSIONS:
        path = plugin_path(name, plugins)
        script = plugin_script(name, repo)
        if path.exists() and not _is_standin(path):
            raise SystemExit(f"{path} exists and is not a stand-in (a real plugin?): left alone")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent.with_name(path.parent.name + ".partial")
        if partial.exists():
            partial.unlink()  # the engine skips a plugin directory with a .partial marker
        if not path.exists() or path.read_text() != script:
            path.write_text(script)
            done.append(f"installed {path}")
        else:
            done.append(f"up to date {path}")
        path.chmod(0o755)
    return done


def uninstall(plugins: Path | None = None) -> list[str]:
    done = []
    for name in VERSIONS:
        path = plugin_path(name, plugins)
        if not path.exists():
            continue
        if not _is_standin(path):
            done.append(f"left {path} alone: not a stand-in")
            continue
        path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        done.append(f"removed {path}")
    return done


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"] and len(args) >= 2:
        if args[1] not in VERSIONS:
            print(f"no stand-in named {args[1]!r} (there are: {', '.join(VERSIONS)})", file=sys.stderr)
            return 2
        serve(args[1])  # the engine's address and flags after the name are not needed
        return 0
    parser = argparse.ArgumentParser(prog="python -m e2e.standin_providers", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("install", "uninstall"))
    parser.add_argument("--uninstall", action="store_true", help="with install: remove the stand-ins instead")
    options = parser.parse_args(args)
    lines = uninstall() if options.command == "uninstall" or options.uninstall else install()
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

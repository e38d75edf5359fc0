"""A 1Password Connect stand-in: the one fake of the end-to-end suite.

A small threaded HTTP server holding vaults and items in memory, speaking the parts of the Connect
REST API that pulumi-onepassword (terraform-provider-onepassword through connect-sdk-go) and ESO's
onepassword provider call. Written from 1Password's published API reference,
https://developer.1password.com/docs/connect/api-reference (API specification 1.8.1), and checked
against the calls connect-sdk-go v1.5.3 makes (../shared/e2e-notes/control-plane.md, section 5).

Connect is eventually consistent: a write goes to 1Password and reaches the Connect server's local
database later (terraform-provider-onepassword v2.2.1, internal/onepassword/connect/connect_client.go:
"The sync service needs time to sync changes from the remote service to the local database", and its
Create/Update/Delete poll until a read shows the write). So here every write, the suite's own edits
included, is seen by a client only `sync_delay` seconds after it was made; each client (each token)
has a delay of its own, as each Connect server syncs its own database: Pulumi's Connect and the one
in the cluster that ESO reads are two servers in the reference setup.

What it does not do: encryption, the activity/health/metrics routes, PATCH, tags beyond the filter,
or any 1Password account logic. Tests make it fail on demand (`fail_with`, `go_down`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The version header tells connect-sdk-go which features exist: without it the SDK assumes 1.2.0
# and refuses the file routes (connect-sdk-go connect/version.go). 1.8.1 is the documented spec.
CONNECT_VERSION = "1.8.1"
VERSION_HEADER = "1Password-Connect-Version"
DEFAULT_HOST = "127.0.0.2"
DEFAULT_PORT = 8080
UNAUTHENTICATED = "unauthenticated"  # the client name of requests without a known token
# Seconds until a client sees a write: within the provider's own wait after a write (ten polls with
# backoff, about 3 seconds: connect_client.go `wait`), which fails the write beyond it.
DEFAULT_SYNC_DELAY = 2.0

# Connect IDs: 26 lowercase letters and digits (connect-sdk-go and ESO treat anything else as a title).
_ID_ALPHABET = string.ascii_lowercase + string.digits
ID_PATTERN = re.compile(r"^[a-z0-9]{26}$")
# SCIM-style filters of the reference: `title eq "X"` on items, `name eq "X"` on vaults. connect-sdk-go
# sends `title eq` for vaults too, so both attributes are accepted there.
_FILTER = re.compile(r'^\s*(title|name|tag)\s+eq\s+"(.*)"\s*$')

# Route templates: requests are counted by (method, template), never by concrete IDs.
_ROUTES = [
    (re.compile(r"^/v1/vaults$"), "/v1/vaults"),
    (re.compile(r"^/v1/vaults/([^/]+)$"), "/v1/vaults/{vault}"),
    (re.compile(r"^/v1/vaults/([^/]+)/items$"), "/v1/vaults/{vault}/items"),
    (re.compile(r"^/v1/vaults/([^/]+)/items/([^/]+)$"), "/v1/vaults/{vault}/items/{item}"),
    (re.compile(r"^/v1/vaults/([^/]+)/items/([^/]+)/files$"), "/v1/vaults/{vault}/items/{item}/files"),
    (re.compile(r"^/v1/vaults/([^/]+)/items/([^/]+)/files/([^/]+)$"), "/v1/vaults/{vault}/items/{item}/files/{file}"),
    (
        re.compile(r"^/v1/vaults/([^/]+)/items/([^/]+)/files/([^/]+)/content$"),
        "/v1/vaults/{vault}/items/{item}/files/{file}/content",
    ),
]


def new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def route_of(path: str) -> tuple[str, list[str]] | None:
    """The route template a path matches and its parameters, or None."""
    for pattern, template in _ROUTES:
        match = pattern.match(path)
        if match:
            return template, list(match.groups())
    return None


class ApiError(Exception):
    """An error answer: status and a message that never carries a secret."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Failure:
    status: int
    methods: frozenset[str] | None  # None: every method
    remaining: int | None  # None: until recover()


class ConnectStandIn:
    """In-memory Connect. Use as a context manager, or start()/stop().

    `tokens` maps each bearer token it accepts to a client name (the suite gives Pulumi and each
    cluster's ESO their own), so that requests are counted per client. Every answer, errors
    included, carries the version header.
    """

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        sync_delay: float = DEFAULT_SYNC_DELAY,
    ):
        self.tokens = dict(tokens or {})
        self.host, self.port = host, port
        self.sync_delay = sync_delay  # every client's, unless set_sync_delay gave it its own
        self._client_delays: dict[str, float] = {}
        self._synced_up_to: dict[str, float] = {}  # client -> what it had synced when its delay last grew
        self._lock = threading.Lock()
        self._vaults: dict[str, dict[str, Any]] = {}  # id -> vault
        # vault id -> item id -> the item's writes, oldest first: (when, the item then, or None once deleted)
        self._writes: dict[str, dict[str, list[tuple[float, dict[str, Any] | None]]]] = {}
        self._files: dict[str, bytes] = {}  # file id -> content
        self.counts: Counter[tuple[str, str, str]] = Counter()  # (client, method, route)
        self.log: list[tuple[str, str, str, int]] = []  # (client, method, route, status), in order
        self._failure: _Failure | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ConnectStandIn:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        if self.port == 0:
            self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="connect-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ConnectStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Faults ------------------------------------------------------------------------------------

    def fail_with(self, status: int, methods: Iterable[str] | None = None, times: int | None = None) -> None:
        """Answer every request (or those of `methods`) with `status`, `times` times or until recover()."""
        self.recover()
        self._failure = _Failure(status, frozenset(m.upper() for m in methods) if methods else None, times)

    def go_down(self) -> None:
        """Close the listening socket: clients get connection refused, as with a Connect that is down."""
        self.stop()

    def recover(self) -> None:
        """Back to normal: no injected failure, and listening again if it was down."""
        self._failure = None
        if self._server is None:
            self.start()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def set_sync_delay(self, seconds: float, client: str | None = None) -> None:
        """How long until `client` (every client, without one) sees a write. A Connect that falls
        behind keeps what it had synced: a longer delay holds back later writes, it never brings
        back an item the client had seen deleted."""
        if client is None:
            self.sync_delay = seconds
            self._client_delays.clear()
            self._synced_up_to.clear()
        else:
            self._synced_up_to[client] = time.monotonic() - self._client_delays.get(client, self.sync_delay)
            self._client_delays[client] = seconds

    def synced(self) -> None:
        """Wait until every client sees every write made so far."""
        delays = [self.sync_delay, *self._client_delays.values()]
        with self._lock:
            last = max((w[-1][0] for items in self._writes.values() for w in items.values()), default=0.0)
        time.sleep(max(0.0, last + max(delays) - time.monotonic()))

    # The item store ----------------------------------------------------------------------------

    def _write(self, vault_id: str, item_id: str, item: dict[str, Any] | None, at: float | None = None) -> None:
        self._writes[vault_id].setdefault(item_id, []).append((time.monotonic() if at is None else at, item))
        self._vaults[vault_id]["items"] = len(self._latest(vault_id))

    def _latest(self, vault_id: str) -> dict[str, dict[str, Any]]:
        """The vault as 1Password holds it, every write included."""
        latest = {item_id: writes[-1][1] for item_id, writes in self._writes[vault_id].items()}
        return {item_id: item for item_id, item in latest.items() if item is not None}

    def _visible(self, vault_id: str, client: str) -> dict[str, dict[str, Any]]:
        """The vault as `client`'s Connect serves it: the writes older than its sync delay."""
        seen_before = time.monotonic() - self._client_delays.get(client, self.sync_delay)
        seen_before = max(seen_before, self._synced_up_to.get(client, seen_before))
        visible = {}
        for item_id, writes in self._writes[vault_id].items():
            synced = [item for at, item in writes if at <= seen_before]
            if synced and synced[-1] is not None:
                visible[item_id] = synced[-1]
        return visible

    # Data --------------------------------------------------------------------------------------

    def add_vault(self, name: str) -> str:
        with self._lock:
            vault_id = new_id()
            now = _now()
            self._vaults[vault_id] = {
                "id": vault_id,
                "name": name,
                "description": "",
                "attributeVersion": 1,
                "contentVersion": 1,
                "items": 0,
                "type": "USER_CREATED",
                "createdAt": now,
                "updatedAt": now,
            }
            self._writes[vault_id] = {}
            return vault_id

    def vault_id(self, name: str) -> str:
        matches = [v["id"] for v in self._vaults.values() if v["name"] == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} vaults named {name!r}")
        return matches[0]

    def add_item(
        self,
        vault: str,
        title: str,
        category: str,
        fields: list[dict[str, Any]] | None = None,
        files: dict[str, bytes] | None = None,
        sections: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Put an item straight into a vault (by name), as if made in the 1Password app before the
        suite started: every client sees it at once."""
        vault_id = self.vault_id(vault)
        item: dict[str, Any] = {"title": title, "category": category, "vault": {"id": vault_id}}
        item["fields"] = fields or []
        if sections:
            item["sections"] = sections
        with self._lock:
            stored = self._store_new(vault_id, item, at=float("-inf"))
            for name, content in (files or {}).items():
                file_id = new_id()
                self._files[file_id] = content
                stored.setdefault("files", []).append(
                    {
                        "id": file_id,
                        "name": name,
                        "size": len(content),
                        "content_path": f"/v1/vaults/{vault_id}/items/{stored['id']}/files/{file_id}/content",
                    }
                )
            return json.loads(json.dumps(stored))

    def file_content(self, vault: str, title: str) -> bytes:
        """The content of the one file attached to an item."""
        (file,) = self.item(vault, title)["files"]
        with self._lock:
            return self._files[file["id"]]

    def edit_item(self, vault: str, title: str, fields: Mapping[str, str], new_title: str | None = None) -> None:
        """Change field values (by label) of an item, and its title if given, as a person does in the
        1Password app: a new version, which clients see after their sync delay."""
        item = self.item(vault, title)
        item["title"] = new_title or item["title"]
        for field in item.get("fields", []):
            if field["label"] in fields:
                field["value"] = fields[field["label"]]
        with self._lock:
            item["version"] += 1
            self._write(item["vault"]["id"], item["id"], item)

    def delete_item(self, vault: str, title: str) -> None:
        """Delete an item, as a person does in the 1Password app (clients see it after their delay)."""
        item = self.item(vault, title)
        with self._lock:
            self._write(item["vault"]["id"], item["id"], None)

    def items(self, vault: str) -> list[dict[str, Any]]:
        """Deep copies of a vault's items (by vault name), as 1Password holds them."""
        with self._lock:
            return json.loads(json.dumps(list(self._latest(self.vault_id(vault)).values())))

    def item(self, vault: str, title: str) -> dict[str, Any]:
        matches = [i for i in self.items(vault) if i["title"] == title]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} items titled {title!r} in vault {vault!r}")
        return matches[0]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    def counted(self, client: str | None = None) -> dict[str, int]:
        """Requests so far (of one client, or all) as {"GET /v1/vaults": n, ...}, for reports."""
        totals: Counter[str] = Counter()
        with self._lock:
            for (who, method, route), n in self.counts.items():
                if client is None or who == client:
                    totals[f"{method} {route}"] += n
        return dict(sorted(totals.items()))

    # Request handling (called from the server's threads) ----------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        """One request: (status, content type, body). Counts it by route and applies failures."""
        parts = urlsplit(target)
        found = route_of(parts.path)
        route = found[0] if found else "other"
        auth = headers.get("authorization", "")
        client = (
            self.tokens.get(auth.removeprefix("Bearer "), UNAUTHENTICATED)
            if auth.startswith("Bearer ")
            else UNAUTHENTICATED
        )
        try:
            status, content_type, payload = self._answer(method, parts.path, parts.query, client, body)
        except ApiError as error:
            status, content_type = error.status, "application/json"
            payload = json.dumps({"status": error.status, "message": error.message}).encode()
        with self._lock:
            self.counts[(client, method, route)] += 1
            self.log.append((client, method, route, status))
        return status, content_type, payload

    def _answer(self, method: str, path: str, query: str, client: str, body: bytes) -> tuple[int, str, bytes]:
        with self._lock:
            failure = self._failure
            if failure and (failure.methods is None or method in failure.methods):
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failure = None
                raise ApiError(failure.status, "Injected failure (stand-in)")
        if client == UNAUTHENTICATED:
            raise ApiError(401, "Invalid bearer token")
        found = route_of(path)
        if found is None:
            raise ApiError(404, "Not found")
        template, params = found
        args = parse_qs(query)
        with self._lock:
            result = self._dispatch(method, template, params, args, body, client)
        if isinstance(result, bytes):
            return 200, "application/octet-stream", result
        if result is None:
            return 204, "", b""
        return 200, "application/json", json.dumps(result).encode()

    def _dispatch(
        self, method: str, template: str, params: list[str], args: dict[str, list[str]], body: bytes, client: str
    ) -> Any:
        if template == "/v1/vaults" and method == "GET":
            vaults = list(self._vaults.values())
            wanted = _filter(args, {"name", "title"})
            return [v for v in vaults if wanted is None or v["name"] == wanted]
        vault = self._vault(params[0])
        if template == "/v1/vaults/{vault}" and method == "GET":
            return vault
        items = self._visible(vault["id"], client)
        if template == "/v1/vaults/{vault}/items":
            if method == "GET":
                wanted = _filter(args, {"title"})
                return [_summary(i) for i in items.values() if wanted is None or i["title"] == wanted]
            if method == "POST":
                new = _same_vault(_json_body(body), vault["id"])
                return self._store_new(vault["id"], new)
            raise ApiError(405, "Method not allowed")
        item = items.get(params[1])
        if item is None:
            raise ApiError(404, "Item not found")
        if template == "/v1/vaults/{vault}/items/{item}":
            if method == "GET":
                return item
            if method == "PUT":
                return self._replace(vault["id"], item["id"], _same_vault(_json_body(body), vault["id"]))
            if method == "DELETE":
                self._write(vault["id"], item["id"], None)
                return None
            raise ApiError(405, "Method not allowed")
        if method != "GET":
            raise ApiError(405, "Method not allowed")
        inline = (args.get("inline_files") or ["false"])[0] == "true"
        if template.endswith("/files"):
            return [self._file_view(f, inline) for f in item.get("files", [])]
        file = next((f for f in item.get("files", []) if f["id"] == params[2]), None)
        if file is None:
            raise ApiError(404, "File not found")
        if template.endswith("/content"):
            return self._files[file["id"]]
        return self._file_view(file, inline)

    def _vault(self, vault_id: str) -> dict[str, Any]:
        if not ID_PATTERN.match(vault_id):
            raise ApiError(400, "Invalid vault UUID")
        vault = self._vaults.get(vault_id)
        if vault is None:
            raise ApiError(404, "Vault not found")
        return vault

    def _store_new(self, vault_id: str, item: dict[str, Any], at: float | None = None) -> dict[str, Any]:
        """A created item: new ID, version 1, IDs for sections and fields, generated values."""
        if not item.get("title") or not item.get("category"):
            raise ApiError(400, "An item needs a title and a category")
        now = _now()
        item = {**item, "id": new_id(), "version": 1, "createdAt": now, "updatedAt": now}
        _complete(item)
        self._write(vault_id, item["id"], item, at)
        return item

    def _replace(self, vault_id: str, item_id: str, new: dict[str, Any]) -> dict[str, Any]:
        """PUT replaces the whole item, its latest version in 1Password (the writer may not see that
        one yet). terraform-provider-onepassword v2.2.1 (connect_client.go UpdateItem) notes that
        Connect's answer carries the version before the update, and then polls GET until it sees that
        version plus one: this does the same."""
        old = self._latest(vault_id).get(item_id)
        if old is None:
            raise ApiError(404, "Item not found")
        if new.get("id") not in (None, old["id"]):
            raise ApiError(400, "The item's ID does not match the path")
        stored = {
            **new,
            "id": old["id"],
            "vault": {"id": vault_id},
            "version": old["version"] + 1,
            "createdAt": old["createdAt"],
            "updatedAt": _now(),
        }
        if "files" in old:
            stored["files"] = old["files"]  # files are not replaced through PUT
        _complete(stored)
        self._write(vault_id, item_id, stored)
        return {**stored, "version": old["version"]}

    def _file_view(self, file: dict[str, Any], inline: bool) -> dict[str, Any]:
        if not inline:
            return file
        return {**file, "content": base64.b64encode(self._files[file["id"]]).decode()}


def _same_vault(item: dict[str, Any], vault_id: str) -> dict[str, Any]:
    """A written item names the vault of its path, or none (then it gets that one). Connect refuses
    the others; connect-sdk-go takes a PUT's path from the item's own vault.id (connect/client.go)."""
    if (item.get("vault") or {}).get("id") not in (None, vault_id):
        raise ApiError(400, "The item's vault does not match the path")
    return {**item, "vault": {"id": vault_id}}


def _filter(args: dict[str, list[str]], attributes: set[str]) -> str | None:
    """The value of a `<attribute> eq "<value>"` filter, None without one; 400 for anything else."""
    if "filter" not in args:
        return None
    match = _FILTER.match(args["filter"][0])
    if not match or match.group(1) not in attributes:
        raise ApiError(400, "Unsupported filter")
    return match.group(2)


def _summary(item: dict[str, Any]) -> dict[str, Any]:
    """List answers leave out sections, fields and files (the reference says so); clients GET each."""
    return {k: v for k, v in item.items() if k not in ("sections", "fields", "files")}


def _complete(item: dict[str, Any]) -> None:
    """What Connect fills in on a write: section and field IDs, and values asked to be generated."""
    for section in item.get("sections") or []:
        section.setdefault("id", new_id())
        if not section["id"]:
            section["id"] = new_id()
    for field in item.get("fields") or []:
        if not field.get("id"):
            field["id"] = new_id()
        if field.get("generate") and not field.get("value"):
            length = ((field.get("recipe") or {}).get("length")) or 32
            field["value"] = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))
        field.pop("generate", None)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"null")
    except json.JSONDecodeError:
        raise ApiError(400, "The body is not JSON") from None
    if not isinstance(document, dict):
        raise ApiError(400, "The body is not a JSON object")
    return document


def _handler_for(standin: ConnectStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, content_type, payload = standin.handle(self.command, self.path, headers, body)
            self.send_response(status)
            self.send_header(VERSION_HEADER, CONNECT_VERSION)
            if content_type:
                self.send_header("Content-Type", content_type)
            if status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: request lines name item IDs only, but the suite prints its own counts

    return Handler


# The reference setup's 1Password, as the e2e stacks expect it ---------------------------------------


def credentials_file(label: str) -> bytes:
    """A made-up 1password-credentials.json with the five fields the program checks (no real key)."""
    document = {
        "verifier": {"salt": f"e2e-salt-{label}", "localHash": f"e2e-hash-{label}"},
        "encCredentials": {"kid": "e2e", "enc": "A256GCM", "cty": "b5+jwk+json", "iv": "e2e", "data": "e2e"},
        "version": "2",
        "deviceUuid": new_id(),
        "uniqueKey": {"alg": "A256GCM", "ext": True, "k": "e2e", "key_ops": ["decrypt", "encrypt"], "kty": "oct"},
    }
    return json.dumps(document).encode()


def seed(
    standin: ConnectStandIn,
    servers: Mapping[str, tuple[str, str]],
    init_vault: str = "InitHomeLab",
    working_vault: str = "HomeLab",
) -> dict[str, str]:
    """The init vault with a credentials item and a token item per Connect server, and an empty working
    vault. `servers` maps a client name to the titles of its (credentials item, token item). Each gets
    a fresh token, which the stand-in accepts under that name; returns name -> token."""
    standin.add_vault(init_vault)
    standin.add_vault(working_vault)
    tokens = {}
    for name, (credentials_title, token_title) in servers.items():
        token = tokens[name] = secrets.token_urlsafe(24)
        standin.tokens[token] = name
        standin.add_item(
            init_vault,
            credentials_title,
            "DOCUMENT",
            files={"1password-credentials.json": credentials_file(credentials_title)},
        )
        standin.add_item(
            init_vault,
            token_title,
            "PASSWORD",
            fields=[
                {"id": "password", "type": "CONCEALED", "purpose": "PASSWORD", "label": "password", "value": token}
            ],
        )
    return tokens

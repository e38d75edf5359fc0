"""The 1Password Connect stand-in of the e2e suite (e2e/connect_standin.py), over real HTTP on loopback.

The requests are shaped as connect-sdk-go v1.5.3 sends them (the client of both pulumi-onepassword and
ESO), so a stand-in that would fail those clients fails here first. Writes sync at once here
(`sync_delay=0`) except in the tests of the sync delay.
"""

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.connect_standin import CONNECT_VERSION, ID_PATTERN, VERSION_HEADER, ConnectStandIn, seed

# connect-sdk-go builds filters with url.QueryEscape, which turns spaces into '+'.
HOMELAB_FILTER = "filter=title+eq+%22HomeLab%22"


TOKENS: dict[str, str] = {}  # client name -> token, of the running stand-in


@pytest.fixture
def standin() -> Iterator[ConnectStandIn]:
    with ConnectStandIn(host="127.0.0.1", port=0, sync_delay=0) as server:
        TOKENS.clear()
        TOKENS.update(
            seed(
                server,
                {
                    "homelab": ("1password-credentials", "onepassword-connect-token"),
                    "homelab-2": ("1password-credentials-homelab-2", "onepassword-connect-token-homelab-2"),
                },
            )
        )
        yield server


def call(
    standin: ConnectStandIn, method: str, path: str, body: Any = None, client: str | None = "homelab"
) -> tuple[int, dict[str, str], bytes]:
    token = TOKENS.get(client, client) if client else None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(standin.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(standin: ConnectStandIn, path: str) -> Any:
    status, _, body = call(standin, "GET", path)
    assert status == 200, body
    return json.loads(body)


def vault_id(standin: ConnectStandIn, name: str) -> str:
    (vault,) = get_json(standin, f"/v1/vaults?filter=title+eq+%22{name}%22")
    return str(vault["id"])


def test_every_answer_needs_a_known_bearer_token_and_carries_the_version_header(standin: ConnectStandIn) -> None:
    for client in (None, "wrong"):
        status, headers, body = call(standin, "GET", "/v1/vaults", client=client)
        assert status == 401
        assert json.loads(body) == {"status": 401, "message": "Invalid bearer token"}
        assert headers[VERSION_HEADER] == CONNECT_VERSION
    assert TOKENS["homelab"] != TOKENS["homelab-2"]
    for client in TOKENS:
        status, headers, _ = call(standin, "GET", "/v1/vaults", client=client)
        assert (status, headers[VERSION_HEADER]) == (200, CONNECT_VERSION)


def test_vaults_are_found_by_title_as_connect_sdk_go_asks(standin: ConnectStandIn) -> None:
    assert sorted(v["name"] for v in get_json(standin, "/v1/vaults")) == ["HomeLab", "InitHomeLab"]
    (vault,) = get_json(standin, f"/v1/vaults?{HOMELAB_FILTER}")
    assert vault["name"] == "HomeLab" and ID_PATTERN.match(vault["id"])
    # The reference's own example filters vaults by name.
    assert get_json(standin, "/v1/vaults?filter=name+eq+%22HomeLab%22") == [vault]
    assert get_json(standin, "/v1/vaults?filter=title+eq+%22Nope%22") == []
    assert get_json(standin, f"/v1/vaults/{vault['id']}")["name"] == "HomeLab"
    status, _, body = call(standin, "GET", "/v1/vaults/" + "a" * 26)
    assert (status, json.loads(body)["status"]) == (404, 404)
    assert call(standin, "GET", "/v1/vaults?filter=description+eq+%22x%22")[0] == 400


def test_an_item_is_listed_as_a_summary_and_read_whole_by_id(standin: ConnectStandIn) -> None:
    init = vault_id(standin, "InitHomeLab")
    (summary,) = get_json(standin, f"/v1/vaults/{init}/items?filter=title+eq+%22onepassword-connect-token%22")
    assert "fields" not in summary and summary["vault"] == {"id": init}
    item = get_json(standin, f"/v1/vaults/{init}/items/{summary['id']}")
    (field,) = item["fields"]
    assert (field["purpose"], field["label"], field["value"]) == ("PASSWORD", "password", TOKENS["homelab"])
    assert len(get_json(standin, f"/v1/vaults/{init}/items")) == 4


def test_the_credentials_file_is_served_by_its_content_path(standin: ConnectStandIn) -> None:
    init = vault_id(standin, "InitHomeLab")
    (summary,) = get_json(standin, f"/v1/vaults/{init}/items?filter=title+eq+%221password-credentials%22")
    item = get_json(standin, f"/v1/vaults/{init}/items/{summary['id']}")
    (file,) = item["files"]
    assert file["name"] == "1password-credentials.json" and "content" not in file
    status, headers, content = call(standin, "GET", file["content_path"])
    assert status == 200 and headers[VERSION_HEADER] == CONNECT_VERSION
    assert set(json.loads(content)) >= {"verifier", "encCredentials", "version", "deviceUuid", "uniqueKey"}
    assert file["size"] == len(content)
    files_path = f"/v1/vaults/{init}/items/{item['id']}/files"
    assert get_json(standin, files_path) == [file]
    (inline,) = get_json(standin, files_path + "?inline_files=true")
    assert base64.b64decode(inline["content"]) == content
    assert get_json(standin, f"{files_path}/{file['id']}") == file
    assert call(standin, "GET", f"{files_path}/{'b' * 26}")[0] == 404


def test_create_update_delete_follow_the_versions_the_provider_waits_for(standin: ConnectStandIn) -> None:
    home = vault_id(standin, "HomeLab")
    new = {
        "title": "argocd-secret",
        "category": "SECURE_NOTE",
        "vault": {"id": home},
        "sections": [{"id": "s1", "label": "argocd-secret"}],
        "fields": [
            {"section": {"id": "s1"}, "type": "CONCEALED", "label": "admin.password", "value": "h1"},
            {"id": "password", "type": "CONCEALED", "purpose": "PASSWORD", "label": "password", "generate": True},
        ],
    }
    status, _, body = call(standin, "POST", f"/v1/vaults/{home}/items", new)
    created = json.loads(body)
    assert status == 200 and created["version"] == 1 and ID_PATTERN.match(created["id"])
    assert all(ID_PATTERN.match(f["id"]) or f["id"] == "password" for f in created["fields"])
    assert len(created["fields"][1]["value"]) == 32  # generated, as Connect does for `generate`
    item_path = f"/v1/vaults/{home}/items/{created['id']}"
    assert get_json(standin, item_path) == created

    changed = {**created, "fields": [{**created["fields"][0], "value": "h2"}]}
    status, _, body = call(standin, "PUT", item_path, changed)
    # The answer carries the version before the update; a read shows it plus one.
    assert status == 200 and json.loads(body)["version"] == 1
    stored = get_json(standin, item_path)
    assert stored["version"] == 2 and stored["fields"][0]["value"] == "h2"
    assert standin.item("HomeLab", "argocd-secret")["version"] == 2

    status, _, body = call(standin, "DELETE", item_path)
    assert (status, body) == (204, b"")
    assert call(standin, "GET", item_path)[0] == 404
    assert standin.items("HomeLab") == []


def test_writes_that_do_not_match_the_path_are_refused(standin: ConnectStandIn) -> None:
    home, init = vault_id(standin, "HomeLab"), vault_id(standin, "InitHomeLab")
    item = {"title": "x", "category": "LOGIN", "vault": {"id": init}}
    assert call(standin, "POST", f"/v1/vaults/{home}/items", item)[0] == 400
    assert call(standin, "POST", f"/v1/vaults/{home}/items", {"category": "LOGIN"})[0] == 400
    assert standin.items("HomeLab") == []
    # A PUT's body names the vault its path has (connect-sdk-go builds the path from item.vault.id);
    # a body naming another vault, as terraform-provider-onepassword sends for a vault given by name, is refused.
    status, _, body = call(standin, "POST", f"/v1/vaults/{home}/items", {**item, "vault": {"id": home}})
    created = json.loads(body)
    item_path = f"/v1/vaults/{home}/items/{created['id']}"
    for vault in (init, "HomeLab"):
        status, _, body = call(standin, "PUT", item_path, {**created, "title": "y", "vault": {"id": vault}})
        assert (status, json.loads(body)["message"]) == (400, "The item's vault does not match the path")
    assert standin.item("HomeLab", "x")["version"] == 1


def test_a_write_is_seen_after_each_clients_sync_delay(standin: ConnectStandIn) -> None:
    """connect_client.go (terraform-provider-onepassword v2.2.1): Connect's sync service "needs time to
    sync changes from the remote service to the local database"; Create polls for version 1, Update
    for the answered version plus one. Each client's Connect syncs on its own."""
    home = vault_id(standin, "HomeLab")
    standin.set_sync_delay(0.6)
    standin.set_sync_delay(1.2, client="homelab-2")
    by_title = f"/v1/vaults/{home}/items?filter=title+eq+%22x%22"
    status, _, body = call(standin, "POST", f"/v1/vaults/{home}/items", {"title": "x", "category": "LOGIN"})
    created = json.loads(body)
    item_path = f"/v1/vaults/{home}/items/{created['id']}"
    written = time.monotonic()
    assert call(standin, "GET", item_path)[0] == 404 and get_json(standin, by_title) == []
    assert standin.item("HomeLab", "x")["version"] == 1  # 1Password itself has it
    time.sleep(max(0.0, written + 0.7 - time.monotonic()))
    assert get_json(standin, item_path)["version"] == 1
    assert call(standin, "GET", item_path, client="homelab-2")[0] == 404
    standin.synced()
    assert call(standin, "GET", item_path, client="homelab-2")[0] == 200

    status, _, body = call(standin, "PUT", item_path, {**created, "title": "x", "tags": ["new"]})
    assert (status, json.loads(body)["version"]) == (200, 1)
    assert get_json(standin, item_path)["version"] == 1  # not synced yet: the old version
    standin.synced()
    assert get_json(standin, item_path)["version"] == 2

    # Edits and deletions made in the 1Password app sync the same way.
    standin.edit_item("InitHomeLab", "onepassword-connect-token", {"password": "rotated"}, new_title="renamed")
    init = vault_id(standin, "InitHomeLab")
    token_item = standin.item("InitHomeLab", "renamed")
    token_path = f"/v1/vaults/{init}/items/{token_item['id']}"
    assert get_json(standin, token_path)["fields"][0]["value"] == TOKENS["homelab"]
    standin.delete_item("HomeLab", "x")
    assert call(standin, "GET", item_path)[0] == 200 and standin.items("HomeLab") == []
    standin.synced()
    assert get_json(standin, token_path)["fields"][0]["value"] == "rotated"
    assert get_json(standin, token_path)["title"] == "renamed"
    assert call(standin, "GET", item_path)[0] == 404 and get_json(standin, by_title) == []


def test_a_connect_that_falls_behind_keeps_what_it_had_synced(standin: ConnectStandIn) -> None:
    home = vault_id(standin, "HomeLab")
    standin.set_sync_delay(0.2)
    _, _, body = call(standin, "POST", f"/v1/vaults/{home}/items", {"title": "old", "category": "LOGIN"})
    old_path = f"/v1/vaults/{home}/items/{json.loads(body)['id']}"
    time.sleep(0.6)
    standin.delete_item("HomeLab", "old")
    standin.synced()
    assert call(standin, "GET", old_path, client="homelab-2")[0] == 404
    # Behind from now on by less than the item lived: a view rewound by 0.5 s would show it again.
    standin.set_sync_delay(0.5, client="homelab-2")
    assert call(standin, "GET", old_path, client="homelab-2")[0] == 404
    _, _, body = call(standin, "POST", f"/v1/vaults/{home}/items", {"title": "new", "category": "LOGIN"})
    new_path = f"/v1/vaults/{home}/items/{json.loads(body)['id']}"
    time.sleep(0.3)
    assert call(standin, "GET", new_path)[0] == 200
    assert call(standin, "GET", new_path, client="homelab-2")[0] == 404  # a write after it is held back
    time.sleep(0.3)
    assert call(standin, "GET", new_path, client="homelab-2")[0] == 200


def test_requests_are_counted_by_client_and_route_template_not_by_id(standin: ConnectStandIn) -> None:
    init = vault_id(standin, "InitHomeLab")
    for _ in range(2):
        get_json(standin, f"/v1/vaults/{init}")
    call(standin, "GET", f"/v1/vaults/{init}/items", client="homelab-2")
    call(standin, "GET", "/v1/vaults", client="wrong")
    assert standin.counts[("homelab", "GET", "/v1/vaults/{vault}")] == 2
    assert standin.counted("homelab") == {"GET /v1/vaults": 1, "GET /v1/vaults/{vault}": 2}
    assert standin.counted("homelab-2") == {"GET /v1/vaults/{vault}/items": 1}
    assert standin.counted() == {"GET /v1/vaults": 2, "GET /v1/vaults/{vault}": 2, "GET /v1/vaults/{vault}/items": 1}
    assert standin.log[-1] == ("unauthenticated", "GET", "/v1/vaults", 401)
    standin.reset_counts()
    assert standin.counted() == {} and standin.log == []


def test_failures_on_demand_and_recovery(standin: ConnectStandIn) -> None:
    standin.fail_with(429)
    status, headers, body = call(standin, "GET", "/v1/vaults")
    assert (status, json.loads(body)["status"], headers["Retry-After"]) == (429, 429, "1")
    standin.recover()
    assert call(standin, "GET", "/v1/vaults")[0] == 200

    # Only the methods named fail, and only as many times as asked.
    home = vault_id(standin, "HomeLab")
    standin.fail_with(500, methods=["POST"], times=1)
    assert call(standin, "GET", "/v1/vaults")[0] == 200
    item = {"title": "x", "category": "LOGIN", "vault": {"id": home}}
    assert call(standin, "POST", f"/v1/vaults/{home}/items", item)[0] == 500
    assert call(standin, "POST", f"/v1/vaults/{home}/items", item)[0] == 200


def test_down_means_connection_refused_until_recovered(standin: ConnectStandIn) -> None:
    standin.go_down()
    assert not standin.is_up
    with pytest.raises(urllib.error.URLError) as refused:
        call(standin, "GET", "/v1/vaults")
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    standin.recover()
    assert standin.is_up and call(standin, "GET", "/v1/vaults")[0] == 200

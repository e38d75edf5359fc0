"""The tool's own 1Password reads (cluster_secrets/onepassword.py): Connect through the e2e suite's
Connect stand-in over loopback HTTP, the `op` CLI through a fake script that records its calls."""

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster_secrets.onepassword import ConnectApi, ItemSummary, OnePasswordError, OpCli, reader
from e2e.connect_standin import ConnectStandIn, seed

TOKEN_CANARY = "op-token-canary-never-printed"


@pytest.fixture
def connect() -> Iterator[tuple[ConnectStandIn, str]]:
    with ConnectStandIn(host="127.0.0.1", port=0, sync_delay=0) as standin:
        tokens = seed(standin, {"pulumi": ("1password-credentials", "onepassword-connect-token")})
        standin.add_item("HomeLab", "argocd-secret", "SECURE_NOTE")
        yield standin, tokens["pulumi"]


def test_connect_lists_a_vaults_items_by_id_and_title(connect: tuple[ConnectStandIn, str]) -> None:
    standin, token = connect
    api = ConnectApi(standin.url + "/", token)
    vault_id = api.vault_id("HomeLab")
    assert vault_id == standin.vault_id("HomeLab")
    (item,) = standin.items("HomeLab")
    assert api.items(vault_id) == [ItemSummary(item["id"], "argocd-secret")]
    assert standin.counted("pulumi") == {"GET /v1/vaults": 1, "GET /v1/vaults/{vault}/items": 1}


def test_connect_errors_name_the_request_never_the_token(connect: tuple[ConnectStandIn, str]) -> None:
    standin, token = connect
    with pytest.raises(OnePasswordError) as refused:
        ConnectApi(standin.url, TOKEN_CANARY).vault_id("HomeLab")
    assert str(refused.value) == f"Connect at {standin.url}: GET /v1/vaults: 401 Invalid bearer token"
    assert TOKEN_CANARY not in str(refused.value)
    with pytest.raises(OnePasswordError, match="expected one 1Password vault named 'Nope', found 0"):
        ConnectApi(standin.url, token).vault_id("Nope")
    standin.go_down()
    with pytest.raises(OnePasswordError, match=f"cannot reach Connect at {standin.url}"):
        ConnectApi(standin.url, token).items("x")


def answering_op(tmp_path: Path, answers: dict[str, object]) -> Path:
    """An `op` that answers JSON per subcommand ("vault get", "item list") and logs argv and its token."""
    script = tmp_path / "op"
    log = tmp_path / "op-calls.jsonl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"answers = {json.dumps(answers)!r}\n"
        f"open({str(log)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], "
        "'token': os.environ.get('OP_SERVICE_ACCOUNT_TOKEN'), 'format': os.environ.get('OP_FORMAT')}) + '\\n')\n"
        "key = ' '.join(sys.argv[1:3])\n"
        "if key not in json.loads(answers):\n"
        "    print('[ERROR] 2026/12/06 unknown command', file=sys.stderr); sys.exit(1)\n"
        "print(json.dumps(json.loads(answers)[key]))\n"
    )
    script.chmod(0o755)
    return script


def test_op_gets_the_token_in_its_environment_never_on_its_command_line(tmp_path: Path) -> None:
    op = answering_op(
        tmp_path, {"vault get": {"id": "v1", "name": "HomeLab"}, "item list": [{"id": "i1", "title": "t"}]}
    )
    cli = reader({"onepassword:opCliPath": str(op)}, {"OP_SERVICE_ACCOUNT_TOKEN": TOKEN_CANARY})
    assert isinstance(cli, OpCli)
    assert cli.vault_id("HomeLab") == "v1" and cli.items("v1") == [ItemSummary("i1", "t")]
    calls = [json.loads(line) for line in (tmp_path / "op-calls.jsonl").read_text().splitlines()]
    assert [c["argv"] for c in calls] == [
        ["vault", "get", "HomeLab", "--format", "json"],
        ["item", "list", "--vault", "v1", "--format", "json"],
    ]
    assert all(c["token"] == TOKEN_CANARY and TOKEN_CANARY not in c["argv"] for c in calls)


def test_op_failures_are_clear(tmp_path: Path) -> None:
    op = answering_op(tmp_path, {})
    with pytest.raises(OnePasswordError, match=r"`op vault get HomeLab` failed: \[ERROR\] 2026/12/06 unknown command"):
        OpCli(str(op), TOKEN_CANARY, "", {}).vault_id("HomeLab")
    with pytest.raises(OnePasswordError, match="cannot run the 1Password CLI"):
        OpCli(str(tmp_path / "absent"), TOKEN_CANARY, "", {}).items("v1")


def test_the_reader_is_chosen_as_the_provider_chooses_its_client() -> None:
    connect = {"OP_CONNECT_HOST": "http://connect:8080", "OP_CONNECT_TOKEN": "t"}
    assert isinstance(reader({}, connect), ConnectApi)
    # Config over the environment; a service account or an account means the op CLI.
    assert reader({"onepassword:url": "http://mine:8080"}, connect).url == "http://mine:8080"  # type: ignore[attr-defined]
    assert isinstance(reader({}, {**connect, "OP_SERVICE_ACCOUNT_TOKEN": "s"}), OpCli)
    assert isinstance(reader({"onepassword:account": "me.1password.com"}, {}), OpCli)
    with pytest.raises(OnePasswordError, match="no 1Password credentials: set OP_SERVICE_ACCOUNT_TOKEN"):
        reader({}, {"OP_CONNECT_HOST": "http://connect:8080"})

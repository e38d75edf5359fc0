"""`init STACK` (cluster_secrets/init.py): the stack file it writes, planned as `plan --new-stack` plans
it, and `--create-1password` against a fake `op` (tests/fake_op.py) on PATH.

No real 1Password account ran any of this: the fake answers as the CLI's reference describes.
"""

import argparse
import dataclasses
import json
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cluster_secrets import converge, deploy, desired, init
from cluster_secrets.init import InitOptions
from tests import fake_op
from tests.conftest import ROOT, copy_program, fake_executable

FAKE = Path(__file__).with_name("fake_op.py")
STACK = "mycluster"
FLAGS = InitOptions(kube_context="kind-mycluster", init_vault="InitMine", working_vault="Mine")
SERVER = f"cluster-secrets-{STACK}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_program(tmp_path / "project", ("homelab", "homelab-2"))


class FakeOp:
    """The fake `op` on a PATH of its own (no real `op` can answer), with an account holding `vaults`."""

    def __init__(self, tmp_path: Path, vaults: Sequence[str] = ("InitMine", "Mine")):
        self.home = tmp_path / "fake-op"
        self.home.mkdir()
        self.bin = fake_executable(tmp_path / "bin", "op", FAKE)
        self.save({"vaults": list(vaults), "items": {}, "servers": {}, "tokens": []})

    def environ(self, **extra: str) -> dict[str, str]:
        return {"PATH": str(self.bin), "FAKE_OP_DIR": str(self.home), **extra}

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.home / "state.json").read_text())

    def save(self, state: dict[str, Any]) -> None:
        (self.home / "state.json").write_text(json.dumps(state))

    @property
    def calls(self) -> list[dict[str, Any]]:
        path = self.home / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def commands(self) -> list[str]:
        """Each call as its subcommand (`connect server create`, `item get`, `--version`)."""
        shown = []
        for call in self.calls:
            words = call["args"][:3] if call["args"][:1] == ["connect"] else call["args"][:2]
            shown.append(" ".join(word for word in words if not word.startswith("--") or len(words) == 1))
        return shown

    def call(self, words: str) -> dict[str, Any]:
        """The one call of this subcommand."""
        found = [c for c, shown in zip(self.calls, self.commands(), strict=True) if shown == words]
        assert len(found) == 1, f"expected one `op {words}`, found {len(found)}"
        return found[0]

    def forget_calls(self) -> None:
        (self.home / "calls.jsonl").unlink(missing_ok=True)


@pytest.fixture
def op(tmp_path: Path) -> FakeOp:
    return FakeOp(tmp_path)


class Run:
    def __init__(self, code: int, lines: list[str]):
        self.code, self.lines = code, lines

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_init(
    project: Path,
    options: InitOptions = FLAGS,
    environ: dict[str, str] | None = None,
    ask: init.Ask | None = None,
    stack: str = STACK,
) -> Run:
    """init as the CLI runs it: its failures mapped to exit codes by deploy.guarded; say and
    complain in one list, in order."""
    lines: list[str] = []
    code = deploy.guarded(
        "init", lambda: init.run(project, stack, options, lines.append, ask, environ or {}), lines.append
    )
    return Run(code, lines)


def stack_files(project: Path) -> list[str]:
    return sorted(path.name for path in project.iterdir() if "Pulumi." in path.name)


def test_the_three_flags_write_a_stack_file_that_plans_as_a_new_stack(project: Path) -> None:
    done = run_init(project)
    assert done.code == converge.EXIT_OK, done.text
    written = (project / f"Pulumi.{STACK}.yaml").read_text()
    assert "cluster-secrets:kubeContext: kind-mycluster\n" in written
    assert "cluster-secrets:storeVaults:\n    Mine: 1\n" in written
    # The template's comments, the default provider switched off and the pinned versions carry over.
    assert "  pulumi:disable-default-providers:\n    - kubernetes\n" in written
    for line in (ROOT / "Pulumi.homelab.yaml").read_text().splitlines():
        if "renovate:" in line or "ChartVersion:" in line or line.lstrip().startswith("# No ambient"):
            assert line in written.splitlines()
    assert done.lines[-2:] == [
        f"Next: ./cluster-secrets plan {STACK} --new-stack",
        f"Then: ./cluster-secrets up {STACK}",
    ]

    planned = desired.of_stack(project, STACK, new_stack=True)  # what `plan STACK --new-stack` runs
    resources = {r["name"]: r for r in planned.state["resources"]}
    assert resources["cluster"]["inputs"]["context"] == "kind-mycluster"
    assert resources["argocd-admin-item"]["inputs"]["vault"].endswith("Mine")
    assert "vault InitMine" in planned.stand_ins and "vault Mine" in planned.stand_ins
    versions = {r["name"]: r["inputs"].get("version") for r in planned.state["resources"] if "version" in r["inputs"]}
    assert versions == {"connect-release": "1.17.0", "external-secrets-release": "0.12.1", "argocd-release": "10.1.1"}
    assert stack_files(project) == [
        "Pulumi.homelab-2.yaml",
        "Pulumi.homelab.yaml",
        f"Pulumi.{STACK}.yaml",
        "Pulumi.yaml",
    ]


def test_a_second_init_exits_2_and_leaves_the_file_as_it_was(project: Path) -> None:
    assert run_init(project).code == converge.EXIT_OK
    path = project / f"Pulumi.{STACK}.yaml"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    again = run_init(project, InitOptions(kube_context="other", init_vault="A", working_vault="B"))
    assert again.code == converge.EXIT_USAGE
    assert f"Pulumi.{STACK}.yaml exists already" in again.text
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_a_bad_value_names_its_key_and_writes_nothing(project: Path) -> None:
    done = run_init(
        project, InitOptions(kube_context="k", init_vault="I", working_vault="W", argocd_namespace="Bad_NS")
    )
    assert done.code == converge.EXIT_USAGE
    assert "cluster-secrets:argocdNamespace: 'Bad_NS' is not a valid namespace" in done.text
    assert f"Pulumi.{STACK}.yaml not written" in done.text
    assert sorted(p.name for p in project.iterdir()) == sorted(
        ["Pulumi.yaml", "Pulumi.homelab.yaml", "Pulumi.homelab-2.yaml", "__main__.py", "components"]
    )


def test_optional_flags_and_a_primary_stack(project: Path) -> None:
    options = InitOptions(
        kube_context="kind-second",
        kubeconfig_path="/etc/kube/second.yaml",
        init_vault="InitHomeLab",
        working_vault="HomeLab",
        argocd_namespace="gitops",
        primary_stack="organization/cluster-secrets/homelab",
    )
    assert run_init(project, options, stack="second").code == converge.EXIT_OK
    written = (project / "Pulumi.second.yaml").read_text()
    assert "cluster-secrets:primaryStack: organization/cluster-secrets/homelab\n" in written
    assert "cluster-secrets:kubeconfigPath: /etc/kube/second.yaml\n" in written
    assert "cluster-secrets:argocdNamespace: gitops\n" in written
    # Chart versions follow the primary's (keys and Renovate comments gone); the titles are its own.
    assert "ChartVersion" not in written and "renovate" not in written
    assert "cluster-secrets:credentialsItem: 1password-credentials-second\n" in written
    assert "cluster-secrets:argocdSecretItem: argocd-secret-second\n" in written

    planned = desired.of_stack(project, "second", new_stack=True)
    resources = {r["name"]: r for r in planned.state["resources"]}
    assert resources["cluster"]["inputs"]["context"] == "kind-second"
    assert resources["cluster"]["inputs"]["kubeconfig"] == "/etc/kube/second.yaml"
    assert resources["argocd-secret-item"]["inputs"]["title"] == "argocd-secret-second"
    assert resources["argocd-release"]["inputs"]["version"] == "10.1.1"  # the primary's
    assert resources["argocd-release"]["inputs"]["namespace"] == "gitops"


def test_without_the_flags_it_asks_offering_the_kubeconfigs_contexts(project: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncontexts:\n"
        "  - name: kind-one\n    context: {cluster: one, user: one}\n"
        "  - name: kind-two\n    context: {cluster: two, user: two}\n"
    )
    asked: list[tuple[str, list[str]]] = []
    answers = iter(["7", "2", "InitTwo", "", "Two"])  # a number out of range and an empty answer are asked again

    def ask(prompt: str, choices: Sequence[str]) -> str:
        asked.append((prompt, list(choices)))
        return next(answers)

    done = run_init(project, InitOptions(), {"KUBECONFIG": str(kubeconfig)}, ask)
    assert done.code == converge.EXIT_OK, done.text
    assert [choices for _, choices in asked] == [["kind-one", "kind-two"]] * 2 + [[]] * 3
    written = (project / f"Pulumi.{STACK}.yaml").read_text()
    for line in ("kubeContext: kind-two", "initVault: InitTwo", "workingVault: Two", "storeVaults:\n    Two: 1"):
        assert f"cluster-secrets:{line}\n" in written


def test_without_a_terminal_a_missing_flag_is_named(project: Path) -> None:
    done = run_init(project, InitOptions(kube_context="kind-x"))
    assert done.code == converge.EXIT_USAGE
    assert "missing --init-vault, --working-vault (no terminal to ask on)" in done.text
    assert not (project / f"Pulumi.{STACK}.yaml").exists()


def test_the_flags_parse_into_options() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stack")
    init.add_arguments(parser)
    args = parser.parse_args(
        [STACK, "--kube-context", "k", "--init-vault", "I", "--working-vault", "W", "--create-1password"]
    )
    assert init.options_from(args) == InitOptions(
        kube_context="k", init_vault="I", working_vault="W", create_1password=True
    )


# --create-1password, against the fake op.

CREATE = dataclasses.replace(FLAGS, create_1password=True)
EVERYTHING = [
    "--version",
    "whoami",
    "vault get",
    "vault get",
    "item get",
    "item get",
    "connect server get",
    "connect server create",
    "document create",
    "connect token create",
    "item create",
]


def assert_no_secret_shown(op: FakeOp, done: Run) -> None:
    for call in op.calls:
        assert not any(secret in arg for arg in call["args"] for secret in fake_op.SECRETS), call["args"]
    assert not any(secret in done.text for secret in fake_op.SECRETS)


def test_create_1password_makes_everything_that_is_missing(project: Path, op: FakeOp) -> None:
    done = run_init(project, CREATE, op.environ())
    assert done.code == converge.EXIT_OK, done.text
    assert op.commands() == EVERYTHING
    server, document, token = (
        op.call(words) for words in ("connect server create", "document create", "connect token create")
    )
    assert server["args"] == ["connect", "server", "create", SERVER, "--vaults", "Mine"]
    assert document["args"][:7] == [
        "document",
        "create",
        "1password-credentials.json",
        "--title",
        "1password-credentials",
        "--vault",
        "InitMine",
    ]
    assert token["args"] == [
        "connect",
        "token",
        "create",
        f"external-secrets-{STACK}",
        "--server",
        SERVER,
        "--vault",
        "Mine,r",
    ]
    assert op.state["tokens"] == [{"name": f"external-secrets-{STACK}", "server": SERVER, "vaults": ["Mine,r"]}]
    # The credentials file only in a private temporary folder, gone afterwards.
    assert server["cwd"] == document["cwd"] and server["cwd_mode"] == "0o700"
    assert not Path(server["cwd"]).exists()
    assert all(c["cwd"] != server["cwd"] for c in op.calls if c not in (server, document))
    # What 1Password holds: the credentials Document and the token as an API Credential's credential.
    items = op.state["items"]["InitMine"]
    assert items["1password-credentials"]["files"][0]["content"] == fake_op.CREDENTIALS
    assert items["onepassword-connect-token"]["category"] == "API_CREDENTIAL"
    assert items["onepassword-connect-token"]["fields"] == [
        {"id": "credential", "label": "credential", "type": "CONCEALED", "value": fake_op.TOKEN}
    ]
    creating = op.call("item create")
    assert creating["args"] == ["item", "create", "--vault", "InitMine", "--format", "json", "-"]
    assert fake_op.TOKEN in creating["stdin"]  # on stdin, the one place it goes
    assert_no_secret_shown(op, done)
    # Every op call shown, as its argv.
    shown = [line for line in done.lines if line.startswith("op ")]
    assert shown[0] == "op --version" and len(shown) == len(EVERYTHING)
    assert f"op connect token create external-secrets-{STACK} --server {SERVER} --vault Mine,r" in shown
    assert (project / f"Pulumi.{STACK}.yaml").exists()


def test_create_1password_again_reuses_both_items(project: Path, op: FakeOp, tmp_path: Path) -> None:
    assert run_init(project, CREATE, op.environ()).code == converge.EXIT_OK
    op.forget_calls()
    before = op.state
    (project / f"Pulumi.{STACK}.yaml").unlink()  # a fresh init of the same stack, with the same 1Password
    done = run_init(project, CREATE, op.environ(OP_SERVICE_ACCOUNT_TOKEN="ops_fake"))
    assert done.code == converge.EXIT_OK, done.text
    assert op.commands() == [
        "--version",
        "vault get",
        "vault get",
        "item get",
        "item get",
    ]  # no whoami: a service account
    assert op.state == before
    assert "'1password-credentials' is in vault 'InitMine' already: reused, not replaced." in done.text
    assert "'onepassword-connect-token' is in vault 'InitMine' already: reused, not replaced." in done.text
    assert_no_secret_shown(op, done)


def test_only_the_missing_token_is_made(project: Path, op: FakeOp) -> None:
    state = op.state
    state["servers"][SERVER] = {"vaults": ["Mine"]}
    state["items"]["InitMine"] = {"1password-credentials": {"id": "c1", "title": "1password-credentials"}}
    op.save(state)
    done = run_init(project, CREATE, op.environ())
    assert done.code == converge.EXIT_OK, done.text
    assert op.commands()[-3:] == ["connect server get", "connect token create", "item create"]
    assert "connect server create" not in op.commands() and "document create" not in op.commands()


def test_a_failed_document_create_still_removes_the_credentials_folder(project: Path, op: FakeOp) -> None:
    done = run_init(project, CREATE, op.environ(FAKE_OP_FAIL="document create"))
    assert done.code == converge.EXIT_FAILED
    assert "`op document create 1password-credentials.json --title 1password-credentials" in done.text
    assert f"The Connect server '{SERVER}' was created, but its credentials file is gone" in done.text
    assert f"op connect server delete {SERVER}" in done.text
    folder = op.call("document create")["cwd"]
    assert not Path(folder).exists()
    assert "connect token create" not in op.commands()
    assert not (project / f"Pulumi.{STACK}.yaml").exists()
    assert_no_secret_shown(op, done)


def test_a_server_whose_credentials_are_gone_is_refused(project: Path, op: FakeOp) -> None:
    state = op.state
    state["servers"][SERVER] = {"vaults": ["Mine"]}
    op.save(state)
    done = run_init(project, CREATE, op.environ())
    assert done.code == converge.EXIT_USAGE
    assert f"Connect server '{SERVER}' exists but its credentials are not in '1password-credentials'" in done.text
    assert "--connect-server NAME" in done.text
    assert op.commands()[-1] == "connect server get"
    assert not (project / f"Pulumi.{STACK}.yaml").exists()


def test_a_token_without_its_credentials_is_refused(project: Path, op: FakeOp) -> None:
    state = op.state
    state["items"]["InitMine"] = {"onepassword-connect-token": {"id": "t1", "title": "onepassword-connect-token"}}
    op.save(state)
    done = run_init(project, CREATE, op.environ())
    assert done.code == converge.EXIT_USAGE
    assert "that token is another Connect server's" in done.text
    assert "connect server create" not in op.commands()


def test_a_missing_vault_is_named(project: Path, tmp_path: Path) -> None:
    op = FakeOp(tmp_path, vaults=["InitMine"])
    done = run_init(project, CREATE, op.environ())
    assert done.code == converge.EXIT_USAGE
    assert "no vault 'Mine' that this account can see" in done.text
    assert op.commands()[-1] == "vault get"


def test_signed_out_op_is_refused(project: Path, op: FakeOp) -> None:
    done = run_init(project, CREATE, op.environ(FAKE_OP_SIGNED_OUT="1"))
    assert done.code == converge.EXIT_USAGE
    assert "op is not signed in" in done.text
    assert op.commands() == ["--version", "whoami"]


def test_an_op_older_than_2_23_0_is_refused(project: Path, op: FakeOp) -> None:
    done = run_init(project, CREATE, op.environ(FAKE_OP_VERSION="2.22.0"))
    assert done.code == converge.EXIT_USAGE
    assert "op 2.22.0 is too old: --create-1password needs the 1Password CLI 2.23.0 or newer" in done.text
    assert op.commands() == ["--version"]
    assert not (project / f"Pulumi.{STACK}.yaml").exists()


def test_without_op_it_prints_the_commands_and_exits_2(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-op"
    empty.mkdir()
    done = run_init(project, CREATE, {"PATH": str(empty)})
    assert done.code == converge.EXIT_USAGE
    for command in (
        'cd "$(mktemp -d)"',
        f"op connect server create {SERVER} --vaults Mine",
        "op document create 1password-credentials.json --title 1password-credentials --vault InitMine",
        "rm 1password-credentials.json",
        f"op connect token create external-secrets-{STACK} --server {SERVER} --vault Mine,r",
    ):
        assert command in done.lines
    assert any("paste the token" in line for line in done.lines if line.startswith("#"))
    assert not any("item create" in line for line in done.lines)  # the token never goes on a command line
    assert "needs the 1Password CLI `op` (2.23.0 or newer) on PATH" in done.text
    assert not (project / f"Pulumi.{STACK}.yaml").exists()


def test_the_written_file_is_not_private(project: Path) -> None:
    """Written under a private temporary name, then linked in place with the usual mode."""
    assert run_init(project).code == converge.EXIT_OK
    mode = stat.S_IMODE((project / f"Pulumi.{STACK}.yaml").stat().st_mode)
    assert mode & 0o044 == (project / "Pulumi.yaml").stat().st_mode & 0o044

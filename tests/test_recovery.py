"""Runs that go wrong (cluster_secrets/recovery.py): locks, interrupts and pending operations, through the
tool's glue and the fake `pulumi` (tests/fake_pulumi.py). The e2e suite's scenario n interrupts and
kills real runs."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from cluster_secrets import converge, deploy, preflight, recovery
from cluster_secrets.errors import UsageError
from cluster_secrets.offline import Registration
from cluster_secrets.takeover import wanted
from components.config import StackConfig
from tests.test_deploy import FakeCli
from tests.test_drift import converged_with_an_edited_item

SECRET_URN = (
    "urn:pulumi:homelab::cluster-secrets::cluster-secrets:index:ExternalSecrets$kubernetes:core/v1:Secret"
    "::external-secrets-connect-token"
)
PASSWORD_URN = (
    "urn:pulumi:homelab::cluster-secrets::cluster-secrets:index:ArgoCD$random:index/randomPassword:RandomPassword"
    "::argocd-admin-password"
)


@pytest.fixture
def cli(tmp_path: Path) -> FakeCli:
    return FakeCli(tmp_path)


def lock_file(cli: FakeCli, host: str, pid: int) -> Path:
    folder = recovery.lock_folder((cli.project / deploy.LOCAL_STATE_DIR).as_uri(), "homelab")
    assert folder is not None
    folder.mkdir(parents=True)
    path = folder / "3f0e1c9a-lock.json"
    content = {"pid": pid, "username": "someone", "hostname": host, "timestamp": "2026-12-07T01:00:00Z"}
    path.write_text(json.dumps(content))
    return path


def gone_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_lock_held_from_another_machine_stops_the_run_at_once_and_says_how_to_clear_it(cli):
    path = lock_file(cli, "ci-runner-7", 4242)
    assert cli.run(**cli.environ()) == converge.EXIT_USAGE
    text = cli.text
    assert "Stack homelab is locked: another run (up, preview, destroy, adopt) is using it" in text
    assert f"{path}: pulumi (pid 4242) of someone@ci-runner-7, since 2026-12-07T01:00:00Z" in text
    backend = (cli.project / deploy.LOCAL_STATE_DIR).as_uri()
    assert f"PULUMI_BACKEND_URL={backend} pulumi cancel --stack homelab --yes" in text
    # Nothing was read or changed: no export (the preflight), no up.
    assert [c for c in cli.commands() if c.split()[0] in ("up", "preview", "refresh") or c == "stack export"] == []
    assert path.exists()


def test_a_lock_a_killed_run_of_this_machine_left_is_cleared_and_the_run_goes_on(cli):
    path = lock_file(cli, socket.gethostname(), gone_pid())
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    assert "Cleared a lock left by a run that is gone: pulumi (pid" in cli.text
    assert not path.exists()


def test_a_lock_of_a_running_pulumi_here_is_not_stale():
    lock = recovery.Lock(Path("x.json"), "me", "here", 7, "now")
    assert not recovery.is_stale(lock, host="here", runs=lambda pid: True)
    assert recovery.is_stale(lock, host="here", runs=lambda pid: False)
    assert not recovery.is_stale(lock, host="elsewhere", runs=lambda pid: False)
    # Pulumi Cloud keeps its locks to itself: the tool relies on its refusal (below).
    assert recovery.lock_folder("https://api.pulumi.com", "homelab") is None


def test_lock_errors_of_pulumi_are_told_apart():
    locked = auto.CommandError(auto.CommandResult("", "error: the stack is currently locked by 1 lock(s).", 255))
    assert recovery.is_locked_error(locked)
    assert recovery.is_locked_error(auto.ConcurrentUpdateError(auto.CommandResult("", "conflict", 255)))
    assert not recovery.is_locked_error(auto.CommandError(auto.CommandResult("", "update failed", 255)))


def pending(urn: str, resource_type: str, operation: str = "creating") -> dict:
    return {"resource": {"urn": urn, "type": resource_type, "custom": True}, "type": operation}


def test_pending_creates_are_imported_where_their_object_exists_and_cleared_elsewhere(
    cli, registrations: list[Registration], config: StackConfig
):
    component = "urn:pulumi:homelab::cluster-secrets::cluster-secrets:index:ExternalSecrets::external-secrets"
    provider = "urn:pulumi:homelab::cluster-secrets::pulumi:providers:kubernetes::cluster"
    state = {
        "stacks": {
            "homelab": {
                "outputs": {},
                "history": [],
                "resources": [
                    {"urn": component, "type": "cluster-secrets:index:ExternalSecrets"},
                    {"urn": provider, "type": "pulumi:providers:kubernetes", "id": "provider-id"},
                ],
                "pending_operations": [
                    pending(SECRET_URN, "kubernetes:core/v1:Secret"),
                    pending(PASSWORD_URN, "random:index/randomPassword:RandomPassword"),
                ],
            }
        }
    }
    (cli.home / "state.json").write_text(json.dumps(state))
    (token,) = [w for w in wanted(registrations, config) if w.name == "external-secrets-connect-token"]
    cli.cluster.paths[token.path] = {"metadata": {"name": "onepassword-connect-token"}}  # the create made it

    assert cli.run(**cli.environ()) == converge.EXIT_OK, cli.text
    text = cli.text
    assert "Stack homelab has 2 operation(s) an interrupted run left unfinished:" in text
    assert "creating kubernetes:core/v1:Secret external-secrets-connect-token" in text
    assert "`pulumi import` takes in what they made (external-secrets-connect-token)" in text
    assert "the others made nothing (argocd-admin-password): up makes them" in text
    commands = cli.commands()
    assert commands.index("refresh --yes") < commands.index("import --file") < commands.index("up --yes")
    (refresh,) = [c["args"] for c in cli.calls if c["args"][0] == "refresh"]
    assert "--clear-pending-creates" in refresh and "--skip-preview" in refresh
    (spec,) = [json.loads(line) for line in (cli.home / "import-files.jsonl").read_text().splitlines()]
    assert spec["resources"] == [
        {
            "type": "kubernetes:core/v1:Secret",
            "name": "external-secrets-connect-token",
            "id": token.import_id,
            "parent": "external-secrets",
            "provider": "cluster-provider",
        }
    ]
    assert spec["nameTable"] == {"external-secrets": component, "cluster-provider": provider}


def test_preview_names_pending_operations_and_leaves_them_to_up(cli):
    state = {
        "stacks": {
            "homelab": {
                "outputs": {},
                "history": [],
                "resources": [],
                "pending_operations": [pending(PASSWORD_URN, "random:index/randomPassword:RandomPassword", "updating")],
            }
        }
    }
    (cli.home / "state.json").write_text(json.dumps(state))
    assert cli.run("preview", **cli.environ()) == converge.EXIT_OK
    assert "updating random:index/randomPassword:RandomPassword argocd-admin-password" in cli.text
    assert "`./cluster-secrets up homelab` settles them" in cli.text
    assert not [c for c in cli.calls if c["args"][0] == "refresh"]


class FakeStack:
    name = "homelab"

    class workspace:  # noqa: N801 - the attribute the glue reads
        env_vars = {"PULUMI_BACKEND_URL": "file:///nowhere"}


def test_a_lock_pulumi_reports_mid_run_becomes_the_tools_message():
    def locked(on_event):
        raise auto.CommandError(auto.CommandResult("", "error: the stack is currently locked by 1 lock(s).", 255))

    with pytest.raises(UsageError, match="Stack homelab is locked: another run"):
        deploy.pulumi_run(FakeStack(), "up", deploy.Progress(print, "run 1"), locked)


def test_ctrl_c_while_pulumi_runs_does_not_end_the_tool_and_is_reported():
    said: list[str] = []
    with recovery.pulumi_cancels_gracefully(said.append, forward_after=0) as interrupts:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs in the main thread between bytecodes
        assert interrupts.count == 1
    assert said and said[0].startswith("Interrupted: Pulumi is cancelling")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)


def test_an_interrupted_run_reports_the_state_and_the_command_that_continues(monkeypatch):
    exported = {"deployment": {"resources": [{}, {}, {}], "pending_operations": [pending(PASSWORD_URN, "random:x")]}}
    monkeypatch.setattr(preflight.StateFile, "__init__", lambda self, stack, say: None)
    monkeypatch.setattr(preflight.StateFile, "export", lambda self: exported)

    class Stack(FakeStack):
        def outputs(self) -> dict:
            return {}

    report = deploy.interrupted_report(Stack(), "up", print)
    assert "Interrupted: `up` of stack homelab stopped; Pulumi recorded what it had done (3 resources" in report
    assert "creating random:x argocd-admin-password" in report
    assert f"Hand-off phase: {converge.Phase.NEW.value} (an interrupted run never advances it)." in report
    assert report.endswith("Continue with: ./cluster-secrets up homelab (it settles the unfinished operations first)")


def test_plugins_a_killed_engine_left_running_are_found_and_stopped(tmp_path: Path):
    plugin = tmp_path / "pulumi-resource-fake"
    plugin.symlink_to(sys.executable)  # a process whose name is a plugin's, started as Pulumi starts them
    listening = socket.create_server(("127.0.0.1", 0))
    alive_engine = f"127.0.0.1:{listening.getsockname()[1]}"
    with socket.create_server(("127.0.0.1", 0)) as closed:
        gone_engine = f"127.0.0.1:{closed.getsockname()[1]}"
    sleep = "import time; time.sleep(60)"
    orphan = subprocess.Popen([str(plugin), "-c", sleep, gone_engine])
    served = subprocess.Popen([str(plugin), "-c", sleep, alive_engine])
    try:
        time.sleep(0.3)
        found = recovery.orphaned_plugins()
        assert orphan.pid in found and served.pid not in found
        assert orphan.pid in recovery.stop_orphaned_plugins()
        assert orphan.wait(10) == -signal.SIGTERM
        assert served.poll() is None
    finally:
        for process in (orphan, served):
            process.kill()
            process.wait()
        listening.close()


def test_ctrl_c_during_the_preflights_refresh_is_reported_and_nothing_runs_after_it(tmp_path: Path):
    cli = FakeCli(tmp_path)
    converged_with_an_edited_item(cli)  # so the preflight refreshes the item before up
    before = len(cli.calls)
    assert cli.run(**cli.environ("ctrl-c-in-refresh")) == converge.EXIT_INTERRUPTED, cli.text
    assert "Interrupted: Pulumi is cancelling" in cli.text
    assert "Interrupted: `up` of stack homelab stopped; Pulumi recorded what it had done" in cli.text
    assert "Continue with: ./cluster-secrets up homelab" in cli.text
    assert [c["args"][0] for c in cli.calls[before:]].count("up") == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

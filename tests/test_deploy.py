"""The Automation API glue, run against a fake `pulumi` executable (tests/fake_pulumi.py) on PATH.

No real deployment happens here: the fake answers as the CLI does for the calls the glue makes.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from cluster_secrets import converge, deploy
from tests.conftest import ROOT

FAKE = Path(__file__).with_name("fake_pulumi.py")


class FakeCli:
    def __init__(self, tmp_path: Path):
        self.home = tmp_path / "fake-pulumi"
        self.home.mkdir()
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        script = self.bin / "pulumi"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        script.chmod(0o755)
        self.project = tmp_path / "project"
        self.project.mkdir()
        for name in ("Pulumi.yaml", "Pulumi.homelab.yaml"):
            shutil.copy(ROOT / name, self.project / name)
        self.lines: list[str] = []

    def environ(self, scenario: str = "converges", **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_PULUMI_DIR": str(self.home),
            "FAKE_PULUMI_SCENARIO": scenario,
            "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
            **extra,
        }

    def run(self, command: str = "up", stack: str = "homelab", **environ: str) -> int:
        # The Automation API passes os.environ to the CLI; the glue reads `environ`. Keep them one.
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update({**saved, **environ})
        try:
            # Errors go to `complain` (stderr in the tool); kept in the same list here, in order.
            return deploy.run(
                command,
                self.project,
                stack,
                say=self.lines.append,
                environ=dict(os.environ),
                complain=self.lines.append,
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @property
    def calls(self) -> list[dict]:
        path = self.home / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def commands(self) -> list[str]:
        return [" ".join(c["args"][:2]) for c in self.calls if c["args"] != ["version"]]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def cli(tmp_path: Path) -> FakeCli:
    return FakeCli(tmp_path)


def test_up_on_a_new_stack_runs_twice_and_converges(cli):
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    commands = cli.commands()
    assert commands[:2] == ["stack select", "stack init"]
    assert commands.count("up --yes") == 2
    init = next(c for c in cli.calls if c["args"][:2] == ["stack", "init"])
    assert init["args"][2:5] == ["homelab", "--secrets-provider", "passphrase"]
    ups = [c for c in cli.calls if c["args"][0] == "up"]
    assert all(c["env"]["PULUMI_BACKEND_URL"] == (cli.project / ".pulumi-state").as_uri() for c in ups)
    assert all(option in c["args"] for c in ups for option in ("--skip-preview", "--event-log"))
    assert (cli.project / ".pulumi-state").is_dir()
    # Progress from the engine's events, the summary, and never the password.
    assert "[00:00] run 1 from new: create t connect-release" in cli.text
    assert "run 2 from synced: update t argocd-release" in cli.text
    assert "Converged after 2 run(s): hand-off complete" in cli.text
    assert "  run 1: create 20" in cli.text and "  run 2: update 1" in cli.text
    assert "pulumi stack output --show-secrets argocdAdminPassword --stack homelab" in cli.text
    assert "fake-admin-password" not in cli.text


def test_up_on_a_converged_stack_runs_once(cli):
    cli.run(**cli.environ())
    cli.lines.clear()
    before = len(cli.calls)
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    later = [" ".join(c["args"][:2]) for c in cli.calls[before:] if c["args"] != ["version"]]
    assert "stack init" not in later and later.count("up --yes") == 1
    assert "Converged after 1 run(s)" in cli.text


def test_up_that_makes_no_progress_stops_with_exit_3(cli):
    assert cli.run(**cli.environ("stuck")) == converge.EXIT_NOT_CONVERGED
    assert cli.commands().count("up --yes") == 2
    assert "Run 2 made no progress" in cli.text


def test_a_failed_up_exits_1_with_the_cli_error(cli):
    assert cli.run(**cli.environ("fails")) == converge.EXIT_FAILED
    assert "did not become Ready" in cli.text


def test_with_create_secret_true_one_run_is_enough(cli):
    stack_file = cli.project / "Pulumi.homelab.yaml"
    stack_file.write_text(stack_file.read_text().replace("argocdCreateSecret: auto", "argocdCreateSecret: 'true'"))
    assert cli.run(**cli.environ("stuck")) == converge.EXIT_OK
    assert cli.commands().count("up --yes") == 1


def test_a_missing_passphrase_stops_before_pulumi_runs(cli):
    environ = cli.environ()
    del environ["PULUMI_CONFIG_PASSPHRASE"]
    assert cli.run(**environ) == converge.EXIT_USAGE
    assert "set PULUMI_CONFIG_PASSPHRASE" in cli.text
    assert cli.calls == []


def test_a_configured_backend_is_used_as_it_is(cli):
    environ = cli.environ(PULUMI_BACKEND_URL="https://api.pulumi.com")
    del environ["PULUMI_CONFIG_PASSPHRASE"]  # Pulumi Cloud keeps secrets itself
    assert cli.run(**environ) == converge.EXIT_OK
    assert {c["env"]["PULUMI_BACKEND_URL"] for c in cli.calls if c["args"][0] == "up"} == {"https://api.pulumi.com"}
    init = next(c for c in cli.calls if c["args"][:2] == ["stack", "init"])
    assert "--secrets-provider" not in init["args"]
    assert not (cli.project / ".pulumi-state").exists()


def test_without_the_cli_it_says_how_to_install_it(cli, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    assert cli.run(**cli.environ(PATH=str(empty))) == converge.EXIT_NO_CLI
    assert "Install it" in cli.text and "get.pulumi.com" in cli.text
    assert "`./cluster-secrets plan STACK` shows the desired state offline" in cli.text
    assert cli.calls == []


def test_an_unknown_stack_names_the_stacks_there(cli):
    assert cli.run(stack="prod", **cli.environ()) == converge.EXIT_USAGE
    assert "No stack file Pulumi.prod.yaml; the stacks here are: homelab." in cli.text


def test_preview_and_destroy(cli):
    assert cli.run("preview", **cli.environ()) == converge.EXIT_OK
    assert "Preview of homelab: update 1." in cli.text
    assert cli.run("destroy", **cli.environ()) == converge.EXIT_OK
    assert "Destroyed homelab: delete 20." in cli.text
    assert [c.split()[0] for c in cli.commands() if c.split()[0] in ("preview", "destroy")] == ["preview", "destroy"]

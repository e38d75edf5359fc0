"""The Automation API glue, run against a fake `pulumi` executable (tests/fake_pulumi.py) on PATH.

No real deployment happens here: the fake answers as the CLI does for the calls the glue makes. The
preflight is the real one (cluster_secrets/preflight.py) over a fake vault; the cluster is a fake.
"""

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from pulumi import automation as auto

from cluster_secrets import charts, converge, deploy, preflight
from cluster_secrets.onepassword import ItemDetails, ItemSummary, OnePasswordError
from components.config import StackConfig
from tests import fake_pulumi
from tests.conftest import copy_program, fake_executable, upstream
from tests.fake_cluster import FakeCluster, b64

FAKE = Path(__file__).with_name("fake_pulumi.py")


class FakeVaults:
    """The working vault HomeLab (ID vault1) as the preflight reads it: its item list."""

    def __init__(self) -> None:
        self.listed: list[ItemSummary] = []
        self.details: dict[str, ItemDetails] = {}  # by item ID: what a read of an item's details gives

    def vault_id(self, name: str) -> str:
        assert name == "HomeLab"
        return "vault1"

    def items(self, vault_id: str) -> list[ItemSummary]:
        assert vault_id == "vault1"
        return list(self.listed)

    def item(self, vault_id: str, item_id: str) -> ItemDetails:
        assert vault_id == "vault1" and item_id in self.details, f"no details of item {item_id} to read"
        return self.details[item_id]


class FakeCli:
    def __init__(self, tmp_path: Path):
        self.home = tmp_path / "fake-pulumi"
        self.home.mkdir()
        self.bin = fake_executable(tmp_path / "bin", "pulumi", FAKE)
        # The program too: the preflight evaluates it offline for what it would create.
        self.project = copy_program(tmp_path / "project")
        self.lines: list[str] = []
        self.vaults = FakeVaults()
        self.reader: Callable[[object, object], FakeVaults] = lambda config, environ: self.vaults
        self.cluster = FakeCluster()
        self.preview_options: dict[str, bool] | None = None  # preview's --refresh, --expect-no-changes

    def checks(self) -> deploy.Checks:
        def check(
            stack: auto.Stack, config: StackConfig | None, command: str, environ: Mapping[str, str], say: deploy.Print
        ) -> None:
            preflight.check(
                stack,
                config,
                command,
                environ,
                say,
                vaults=self.reader,
                cluster=lambda path, context: self.cluster,
                repositories=charts.Repositories(local=upstream("charts")),
            )

        return deploy.Checks(preflight=check, cluster=lambda path, context: self.cluster, wait_seconds=0)

    def environ(self, scenario: str = "converges", **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_PULUMI_DIR": str(self.home),
            "FAKE_PULUMI_SCENARIO": scenario,
            "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
            "KUBECONFIG": str(self.project / "Pulumi.yaml"),  # any existing file: the fake cluster ignores it
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
                checks=self.checks(),
                preview_options=self.preview_options,
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

    def imported(self) -> list[dict]:
        """The deployments the tool imported, in order."""
        return [c for c in self.calls if c["args"][:2] == ["stack", "import"]]

    def resources(self) -> list[dict]:
        return json.loads((self.home / "state.json").read_text())["stacks"]["homelab"]["resources"]


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


def test_preview_stops_before_pulumi_when_the_stack_would_create_what_exists_already(cli):
    cli.vaults.listed = [ItemSummary("made-by-hand", "argocd-secret"), ItemSummary("other", "unrelated")]
    cli.cluster.paths["/api/v1/namespaces/onepassword"] = {"metadata": {"name": "onepassword"}}
    assert cli.run("preview", **cli.environ()) == converge.EXIT_USAGE
    assert "Stack homelab would create what exists already, made outside it (nothing was changed):" in cli.text
    assert "  1Password item 'argocd-secret' in vault 'HomeLab' (owner: nobody)" in cli.text
    assert "  Namespace onepassword (owner: nobody)" in cli.text
    assert "got 2" in cli.text and "`./cluster-secrets adopt homelab`" in cli.text
    assert "argo-admin" not in cli.text and "unrelated" not in cli.text
    assert not [c for c in cli.commands() if c.startswith(("preview", "up"))]


def test_the_stacks_own_items_are_not_taken_for_others(cli):
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    cli.vaults.listed = [ItemSummary("item1", "argocd-secret"), ItemSummary("item2", "argo-admin")]
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    assert cli.imported() == [] and "deleted" not in cli.text


def test_up_takes_an_item_deleted_by_hand_out_of_the_state_and_creates_it_again(cli):
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    cli.vaults.listed = [ItemSummary("item2", "argo-admin")]  # argocd-secret (item1) was deleted
    cli.lines.clear()
    assert cli.run("preview", **cli.environ()) == converge.EXIT_OK
    assert "'argocd-secret' (item item1 in vault vault1)" in cli.text and "`up` takes them out" in cli.text
    assert cli.imported() == []

    before = len(cli.calls)
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    assert "this `up` creates them again with the same contents" in cli.text
    later = [" ".join(c["args"][:2]) for c in cli.calls[before:]]
    assert later.index("stack import") < later.index("up --yes")
    (call,) = cli.imported()
    assert call["args"][-2:] == ["--stack", "homelab"]
    # The state goes out and back as ciphertext: never exported with --show-secrets.
    exports = [c["args"] for c in cli.calls if c["args"][:2] == ["stack", "export"]]
    assert exports and all("--show-secrets" not in args for args in exports)
    (imported,) = [json.loads(line) for line in (cli.home / "imported.jsonl").read_text().splitlines()]
    kept = imported["deployment"]["resources"]
    assert [r["urn"] for r in kept] == [fake_pulumi.ADMIN_ITEM, fake_pulumi.EXTERNAL_SECRET]
    assert kept[1]["inputs"]["password"] == fake_pulumi.CIPHERTEXT and kept[1]["dependencies"] == []


def test_the_repaired_state_keeps_every_other_resource_and_its_ciphertext():
    resources = fake_pulumi.deployed_resources()
    repaired = preflight.without({"resources": resources}, {fake_pulumi.SECRET_ITEM})
    assert [r["urn"] for r in repaired["resources"]] == [fake_pulumi.ADMIN_ITEM, fake_pulumi.EXTERNAL_SECRET]
    external_secret = repaired["resources"][1]
    assert external_secret["dependencies"] == [] and external_secret["propertyDependencies"] == {"spec": []}
    assert external_secret["inputs"]["password"] == fake_pulumi.CIPHERTEXT
    assert resources[2]["dependencies"] == [fake_pulumi.SECRET_ITEM]  # the original is left as it was


def test_destroy_goes_on_after_an_item_was_deleted_by_hand(cli):
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    cli.vaults.listed = [ItemSummary("item1", "argocd-secret")]
    assert cli.run("destroy", **cli.environ()) == converge.EXIT_OK
    assert "'argo-admin' (item item2 in vault vault1)" in cli.text and "as they are gone already" in cli.text
    assert len(cli.imported()) == 1 and cli.resources() == []


def test_up_confirms_that_argocd_secret_holds_what_was_deployed(cli):
    assert cli.run(**cli.environ()) == converge.EXIT_OK
    assert f"argocd-secret has admin.passwordMtime {fake_pulumi.MTIME}." in cli.text
    cli.cluster.object("secret", "argocd", "argocd-secret")["data"]["admin.passwordMtime"] = b64("2026-01-01T00:00:00Z")
    cli.lines.clear()
    assert cli.run(**cli.environ()) == converge.EXIT_NOT_CONVERGED
    assert f"admin.passwordMtime 2026-01-01T00:00:00Z, the stack's is {fake_pulumi.MTIME}" in cli.text
    assert "Stack homelab: 1 run(s)" in cli.text  # the summary still comes


def test_a_1password_that_cannot_be_read_stops_the_run_before_pulumi(cli):
    def unreachable(config: object, environ: object) -> FakeVaults:
        raise OnePasswordError("cannot reach Connect at http://connect:8080: connection refused")

    cli.reader = unreachable
    assert cli.run(**cli.environ()) == converge.EXIT_FAILED
    assert cli.lines[-1] == (
        "error: before up, reading 1Password: cannot reach Connect at http://connect:8080: connection refused"
    )
    assert "up --yes" not in cli.commands()


def test_preview_warns_of_a_values_key_the_chart_lacks_and_stops_on_a_version_it_lacks(cli):
    stack_file = cli.project / "Pulumi.homelab.yaml"
    text = stack_file.read_text()
    stack_file.write_text(text + "  cluster-secrets:argocdValues:\n    sever:\n      replicas: 2\n")
    assert cli.run("preview", **cli.environ()) == converge.EXIT_OK
    assert (
        "warning: cluster-secrets:argocdValues: sever is not a value of chart argo-cd 10.1.1 (did you mean server?)"
        in cli.text
    )
    stack_file.write_text(text.replace("esoChartVersion: 0.12.1", "esoChartVersion: 0.12.9"))
    cli.lines.clear()
    before = len(cli.calls)
    assert cli.run("preview", **cli.environ()) == converge.EXIT_USAGE
    assert "error: cluster-secrets:esoChartVersion: 0.12.9 is not a version of chart external-secrets" in cli.text
    assert not [c for c in cli.calls[before:] if c["args"][0] == "preview"]

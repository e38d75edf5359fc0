"""The command line's edges: clean errors on stderr with exit code 2, never a traceback; stack files
read as the Pulumi CLI reads them (YAML 1.2); paths relative to where the user runs the tool."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_secrets.__main__ import main
from cluster_secrets.deploy import Backend, check_legacy_file_backend
from cluster_secrets.errors import UsageError
from tests.conftest import ROOT, copy_project
from tests.test_deploy import FakeCli

HOMELAB = (ROOT / "Pulumi.homelab.yaml").read_text()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the program whose stack files a test may edit."""
    return copy_project(tmp_path / "project")


def plan(project: Path, capsys, *extra: str, stack: str = "homelab") -> tuple[int, str, str]:
    code = main(["plan", stack, "--program-dir", str(project), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_names_the_command_as_users_type_it_and_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: ./cluster-secrets ")
    assert "127  no Pulumi CLI" in text and "2    bad arguments, stack file, config or environment" in text


def test_plan_of_an_unknown_stack_says_what_up_says(capsys):
    assert main(["plan", "nope"]) == 2
    planned = capsys.readouterr().err
    assert planned.startswith("error: No stack file Pulumi.nope.yaml; the stacks here are: homelab, homelab-2")
    assert main(["up", "nope"]) == 2
    assert capsys.readouterr().err == planned


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("kubeContext: homelab", "kubeContext: 12"), "kubeContext: 12 is not of type string"),
        (lambda t: t + "  cluster-secrets:shareArgocdAdmin: yes\n", "shareArgocdAdmin: 'yes' is not of type boolean"),
        (lambda t: t + "  cluster-secrets:storeOpenToAllNamespaces: on\n", "'on' is not of type boolean"),
        (
            lambda t: t + "  cluster-secrets:initVault: Other\n",
            'line 33: found duplicate key "cluster-secrets:initVault"',
        ),
        (lambda t: t + "  cluster-secrets:workingVault: [HomeLab\n", "Pulumi.homelab.yaml line 34:"),
        (
            lambda t: t + "  argocdCreateSecret: auto\n",
            "'argocdCreateSecret': is not a config key (expected <namespace>:<name>",
        ),
        (lambda t: "", "Pulumi.homelab.yaml: is empty (expected a `config:` map"),
        (lambda t: "# nothing\nfoo: 1\n", "Pulumi.homelab.yaml: has no `config:`"),
        (lambda t: "config: [1, 2]\n", "Pulumi.homelab.yaml: `config:` is [1, 2], not a map"),
        (lambda t: "- config\n", "Pulumi.homelab.yaml: expected a YAML map at the top"),
        (lambda t: t + "  cluster-secrets:argocdCreatSecret: auto\n", "did you mean argocdCreateSecret?"),
        (
            lambda t: t.replace("kubeContext: homelab", 'kubeContext: ""'),
            "cluster-secrets:kubeContext: must not be empty",
        ),
    ],
)
def test_a_bad_stack_file_is_one_clean_message_with_exit_2(project, capsys, edit, expected):
    (project / "Pulumi.homelab.yaml").write_text(edit(HOMELAB))
    code, out, err = plan(project, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # A namespace that slips (the key would go to no project and be ignored).
        (
            lambda t: t.replace("cluster-secrets:workingVault:", "cluster_secrets:workingVault:"),
            "cluster_secrets:workingVault: 'cluster_secrets' is not a namespace here; did you mean "
            "cluster-secrets:workingVault?",
        ),
        (
            lambda t: t + "  clusterSecrets:argocdNamespace: argo\n",
            "did you mean cluster-secrets:argocdNamespace?",
        ),
        # A version YAML reads as a number.
        (
            lambda t: t.replace("esoChartVersion: 0.12.1", "esoChartVersion: 0.16"),
            "cluster-secrets:esoChartVersion: 0.16 is not of type string (as Pulumi.yaml declares); write it in "
            "quotes (YAML reads 0.16 as a number)",
        ),
        # YAML's words in messages, not Python's.
        (
            lambda t: t.replace("    HomeLab: 1", "    HomeLab: true"),
            "cluster-secrets:storeVaults['HomeLab']: true: input should be a valid integer",
        ),
        # A map whose entries lost their indentation: the line and the key above.
        (
            lambda t: t.replace("    HomeLab: 1", "  HomeLab: 1"),
            "line 12: 'HomeLab': is not a config key (expected <namespace>:<name>, e.g. cluster-secrets:HomeLab) "
            "(or a map under the key above that is not indented under it)",
        ),
    ],
)
def test_inputs_that_passed_silently_are_named(project, capsys, edit, expected):
    (project / "Pulumi.homelab.yaml").write_text(edit(HOMELAB))
    code, out, err = plan(project, capsys)
    assert (code, out) == (2, "")
    assert expected in err, err
    assert "None" not in err and "True" not in err


def test_every_problem_of_the_file_is_reported_at_once(project, capsys):
    # A type problem (the file) and config problems (the model) in one message.
    text = HOMELAB.replace("kubeContext: homelab", "kubeContext: 12").replace("esoNamespace: eso", "esoNamespace: Bad")
    (project / "Pulumi.homelab.yaml").write_text(text + "  cluster-secrets:argocdCreatSecret: auto\n")
    code, _, err = plan(project, capsys)
    assert code == 2
    assert err.count("error:") == 1
    for line in (
        "kubeContext: 12 is not of type string",
        "esoNamespace: 'Bad' is not a valid namespace",
        "did you mean argocdCreateSecret?",
    ):
        assert line in err, line


def test_booleans_and_integers_as_pulumi_writes_them_back_are_accepted(project, capsys):
    # `pulumi stack init` rewrites the stack file with these as strings.
    text = (
        HOMELAB
        + '  cluster-secrets:storeOpenToAllNamespaces: "true"\n  cluster-secrets:argocdAdminPasswordLength: "40"\n'
    )
    (project / "Pulumi.homelab.yaml").write_text(text)
    code, out, err = plan(project, capsys)
    assert code == 0, err
    assert "warning: ClusterSecretStore one-secretstore is open to every namespace" in err
    assert "length: 40" in out


def test_yaml_1_2_rules_on_and_off_are_strings_as_for_pulumi(project, capsys):
    # YAML 1.1 (PyYAML) would read `on` as true and accept it for a boolean; Pulumi does not.
    text = HOMELAB.replace("argocdCreateSecret: auto", "argocdCreateSecret: off")
    (project / "Pulumi.homelab.yaml").write_text(text)
    code, _, err = plan(project, capsys)
    assert code == 2 and "cluster-secrets:argocdCreateSecret: 'off' is not one of 'auto', 'true' or 'false'" in err


def test_a_bad_primary_stack_hides_no_other_problem(project, capsys):
    text = (
        HOMELAB.replace("esoNamespace: eso", "esoNamespace: Bad") + "  cluster-secrets:primaryStack: other-project/x\n"
    )
    (project / "Pulumi.homelab.yaml").write_text(text)
    code, _, err = plan(project, capsys)
    assert code == 2
    assert "cluster-secrets:primaryStack: 'other-project/x' is not a stack name" in err
    assert "cluster-secrets:esoNamespace: 'Bad' is not a valid namespace" in err


def test_plan_prints_what_preview_would_warn_about_and_the_reads_it_stands_in_for(project, capsys):
    (project / "Pulumi.homelab.yaml").write_text(HOMELAB + "  cluster-secrets:storeOpenToAllNamespaces: true\n")
    code, out, err = plan(project, capsys)
    assert code == 0 and out.startswith("# homelab: 20 resources")
    assert "warning: ClusterSecretStore one-secretstore is open to every namespace" in err
    assert (
        "plan: placeholders stand in for the 1Password reads of vault InitHomeLab, item 1password-credentials in "
        "vault InitHomeLab, item onepassword-connect-token in vault InitHomeLab, vault HomeLab"
    ) in err


def test_diff_labels_each_side_with_its_own_file(tmp_path, capsys):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("a: 1\n")
    new.write_text("a: 2\n")
    assert main(["diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert f"--- {old}\n+++ {new}\n" in out
    assert main(["diff", str(old), str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot be read" in capsys.readouterr().err


def test_paths_are_relative_to_where_the_tool_is_run(tmp_path):
    # The wrapper installs nothing when .venv is current; run from another directory.
    if not (ROOT / ".venv" / "requirements.installed").exists():
        pytest.skip("the wrapper's .venv is not set up here (./cluster-secrets installs it on first use)")
    result = subprocess.run(
        [str(ROOT / "cluster-secrets"), "plan", "homelab", "--output", "plan.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plan.yaml").read_text().startswith("# homelab: 20 resources")


def test_destroy_asks_first_and_without_a_terminal_needs_yes(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open("/dev/null"))  # noqa: SIM115 - closed with the test's process
    assert main(["destroy", "homelab"]) == 2
    assert "add --yes to destroy without asking" in capsys.readouterr().err


def test_up_refuses_a_bad_stack_file_before_pulumi_starts(tmp_path):
    cli = FakeCli(tmp_path)
    (cli.project / "Pulumi.homelab.yaml").write_text(HOMELAB + "  cluster-secrets:argocdCreatSecret: auto\n")
    assert cli.run("up", **cli.environ()) == 2
    assert "did you mean argocdCreateSecret?" in cli.text
    assert cli.calls == []  # the Pulumi CLI never ran


def test_destroy_checks_the_yaml_but_not_the_config(tmp_path):
    cli = FakeCli(tmp_path)
    (cli.project / "Pulumi.homelab.yaml").write_text(HOMELAB + "  cluster-secrets:argocdCreatSecret: auto\n")
    assert cli.run("destroy", **cli.environ()) == 0  # a stack whose config went stale can still be destroyed
    (cli.project / "Pulumi.homelab.yaml").write_text("config: [\n")
    assert cli.run("destroy", **cli.environ()) == 2


def test_a_legacy_file_backend_is_detected_with_the_upgrade_to_run(tmp_path):
    state = tmp_path / ".pulumi"
    (state / "stacks").mkdir(parents=True)
    backend = Backend(tmp_path.as_uri(), embedded=False)
    check_legacy_file_backend(backend)  # empty: Pulumi starts it in the project layout
    (state / "stacks" / "homelab.json").write_text("{}")
    with pytest.raises(UsageError, match="legacy layout.*pulumi state upgrade"):
        check_legacy_file_backend(backend)
    (state / "meta.yaml").write_text("version: 1\n")
    check_legacy_file_backend(backend)  # upgraded


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "destroyed"), [("homelab\n", True), ("yes\n", False)])
def test_destroy_goes_ahead_only_when_the_stack_name_is_typed(capsys, monkeypatch, answer, destroyed):
    ran: list[str] = []
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    monkeypatch.setattr("cluster_secrets.deploy.run", lambda command, *args, **kwargs: ran.append(command) or 0)
    assert main(["destroy", "homelab"]) == (0 if destroyed else 2)
    assert ran == (["destroy"] if destroyed else [])
    assert ("Not destroyed." in capsys.readouterr().err) is not destroyed

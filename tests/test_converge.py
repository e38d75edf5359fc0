import pytest
from pulumi.automation import EngineEvent

from cluster_secrets.converge import (
    EXIT_NOT_CONVERGED,
    EXIT_OK,
    MAX_RUNS,
    Phase,
    RunReport,
    describe_event,
    next_step,
    phase_of,
    progress_line,
    up_summary,
)


@pytest.mark.parametrize(
    ("outputs", "phase"),
    [
        ({}, Phase.NEW),
        ({"argocdCreateSecret": True}, Phase.CHART_SECRET),
        ({"argocdCreateSecret": True, "argocdSecretSynced": False}, Phase.CHART_SECRET),
        ({"argocdCreateSecret": True, "argocdSecretSynced": True}, Phase.SYNCED),
        ({"argocdCreateSecret": False, "argocdSecretSynced": True}, Phase.HANDED_OVER),
        ({"argocdCreateSecret": False, "argocdSecretSynced": False}, Phase.CHART_SECRET),
    ],
)
def test_phase_of(outputs, phase):
    assert phase_of(outputs) == phase


def test_auto_runs_until_handed_over():
    first = next_step("auto", 1, Phase.NEW, Phase.SYNCED)
    assert (first.run_again, first.exit_code) == (True, EXIT_OK)
    second = next_step("auto", 2, Phase.SYNCED, Phase.HANDED_OVER)
    assert (second.run_again, second.exit_code) == (False, EXIT_OK)
    assert "Converged after 2 run(s)" in second.message


def test_no_progress_stops():
    step = next_step("auto", 2, Phase.SYNCED, Phase.SYNCED)
    assert (step.run_again, step.exit_code) == (False, EXIT_NOT_CONVERGED)
    assert "made no progress" in step.message


def test_at_most_two_more_runs():
    assert MAX_RUNS == 3
    step = next_step("auto", 3, Phase.CHART_SECRET, Phase.SYNCED)
    assert (step.run_again, step.exit_code) == (False, EXIT_NOT_CONVERGED)


@pytest.mark.parametrize(("mode", "target"), [("true", Phase.SYNCED), ("false", Phase.HANDED_OVER)])
def test_fixed_modes_stop_at_their_own_target(mode, target):
    assert next_step(mode, 1, Phase.NEW, target).exit_code == EXIT_OK
    assert not next_step(mode, 1, Phase.NEW, target).run_again


def test_summary_points_to_the_password_and_never_holds_it():
    text = up_summary(
        "homelab",
        [
            RunReport(42.4, {"create": 20, "same": 0}, Phase.SYNCED),
            RunReport(9.6, {"update": 1, "same": 19}, Phase.HANDED_OVER),
        ],
    )
    assert text.splitlines()[:3] == [
        "Stack homelab: 2 run(s), 52s in all.",
        "  run 1: create 20 (42s)",
        "  run 2: update 1 (10s)",
    ]
    assert f"Phase: {Phase.HANDED_OVER.value}." in text
    assert "pulumi stack output --show-secrets argocdAdminPassword --stack homelab" in text


def event(**fields) -> EngineEvent:
    return EngineEvent.from_json({"sequence": 1, "timestamp": 1, **fields})


def step_metadata(op: str) -> dict:
    return {
        "op": op,
        "urn": "urn:pulumi:homelab::cluster-secrets::kubernetes:core/v1:Namespace::argocd-namespace",
        "type": "kubernetes:core/v1:Namespace",
        "provider": "",
    }


def test_describe_event():
    assert describe_event(event(resourcePreEvent={"metadata": step_metadata("create")})) == (
        "create kubernetes:core/v1:Namespace argocd-namespace"
    )
    assert describe_event(event(resourcePreEvent={"metadata": step_metadata("same")})) is None
    assert describe_event(event(resOpFailedEvent={"metadata": step_metadata("update"), "status": 1, "steps": 1})) == (
        "failed: update kubernetes:core/v1:Namespace argocd-namespace"
    )
    diagnostic = {"message": "timed out waiting\n", "color": "never", "severity": "error"}
    assert describe_event(event(diagnosticEvent=diagnostic)) == "error: timed out waiting"
    assert describe_event(event(diagnosticEvent={**diagnostic, "severity": "info"})) is None
    assert describe_event(event(summaryEvent={"resourceChanges": {"create": 3, "same": 2}})) == "summary: create 3"
    assert describe_event(event(preludeEvent={"config": {}})) is None


def test_progress_line():
    assert progress_line(125.9, "run 2", "create x") == "[02:05] run 2: create x"

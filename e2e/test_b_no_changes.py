"""Scenario b: on a converged stack a third `up`, and a `preview`, change nothing with the real providers."""

import re

from e2e.conftest import Deployment


def changes_of_runs(output: str) -> list[str]:
    """What the tool's summary says each run changed (`  run 1: update 1 (3s)`), less the reads: the
    StackReference to the stack's own outputs is a `read` on every run, and changes nothing."""
    runs = re.findall(r"^\s+run \d+: (.*) \(\d+s\)$", output, re.MULTILINE)
    changes = [", ".join(op for op in run.split(", ") if not op.startswith("read ")) for run in runs]
    return [change if change not in ("", "no changes") else "no changes" for change in changes]


def test_a_third_up_changes_nothing(primary: Deployment) -> None:
    primary.require_converged()
    before = primary.outputs()
    run = primary.tool("up", "b: third up")
    assert run.code == 0, "up failed (its output is above)"
    assert changes_of_runs(run.output) == ["no changes"]
    # No 1Password item was written: the items were read, never updated.
    assert not [route for route in run.requests if not route.startswith("GET ")], run.requests
    assert primary.outputs() == before


def test_a_preview_changes_nothing(primary: Deployment) -> None:
    primary.require_converged()
    run = primary.tool("preview", "b: preview")
    assert run.code == 0, "preview failed (its output is above)"
    assert f"Preview of {primary.stack}: no changes." in run.output
    assert not [route for route in run.requests if not route.startswith("GET ")], run.requests

"""The bootstrap's decisions: which phase a stack is in, whether to run again, what to report.

Pure functions over stack outputs and engine events, so they are tested without Pulumi.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pulumi.automation import EngineEvent, OpType

from components import outputs

# One `up`, then at most two more.
MAX_RUNS = 3

EXIT_OK = 0
EXIT_FAILED = 1  # a Pulumi operation failed
EXIT_USAGE = 2  # bad arguments or environment (a missing passphrase, an unknown stack file)
EXIT_NOT_CONVERGED = 3  # a run made no progress, or MAX_RUNS were not enough
EXIT_NO_CLI = 127  # no Pulumi CLI on PATH
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)


class Phase(Enum):
    NEW = "new stack: nothing deployed yet"
    CHART_SECRET = "Argo CD runs on the chart's argocd-secret; ESO has not synced it yet"
    SYNCED = "ESO has synced argocd-secret; the chart still creates it"
    HANDED_OVER = "hand-off complete: ESO owns argocd-secret, the chart no longer creates it"


def phase_of(stack_outputs: Mapping[str, Any]) -> Phase:
    """The hand-off phase recorded by a stack's outputs (plain values)."""
    create_secret = stack_outputs.get(outputs.ARGOCD_CREATE_SECRET)
    synced = stack_outputs.get(outputs.ARGOCD_SECRET_SYNCED) is True
    if create_secret is None:
        return Phase.NEW
    if not synced:
        return Phase.CHART_SECRET
    return Phase.SYNCED if create_secret else Phase.HANDED_OVER


def target_phase(create_secret_mode: str) -> Phase:
    """Where `up` stops: with `argocdCreateSecret: true` the chart keeps its Secret for good."""
    return Phase.SYNCED if create_secret_mode == "true" else Phase.HANDED_OVER


@dataclass(frozen=True)
class Step:
    run_again: bool
    exit_code: int
    message: str


def next_step(create_secret_mode: str, runs_done: int, before: Phase, after: Phase) -> Step:
    """After a successful `up`: stop (converged or stuck) or run again."""
    if after == target_phase(create_secret_mode):
        return Step(False, EXIT_OK, f"Converged after {runs_done} run(s): {after.value}.")
    if after == before:
        return Step(
            False,
            EXIT_NOT_CONVERGED,
            f"Run {runs_done} made no progress (still: {after.value}). Check the ExternalSecret "
            "argocd-secret (kubectl describe externalsecret -n <argocd namespace> argocd-secret).",
        )
    if runs_done >= MAX_RUNS:
        return Step(False, EXIT_NOT_CONVERGED, f"Not converged after {runs_done} runs: {after.value}.")
    return Step(True, EXIT_OK, f"Run {runs_done} moved the stack to: {after.value}. Running again.")


@dataclass(frozen=True)
class RunReport:
    seconds: float
    changes: Mapping[str, int] | Mapping[OpType, int]  # operation -> count, from Pulumi's summary
    phase: Phase


def format_changes(changes: Mapping[str, int] | Mapping[OpType, int]) -> str:
    """`create 2, update 1`: the operations that changed something, from a summary's counts (a read,
    such as the StackReference to this stack's own outputs, changes nothing)."""
    counts = {op.value if isinstance(op, OpType) else op: count for op, count in changes.items()}
    unchanged = (OpType.SAME.value, OpType.READ.value)
    counted = [f"{op} {count}" for op, count in sorted(counts.items()) if op not in unchanged and count]
    return ", ".join(counted) or "no changes"


def up_summary(stack: str, runs: list[RunReport]) -> str:
    """What `up` did, run by run, and where the admin password is. Never the password itself."""
    lines = [f"Stack {stack}: {len(runs)} run(s), {sum(run.seconds for run in runs):.0f}s in all."]
    lines += [f"  run {i}: {format_changes(run.changes)} ({run.seconds:.0f}s)" for i, run in enumerate(runs, 1)]
    if runs:
        lines.append(f"Phase: {runs[-1].phase.value}.")
    lines.append(
        "Argo CD admin password: pulumi stack output --show-secrets "
        f"{outputs.ARGOCD_ADMIN_PASSWORD} --stack {stack} (it is also in 1Password)."
    )
    return "\n".join(lines)


def describe_event(event: EngineEvent) -> str | None:
    """One progress line for an engine event worth showing, or None."""
    if event.resource_pre_event is not None:
        meta = event.resource_pre_event.metadata
        if meta.op in (OpType.SAME, OpType.READ):
            return None
        return f"{meta.op.value} {meta.type} {meta.urn.split('::')[-1]}"
    if event.res_op_failed_event is not None:
        meta = event.res_op_failed_event.metadata
        return f"failed: {meta.op.value} {meta.type} {meta.urn.split('::')[-1]}"
    if event.diagnostic_event is not None and event.diagnostic_event.severity in ("error", "warning"):
        return f"{event.diagnostic_event.severity}: {event.diagnostic_event.message.strip()}"
    if event.summary_event is not None:
        changes = {
            op.value if isinstance(op, OpType) else str(op): n for op, n in event.summary_event.resource_changes.items()
        }
        return f"summary: {format_changes(changes)}"
    return None


def progress_line(elapsed_seconds: float, phase: str, text: str) -> str:
    minutes, seconds = divmod(int(elapsed_seconds), 60)
    return f"[{minutes:02d}:{seconds:02d}] {phase}: {text}"

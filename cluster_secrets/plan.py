"""`plan`: the desired state of a stack, computed offline, and its diff between two versions.

This is what the program asks for, evaluated with Pulumi's mocks: no cluster, no 1Password, no
Pulumi CLI. It is not a diff against the live cluster (that is `pulumi preview`).
"""

import difflib
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

from cluster_secrets import offline
from components import outputs

SECRET_MARKER = "[secret]"


class PlanError(Exception):
    pass


# Outputs that a synced previous deployment exported: the plan of a stack that has converged.
CONVERGED = {outputs.ARGOCD_CREATE_SECRET: False, outputs.ARGOCD_SECRET_SYNCED: True}


def _masked(value: Any) -> Any:
    """Secrets replaced by a marker, keys sorted, protobuf's doubles back to integers where whole."""
    if offline.is_secret(value):
        return SECRET_MARKER
    if isinstance(value, dict):
        return {key: _masked(value[key]) for key in sorted(value)}  # a fixed order, whatever the wire's
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def desired_state(evaluation: offline.Evaluation, stack: str) -> dict[str, Any]:
    """Every resource with its type, parent, provider, dependencies and inputs; the reads; the outputs."""
    names = {r.urn: r.name for r in evaluation.registrations}

    def name_of(urn: str) -> str:
        return names.get(urn, urn.split("::")[-1])

    resources = []
    for r in sorted(evaluation.registrations, key=lambda r: r.name):
        resource: dict[str, Any] = {"name": r.name, "type": r.type}
        if r.parent in names:
            resource["parent"] = names[r.parent]
        if r.provider:
            resource["provider"] = name_of(r.provider.rsplit("::", 1)[0])  # a reference is `<urn>::<id>`
        resource["dependsOn"] = sorted({name_of(urn) for urn in r.dependencies})
        resource["inputs"] = _masked(r.inputs)
        resources.append(resource)
    return {
        "stack": stack,
        "resources": resources,
        "reads": sorted(f"{r.type} {r.name}" for r in evaluation.monitor.reads),
        "outputs": {
            name: SECRET_MARKER if name in evaluation.secret_outputs else _masked(value)
            for name, value in sorted(evaluation.outputs.items())
        },
    }


def summary(state: dict[str, Any]) -> str:
    """One line a stack: what it registers, and the Argo CD hand-off it applies."""
    kinds = Counter(resource["type"].split(":")[0] for resource in state["resources"])
    counted = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    stack_outputs = state["outputs"]
    versions = stack_outputs.get(outputs.CHART_VERSIONS, {})
    charts = ", ".join(f"{chart} {version}" for chart, version in sorted(versions.items()))
    return (
        f"{state['stack']}: {len(state['resources'])} resources ({counted}); "
        f"Argo CD createSecret={str(stack_outputs.get(outputs.ARGOCD_CREATE_SECRET)).lower()}; charts {charts}"
    )


def render(state: dict[str, Any]) -> str:
    """Deterministic YAML (same input, same bytes), headed by the summary as a comment."""
    body = yaml.safe_dump(state, sort_keys=False, default_flow_style=False, width=1000)
    return f"# {summary(state)}\n{body}"


def evaluate_stack(
    program_dir: Path, stack: str, new_stack: bool = False, config: Mapping[str, Any] | None = None
) -> offline.Evaluation:
    """Evaluate a stack with placeholder 1Password (and `config` overrides); a stack that follows a
    primary reads the primary's outputs from a converged plan of the primary's own stack file."""
    other_stacks = {}
    primary = offline.stack_config(program_dir, stack).get(f"{offline.PROJECT}:primaryStack", "")
    if primary:
        primary_stack = primary.split("/")[-1]
        if primary_stack == stack or not (program_dir / f"Pulumi.{primary_stack}.yaml").exists():
            raise PlanError(f"{stack} follows {primary}, whose stack file Pulumi.{primary_stack}.yaml is not here")
        followed = evaluate_stack(program_dir, primary_stack)
        other_stacks[primary] = offline.StackOutputs(followed.outputs, frozenset(followed.secret_outputs))
    monitor = offline.recording_monitor(None, None if new_stack else CONVERGED, other_stacks)
    return offline.evaluate(program_dir, stack, monitor, config)


def plan(program_dir: Path, stack: str, new_stack: bool = False) -> str:
    """The rendered desired state of `stack` for the program in `program_dir`.

    By default the stack is taken to have converged (the Argo CD hand-off done); `new_stack`
    plans the first deployment instead.
    """
    return render(desired_state(evaluate_stack(program_dir, stack, new_stack), stack))


def plan_in_subprocess(program_dir: Path, stack: str, new_stack: bool) -> str:
    """Plan in a fresh interpreter, so that two versions of the program never share imported modules."""
    command = [sys.executable, "-m", "cluster_secrets", "plan", stack, "--program-dir", str(program_dir)]
    if new_stack:
        command.append("--new-stack")
    tool_root = Path(__file__).resolve().parent.parent
    result = subprocess.run(command, cwd=tool_root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlanError(f"plan of {stack} in {program_dir} failed:\n{result.stderr.strip()}")
    return result.stdout


def diff(base: str, head: str, stack: str) -> str:
    """A unified diff of two rendered plans, empty where they are the same."""
    return "".join(
        difflib.unified_diff(
            base.splitlines(keepends=True),
            head.splitlines(keepends=True),
            fromfile=f"base/{stack}",
            tofile=f"head/{stack}",
        )
    )


def export_tree(repository: Path, ref: str, into: Path) -> None:
    """The files of `ref` (a commit, branch or tag) of the git repository, written under `into`."""
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=repository, capture_output=True, check=False)
    if archive.returncode != 0:
        raise PlanError(f"git could not read {ref!r}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def diff_against(repository: Path, ref: str, stack: str, new_stack: bool = False) -> str:
    """A PR comment section: how the desired state of `stack` changes from `ref` to the working tree."""
    head = plan_in_subprocess(repository, stack, new_stack)
    with tempfile.TemporaryDirectory() as base_dir:
        export_tree(repository, ref, Path(base_dir))
        stack_existed = (Path(base_dir) / f"Pulumi.{stack}.yaml").exists()
        base = plan_in_subprocess(Path(base_dir), stack, new_stack) if stack_existed else ""
    changes = diff(base, head, stack)
    lines = [f"#### Stack `{stack}`", ""]
    lines.append(f"- base `{ref}`: " + (base.splitlines()[0].removeprefix("# ") if base else "no such stack"))
    lines.append("- head: " + head.splitlines()[0].removeprefix("# "))
    lines.append("")
    lines += ["```diff", changes.rstrip("\n"), "```"] if changes else ["No change to the desired state."]
    return "\n".join(lines) + "\n"

"""The desired state of a stack: the program evaluated offline into every resource it asks for.

The first step of `plan`: config and the primary stack are resolved, the program runs under
Pulumi's mocks (cluster_secrets/offline.py), and the result is every resource with its type,
parent, provider, dependencies and inputs, secrets replaced by a marker. Rendering charts
(render.py) and formatting and diffing (plan.py) come after it and never call back.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster_secrets import offline
from cluster_secrets.errors import UsageError
from cluster_secrets.stack_files import project_values, stack_config
from components import outputs
from components.config import StackConfig, load_config

SECRET_MARKER = "[secret]"

# Outputs that a synced previous deployment exported: the plan of a stack that has converged.
CONVERGED = {outputs.ARGOCD_CREATE_SECRET: False, outputs.ARGOCD_SECRET_SYNCED: True}


@dataclass(frozen=True)
class DesiredState:
    state: dict[str, Any]  # stack, resources, reads, outputs; every secret is SECRET_MARKER
    warnings: list[str]  # what `pulumi preview` would warn about
    stand_ins: list[str]  # the 1Password reads that placeholders answered
    config: StackConfig  # the stack's own config, validated


def masked(value: Any) -> Any:
    """Secrets replaced by a marker, keys sorted, protobuf's doubles back to integers where whole."""
    if offline.is_secret(value):
        return SECRET_MARKER
    if isinstance(value, dict):
        return {key: masked(value[key]) for key in sorted(value)}  # a fixed order, whatever the wire's
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def evaluate_stack(
    program_dir: Path, stack: str, new_stack: bool = False, config: Mapping[str, Any] | None = None
) -> offline.Evaluation:
    """Evaluate a stack with placeholder 1Password (and `config` overrides); a stack that follows a
    primary reads the primary's outputs from a converged evaluation of the primary's own stack file.

    The config is validated first, so a bad stack file is reported whole, before the primary is read.
    """
    values = stack_config(program_dir, stack, config)  # read once: YAML 1.2 parsing is the slow part
    validated = load_config(project_values(values), stack)
    primary = validated.primary_stack
    other_stacks = {}
    if primary:
        primary_stack = primary.split("/")[-1]
        if not (program_dir / f"Pulumi.{primary_stack}.yaml").exists():
            raise UsageError(f"{stack} follows {primary}, whose stack file Pulumi.{primary_stack}.yaml is not here")
        followed = evaluate_stack(program_dir, primary_stack)
        other_stacks[primary] = offline.StackOutputs(followed.outputs, frozenset(followed.secret_outputs))
    monitor = offline.recording_monitor(None, None if new_stack else CONVERGED, other_stacks)
    evaluation = offline.evaluate(program_dir, stack, monitor, values)
    evaluation.config = validated
    return evaluation


def state_of(evaluation: offline.Evaluation, stack: str) -> dict[str, Any]:
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
        resource["inputs"] = masked(r.inputs)
        resources.append(resource)
    return {
        "stack": stack,
        "resources": resources,
        "reads": sorted(f"{r.type} {r.name}" for r in evaluation.monitor.reads),
        "outputs": {
            name: SECRET_MARKER if name in evaluation.secret_outputs else masked(value)
            for name, value in sorted(evaluation.outputs.items())
        },
    }


def stand_ins(evaluation: offline.Evaluation) -> list[str]:
    """The 1Password reads of this evaluation, each answered by a placeholder, in order."""
    reads = []
    for token, args in evaluation.monitor.invokes:
        if token == "onepassword:index/getVault:getVault":
            reads.append(f"vault {args['name']}")
        elif token == "onepassword:index/getItem:getItem":
            reads.append(f"item {args['title']} in vault {args['vault'].removeprefix(offline.UUID_PREFIX)}")
    return reads


def of_stack(program_dir: Path, stack: str, new_stack: bool = False) -> DesiredState:
    """The desired state of `stack` for the program in `program_dir`.

    By default the stack is taken to have converged (the Argo CD hand-off done); `new_stack`
    plans the first deployment instead.
    """
    evaluation = evaluate_stack(program_dir, stack, new_stack)
    warnings = [message for severity, message in evaluation.monitor.log.messages if severity == "warning"]
    assert evaluation.config is not None  # evaluate_stack validated it
    return DesiredState(state_of(evaluation, stack), warnings, stand_ins(evaluation), evaluation.config)

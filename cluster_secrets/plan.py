"""Formatting and diffing of desired states (desired.py): the text `plan` prints, and how two differ.

This is what the program asks for, evaluated with Pulumi's mocks: no cluster, no 1Password, no
Pulumi CLI. It is not a diff against the live cluster (that is `pulumi preview`).
"""

import difflib
from collections import Counter
from typing import Any

import yaml

from components import outputs


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


def format_plan(state: dict[str, Any]) -> str:
    """Deterministic YAML (same input, same bytes), headed by the summary as a comment."""
    body = yaml.safe_dump(state, sort_keys=False, default_flow_style=False, width=1000)
    return f"# {summary(state)}\n{body}"


def diff(base: str, head: str, base_label: str, head_label: str) -> str:
    """A unified diff of two formatted plans, each side labelled, empty where they are the same."""
    return "".join(
        difflib.unified_diff(
            base.splitlines(keepends=True), head.splitlines(keepends=True), fromfile=base_label, tofile=head_label
        )
    )

"""`plan --diff REF`: how the desired state of a stack changed since a git ref, as a PR comment section.

The base is planned with its own code: the files of REF, exported with `git archive` and planned by
this tool in a fresh interpreter, so two versions of the program never share imported modules.
"""

import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import yaml

from cluster_secrets import plan, upgrade_guard
from cluster_secrets.errors import UsageError
from components import outputs

TOOL_ROOT = Path(__file__).resolve().parent.parent


def export_tree(repository: Path, ref: str, into: Path) -> None:
    """The files of `ref` (a commit, branch or tag) of the git repository, written under `into`."""
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=repository, capture_output=True, check=False)
    if archive.returncode != 0:
        raise UsageError(f"git could not read {ref!r}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def plan_in_subprocess(program_dir: Path, stack: str, options: list[str]) -> str:
    """`plan STACK` of the program in `program_dir`, by this tool in a fresh interpreter."""
    command = [sys.executable, "-m", "cluster_secrets", "plan", stack, "--program-dir", str(program_dir), *options]
    result = subprocess.run(command, cwd=TOOL_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UsageError(f"plan of {stack} in {program_dir} failed:\n{result.stderr.strip()}")
    return result.stdout


def upgrade_warnings(base: str, head: str) -> list[str]:
    """The upgrade guard's warnings about the ESO chart's jump from the base plan to the head plan: offline,
    the pinned versions are all there is to go by (`preview` checks the live cluster)."""
    versions = [
        ((yaml.safe_load(text) or {}).get("outputs") or {}).get(outputs.CHART_VERSIONS) or {} for text in (base, head)
    ]
    base_eso, head_eso = (str(v.get("externalSecrets") or "") for v in versions)
    return upgrade_guard.jump_warnings(base_eso, head_eso, upgrade_guard.ESO_KEY)


def diff_against(
    repository: Path, ref: str, stack: str, head: str, options: list[str], warn: Callable[[str], None]
) -> str:
    """A PR comment section: how the plan of `stack` (`head`, planned with `options`) differs from REF's,
    with the upgrade guard's warnings (also handed to `warn`)."""
    with tempfile.TemporaryDirectory() as base_dir:
        export_tree(repository, ref, Path(base_dir))
        stack_existed = (Path(base_dir) / f"Pulumi.{stack}.yaml").exists()
        base = plan_in_subprocess(Path(base_dir), stack, options) if stack_existed else ""
    changes = plan.diff(base, head, f"{ref}/{stack}", f"head/{stack}")
    lines = [f"#### Stack `{stack}`", ""]
    lines.append(f"- base `{ref}`: " + (base.splitlines()[0].removeprefix("# ") if base else "no such stack"))
    lines.append("- head: " + head.splitlines()[0].removeprefix("# "))
    for warning in upgrade_warnings(base, head):
        warn(warning)
        lines.append(f"- warning: {warning}")
    lines.append("")
    lines += ["```diff", changes.rstrip("\n"), "```"] if changes else ["No change to the desired state."]
    return "\n".join(lines) + "\n"

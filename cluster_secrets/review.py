"""`plan --diff REF`: how the desired state of a stack changed since a git ref, as a PR comment section.

The base is planned with its own code: the files of REF, exported with `git archive` and planned by
this tool in a fresh interpreter, so two versions of the program never share imported modules.
"""

import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from cluster_secrets import plan
from cluster_secrets.errors import UsageError

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


def diff_against(repository: Path, ref: str, stack: str, head: str, options: list[str]) -> str:
    """A PR comment section: how the plan of `stack` (`head`, planned with `options`) differs from REF's."""
    with tempfile.TemporaryDirectory() as base_dir:
        export_tree(repository, ref, Path(base_dir))
        stack_existed = (Path(base_dir) / f"Pulumi.{stack}.yaml").exists()
        base = plan_in_subprocess(Path(base_dir), stack, options) if stack_existed else ""
    changes = plan.diff(base, head, f"{ref}/{stack}", f"head/{stack}")
    lines = [f"#### Stack `{stack}`", ""]
    lines.append(f"- base `{ref}`: " + (base.splitlines()[0].removeprefix("# ") if base else "no such stack"))
    lines.append("- head: " + head.splitlines()[0].removeprefix("# "))
    lines.append("")
    lines += ["```diff", changes.rstrip("\n"), "```"] if changes else ["No change to the desired state."]
    return "\n".join(lines) + "\n"

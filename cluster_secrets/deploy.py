"""`up`, `preview` and `destroy` through Pulumi's Automation API. Thin glue: the decisions are in
converge.py, and the tests run this against a fake `pulumi` executable.

The Automation API drives the Pulumi CLI, which must be installed; nothing here downloads it.
"""

import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from cluster_secrets import converge
from cluster_secrets.errors import UsageError
from cluster_secrets.stack_files import project_values, read_yaml, stack_config, stack_file
from components.config import StackConfig, load_config
from components.errors import ConfigError

LOCAL_STATE_DIR = ".pulumi-state"
INSTALL_HINT = (
    "The Pulumi CLI is not on PATH. Install it (https://www.pulumi.com/docs/iac/download-install/, "
    "for example `curl -fsSL https://get.pulumi.com | sh` or `brew install pulumi/tap/pulumi`), then run this again. "
    "Without it, `./cluster-secrets plan STACK` shows the desired state offline."
)

Print = Callable[[str], None]


class CliMissing(Exception):
    """No Pulumi CLI on PATH: exit code 127, with INSTALL_HINT."""


@dataclass(frozen=True)
class Backend:
    url: str
    embedded: bool  # the default file backend inside the project, chosen by this tool


def choose_backend(project_dir: Path, environ: Mapping[str, str]) -> Backend:
    """The configured backend (PULUMI_BACKEND_URL, or `backend.url` in Pulumi.yaml), else a file
    backend inside the project, so a first run needs no account."""
    configured = environ.get("PULUMI_BACKEND_URL")
    if not configured:
        configured = ((read_yaml(project_dir / "Pulumi.yaml") or {}).get("backend") or {}).get("url")
    if configured:
        return Backend(configured, embedded=False)
    return Backend((project_dir / LOCAL_STATE_DIR).as_uri(), embedded=True)


def uses_passphrase(backend: Backend) -> bool:
    """DIY backends keep secrets with the passphrase provider here; Pulumi Cloud uses its own."""
    return not backend.url.startswith(("https://", "http://"))


def check_legacy_file_backend(backend: Backend) -> None:
    """FACTS.md (Pulumi): a file backend in the legacy (non-project) layout rejects the
    `organization/<project>/<stack>` names this program reads its own and its primary's outputs by.
    Pulumi marks the project layout with `.pulumi/meta.yaml` at version 1; a store with stacks and
    no such mark is legacy (pulumi/pulumi pkg/backend/diy/meta.go)."""
    if not backend.url.startswith("file://"):
        return
    state = Path(backend.url.removeprefix("file://")) / ".pulumi"
    stacks = state / "stacks"
    if not stacks.is_dir() or not any(stacks.iterdir()):
        return
    meta = read_yaml(state / "meta.yaml") if (state / "meta.yaml").exists() else None
    if not (isinstance(meta, dict) and meta.get("version", 0) >= 1):
        raise UsageError(
            f"The file backend {backend.url} uses Pulumi's legacy layout, which cannot resolve the stack names "
            f"this program reads (organization/<project>/<stack>). Run `pulumi login {backend.url} && pulumi "
            "state upgrade` once, then run this again."
        )


def check_stack_file(project_dir: Path, stack: str, command: str) -> StackConfig | None:
    """The stack file as Pulumi would read it, and for up and preview its config as the program
    would validate it: bad input stops here, before Pulumi starts, with exit code 2. `destroy`
    checks the YAML only (and returns None), so a stack whose config no longer validates can still
    be destroyed."""
    values = stack_config(project_dir, stack)
    return None if command == "destroy" else load_config(project_values(values), stack)


def check_environment(project_dir: Path, stack: str, backend: Backend, environ: Mapping[str, str]) -> None:
    """Everything a run needs from this machine, checked before Pulumi starts."""
    stack_file(project_dir, stack)
    check_legacy_file_backend(backend)
    if uses_passphrase(backend) and not (
        environ.get("PULUMI_CONFIG_PASSPHRASE") or environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    ):
        raise UsageError(
            f"The backend {backend.url} keeps secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE "
            "(or PULUMI_CONFIG_PASSPHRASE_FILE) in the environment. Keep it safe; the stack's secrets "
            "cannot be read without it."
        )


def open_stack(
    project_dir: Path, stack: str, environ: Mapping[str, str], say: Print, create: bool = True
) -> auto.Stack:
    """The stack on its backend; created when missing unless `create` is False (then a UsageError)."""
    backend = choose_backend(project_dir, environ)
    check_environment(project_dir, stack, backend, environ)
    if shutil.which("pulumi", path=environ.get("PATH")) is None:
        raise CliMissing(INSTALL_HINT)
    if backend.embedded:
        (project_dir / LOCAL_STATE_DIR).mkdir(exist_ok=True)
        say(f"State: {backend.url} (set PULUMI_BACKEND_URL to use another backend)")
    options = auto.LocalWorkspaceOptions(
        work_dir=str(project_dir),
        env_vars={"PULUMI_BACKEND_URL": backend.url},
        secrets_provider="passphrase" if uses_passphrase(backend) else None,
    )
    if create:
        return auto.create_or_select_stack(stack, work_dir=str(project_dir), opts=options)
    try:
        return auto.select_stack(stack, work_dir=str(project_dir), opts=options)
    except auto.StackNotFoundError:
        raise UsageError(f"stack {stack} does not exist in {backend.url}: run ./cluster-secrets up {stack}.") from None


def plain_outputs(output_map: Mapping[str, auto.OutputValue]) -> dict[str, Any]:
    return {name: output.value for name, output in output_map.items()}


class Progress:
    """Prints the engine's events as they come, with the elapsed time and the current step."""

    def __init__(self, say: Print, step: str):
        self.say = say
        self.started = time.monotonic()
        self.step = step

    def __call__(self, event: auto.EngineEvent) -> None:
        text = converge.describe_event(event)
        if text is not None:
            self.say(converge.progress_line(time.monotonic() - self.started, self.step, text))


def up(project_dir: Path, stack_name: str, environ: Mapping[str, str], say: Print, mode: str) -> int:
    """`pulumi up`, repeated until the Argo CD hand-off is complete (at most MAX_RUNS runs); `mode`
    is the stack's argocdCreateSecret."""
    stack = open_stack(project_dir, stack_name, environ, say)
    before = converge.phase_of(plain_outputs(stack.outputs()))
    say(f"Stack {stack_name}: {before.value}.")
    progress = Progress(say, "")
    runs: list[converge.RunReport] = []
    while True:
        progress.step = f"run {len(runs) + 1} from {before.name.lower().replace('_', ' ')}"
        started = time.monotonic()
        result = stack.up(on_event=progress)
        after = converge.phase_of(plain_outputs(result.outputs))
        runs.append(converge.RunReport(time.monotonic() - started, result.summary.resource_changes or {}, after))
        step = converge.next_step(mode, len(runs), before, after)
        say(step.message)
        if not step.run_again:
            break
        before = after
    say(converge.up_summary(stack_name, runs))
    return step.exit_code


def preview(project_dir: Path, stack_name: str, environ: Mapping[str, str], say: Print) -> int:
    stack = open_stack(project_dir, stack_name, environ, say)
    result = stack.preview(on_event=Progress(say, "preview"))
    say(f"Preview of {stack_name}: {converge.format_changes(result.change_summary)}.")
    return converge.EXIT_OK


def destroy(project_dir: Path, stack_name: str, environ: Mapping[str, str], say: Print) -> int:
    stack = open_stack(project_dir, stack_name, environ, say)
    result = stack.destroy(on_event=Progress(say, "destroy"))
    say(f"Destroyed {stack_name}: {converge.format_changes(result.summary.resource_changes or {})}.")
    say(
        "The CRDs stay in the cluster on purpose: ESO's and Argo CD's (helm.sh/resource-policy: keep) and "
        "Connect's OnePasswordItem (Helm never deletes a chart's crds/); delete them by hand if you mean to."
    )
    return converge.EXIT_OK


def run(
    command: str,
    project_dir: Path,
    stack: str,
    say: Print,
    environ: Mapping[str, str] | None = None,
    complain: Print | None = None,
) -> int:
    """Run a command and map every failure to a clear message (`complain`, stderr by default) and
    an exit code a script can rely on."""
    complain = complain or (lambda line: print(line, file=sys.stderr, flush=True))
    environ = os.environ if environ is None else environ
    try:
        # The stack file is read and validated once, here; `up` takes its mode from it.
        config = check_stack_file(project_dir, stack, command)
        if command == "up":
            assert config is not None  # validated for every command but destroy
            return up(project_dir, stack, environ, say, config.argocd_create_secret)
        return {"preview": preview, "destroy": destroy}[command](project_dir, stack, environ, say)
    except (UsageError, ConfigError) as error:
        complain(f"error: {error}")
        return converge.EXIT_USAGE
    except CliMissing as error:
        complain(f"error: {error}")
        return converge.EXIT_NO_CLI
    except auto.CommandError as error:
        complain(f"error: pulumi {command} failed:\n{error}")
        return converge.EXIT_FAILED

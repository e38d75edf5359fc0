"""`up`, `preview` and `destroy` through Pulumi's Automation API. Thin glue: the decisions are in
converge.py, and the tests run this against a fake `pulumi` executable.

The Automation API drives the Pulumi CLI, which must be installed; nothing here downloads it.
"""

import functools
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pulumi import automation as auto

from cluster_secrets import converge, preflight, recovery, synced
from cluster_secrets.charts import ChartError
from cluster_secrets.errors import UsageError
from cluster_secrets.kube import Cluster, ClusterError, KubeCluster, eso_version, kubeconfig_file
from cluster_secrets.onepassword import OnePasswordError
from cluster_secrets.stack_files import project_values, read_yaml, stack_config, stack_file
from components import outputs
from components.admin_secret import SECRET_ITEM
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
class Checks:
    """What the tool checks around Pulumi's runs: the preflight before each command (preflight.py),
    and after `up` that the cluster holds what was deployed (synced.py). Tests give fakes."""

    preflight: Callable[[auto.Stack, StackConfig | None, str, Mapping[str, str], Print], None] = preflight.check
    cluster: Callable[[str, str], Cluster] = KubeCluster
    wait_seconds: float = synced.WAIT_SECONDS


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


class Drifted(Exception):
    """`preview --expect-no-changes` would change the stack: exit code 1."""


class Interrupted(Exception):
    """A run stopped by Ctrl-C or SIGTERM: exit code 130, with the state it left and how to go on."""


def open_for_run(project_dir: Path, stack_name: str, environ: Mapping[str, str], say: Print) -> auto.Stack:
    """The stack, for a run that changes it: a lock left by a killed run of this machine is cleared,
    and a run that holds the stack stops this one before anything is read or changed."""
    stack = open_stack(project_dir, stack_name, environ, say)
    recovery.check_unlocked(choose_backend(project_dir, environ).url, stack_name, say)
    return stack


def interrupted_report(stack: auto.Stack, command: str, say: Print) -> str:
    """What an interrupted run left: the state's size, its unfinished operations, the hand-off phase."""
    deployment = preflight.StateFile(stack, say).export().get("deployment") or {}
    pending = recovery.pending_operations(deployment)
    phase = converge.phase_of(plain_outputs(stack.outputs()))
    left = recovery.pending_message(stack.name, pending) if pending else "Nothing was left unfinished."
    return (
        f"Interrupted: `{command}` of stack {stack.name} stopped; Pulumi recorded what it had done "
        f"({len(deployment.get('resources') or [])} resources in the state). {left}\n"
        f"Hand-off phase: {phase.value} (an interrupted run never advances it).\n"
        f"Continue with: ./cluster-secrets {command} {stack.name}"
        + (" (it settles the unfinished operations first)" if pending and command == "up" else "")
    )


T = TypeVar("T")


def pulumi_run(stack: auto.Stack, command: str, progress: "Progress", call: Callable[..., T]) -> T:
    """One Automation API call (`call(on_event=...)`) that a Ctrl-C cancels gracefully (recovery.py);
    a lock held by another run and an interruption become the tool's own errors."""

    def run(interrupts: recovery.Interrupts) -> T:
        def on_event(event: auto.EngineEvent) -> None:
            interrupts.seen(event)
            progress(event)

        return call(on_event=on_event)

    try:
        return recovery.cancellable(progress.say, run)
    except recovery.Cancelled:
        raise Interrupted(interrupted_report(stack, command, progress.say)) from None
    except auto.CommandError as error:
        if recovery.is_locked_error(error):
            backend = stack.workspace.env_vars.get("PULUMI_BACKEND_URL", "")
            locks = recovery.stack_locks(backend, stack.name)
            raise UsageError(recovery.locked_message(stack.name, backend, locks)) from None
        raise


def run_preflight(
    stack: auto.Stack, config: StackConfig | None, command: str, environ: Mapping[str, str], say: Print, checks: Checks
) -> None:
    """The preflight (preflight.py), whose own Pulumi commands (a refresh, an import) a Ctrl-C cancels
    as gracefully as the run's, and reports the same way."""
    try:
        checks.preflight(stack, config, command, environ, say)
    except recovery.Cancelled:
        raise Interrupted(interrupted_report(stack, command, say)) from None


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


def confirm_synced(
    config: StackConfig, stack_outputs: Mapping[str, Any], environ: Mapping[str, str], say: Print, checks: Checks
) -> int:
    """After a converged `up`: EXIT_OK once the cluster holds what was deployed (synced.py)."""
    mtime = stack_outputs.get(outputs.ARGOCD_ADMIN_PASSWORD_MTIME)
    version = eso_version(stack_outputs)
    if not mtime or version is None:
        return converge.EXIT_OK
    target = synced.Target(
        store=str(stack_outputs.get(outputs.SECRET_STORE_NAME) or config.secret_store_name),
        namespace=str(stack_outputs.get(outputs.ARGOCD_NAMESPACE) or config.argocd_namespace),
        eso_version=version,
        mtime=str(mtime),
        digests=(stack_outputs.get(outputs.ARGOCD_ITEM_DIGESTS) or {}).get(SECRET_ITEM),
    )
    try:
        cluster = checks.cluster(kubeconfig_file(config.kubeconfig_path, environ), config.kube_context)
    except (ClusterError, UsageError) as error:
        say(f"Could not read the cluster to confirm that it holds what was deployed: {error}")
        return converge.EXIT_NOT_CONVERGED
    outcome = synced.wait_until_synced(cluster, target, say, checks.wait_seconds)
    say(outcome.message)
    return converge.EXIT_OK if outcome.synced else converge.EXIT_NOT_CONVERGED


def up(
    project_dir: Path, stack_name: str, environ: Mapping[str, str], say: Print, config: StackConfig, checks: Checks
) -> int:
    """`pulumi up`, repeated until the Argo CD hand-off is complete (at most MAX_RUNS runs), then
    confirmed in the cluster."""
    mode = config.argocd_create_secret
    stack = open_for_run(project_dir, stack_name, environ, say)
    run_preflight(stack, config, "up", environ, say, checks)
    before = converge.phase_of(plain_outputs(stack.outputs()))
    say(f"Stack {stack_name}: {before.value}.")
    progress = Progress(say, "")
    runs: list[converge.RunReport] = []
    while True:
        progress.step = f"run {len(runs) + 1} from {before.name.lower().replace('_', ' ')}"
        started = time.monotonic()
        result = pulumi_run(stack, "up", progress, stack.up)
        stack_outputs = plain_outputs(result.outputs)
        after = converge.phase_of(stack_outputs)
        runs.append(converge.RunReport(time.monotonic() - started, result.summary.resource_changes or {}, after))
        step = converge.next_step(mode, len(runs), before, after)
        say(step.message)
        if not step.run_again:
            break
        before = after
    code = step.exit_code
    if code == converge.EXIT_OK:
        code = confirm_synced(config, stack_outputs, environ, say, checks)
    say(converge.up_summary(stack_name, runs))
    return code


def preview(
    project_dir: Path,
    stack_name: str,
    environ: Mapping[str, str],
    say: Print,
    config: StackConfig,
    checks: Checks,
    refresh: bool = False,
    expect_no_changes: bool = False,
) -> int:
    """`pulumi preview`; with `refresh`, against the cluster and 1Password as they are (Pulumi reads
    every resource first), and with `expect_no_changes` failing (exit 1) when it would change anything:
    the scheduled drift check."""
    stack = open_for_run(project_dir, stack_name, environ, say)
    run_preflight(stack, config, "preview", environ, say, checks)
    call = functools.partial(stack.preview, refresh=refresh or None, expect_no_changes=expect_no_changes or None)
    try:
        result = pulumi_run(stack, "preview", Progress(say, "preview"), call)
    except auto.CommandError as error:
        # pkg/backend/backenderr: "no changes were expected [for X] but changes were proposed"
        if expect_no_changes and "no changes were expected" in str(error):
            raise Drifted(
                f"stack {stack_name} has drifted: the preview above would change it. "
                f"`./cluster-secrets up {stack_name}` applies it again."
            ) from None
        raise
    say(f"Preview of {stack_name}: {converge.format_changes(result.change_summary)}.")
    return converge.EXIT_OK


def destroy(project_dir: Path, stack_name: str, environ: Mapping[str, str], say: Print, checks: Checks) -> int:
    stack = open_for_run(project_dir, stack_name, environ, say)
    run_preflight(stack, None, "destroy", environ, say, checks)
    result = pulumi_run(stack, "destroy", Progress(say, "destroy"), stack.destroy)
    say(f"Destroyed {stack_name}: {converge.format_changes(result.summary.resource_changes or {})}.")
    say(
        "The CRDs stay in the cluster on purpose: ESO's and Argo CD's (helm.sh/resource-policy: keep) and "
        "Connect's OnePasswordItem (Helm never deletes a chart's crds/); delete them by hand if you mean to."
    )
    return converge.EXIT_OK


def guarded(command: str, action: Callable[[], int], complain: Print | None = None) -> int:
    """Run `action` (a command of the tool) and map every failure to a clear message (`complain`,
    stderr by default) and an exit code a script can rely on."""
    complain = complain or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        return action()
    except (UsageError, ConfigError) as error:
        complain(f"error: {error}")
        return converge.EXIT_USAGE
    except CliMissing as error:
        complain(f"error: {error}")
        return converge.EXIT_NO_CLI
    except Interrupted as error:
        complain(str(error))
        return converge.EXIT_INTERRUPTED
    except recovery.Cancelled:
        complain(f"Interrupted: `{command}` stopped; Pulumi recorded what it had done. Run it again to go on.")
        return converge.EXIT_INTERRUPTED
    except KeyboardInterrupt:
        # Raised only where no Pulumi command runs (recovery.pulumi_cancels_gracefully): nothing in flight.
        complain(f"Interrupted: `{command}` stopped while no Pulumi command ran; run it again to go on.")
        return converge.EXIT_INTERRUPTED
    except auto.CommandError as error:
        complain(f"error: pulumi {command} failed:\n{error}")
        return converge.EXIT_FAILED
    except (OnePasswordError, ClusterError, ChartError, Drifted) as error:
        complain(f"error: {error}")
        return converge.EXIT_FAILED


def run(
    command: str,
    project_dir: Path,
    stack: str,
    say: Print,
    environ: Mapping[str, str] | None = None,
    complain: Print | None = None,
    checks: Checks | None = None,
    preview_options: Mapping[str, bool] | None = None,
) -> int:
    """`up`, `preview` (with `preview_options`: refresh, expect_no_changes) or `destroy` of `stack`,
    its failures mapped by `guarded`."""
    known = os.environ if environ is None else environ
    chosen = checks or Checks()

    def action() -> int:
        # The stack file is read and validated once, here.
        config = check_stack_file(project_dir, stack, command)
        if command == "destroy":
            return destroy(project_dir, stack, known, say, chosen)
        assert config is not None  # validated for every command but destroy
        if command == "preview":
            return preview(project_dir, stack, known, say, config, chosen, **(preview_options or {}))
        return up(project_dir, stack, known, say, config, chosen)

    return guarded(command, action, complain)

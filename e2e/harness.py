"""What the e2e scenarios share: a throwaway copy of the project, the e2e stack files, the environment
of a run, running the real `./cluster-secrets`, reading outputs, ESO's "kubelet", and the figures.

Secrets: values read from the stand-in, the cluster or stack outputs are wrapped in `Secret`, whose
repr is a placeholder, so that a failing assertion or a log line cannot print them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cluster_secrets.kube import ESO_GROUP, eso_version
from e2e import controlplane
from e2e.controlplane import Cluster, HostProcess
from e2e.plugin_schemas import describe_plugin

ROOT = Path(__file__).resolve().parent.parent
CACHE = controlplane.CACHE
BIN = controlplane.BIN
PULUMI_HOME = CACHE / "pulumi-home"
PROJECT = "cluster-secrets"
SDK_VERSION = "3.272.0"  # requirements.txt's pulumi

CONNECT_HOST_NAME = "onepassword-connect.onepassword.svc.cluster.local"
CONNECT_STANDIN = "http://127.0.0.2:8080"
PULUMI_CLIENT = "pulumi"  # the Connect stand-in's name for the onepassword plugin's token

# What must exist before any scenario can run: binaries from e2e/build-tools, and the provider
# plugins in folders of the Python packages' versions (the engine wants an exact match). kubernetes,
# onepassword and time are built by e2e/build-tools; random is a stand-in (e2e/standin_providers.py).
REQUIRED_BINARIES = (
    "pulumi",
    "pulumi-language-python",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "external-secrets-v0.12.1",
)
PLUGINS = (("kubernetes", "4.34.2"), ("random", "4.21.4"), ("time", "0.1.1"), ("onepassword", "1.2.1"))

# The e2e stacks are the homelab stacks except these keys; e2e/README.md gives each reason.
ESO_VALUES = {
    "webhook": {"create": False},
    "certController": {"create": False},
    "crds": {"conversion": {"enabled": False}},
}


def plugin_binary(name: str, version: str) -> Path:
    return PULUMI_HOME / "plugins" / f"resource-{name}-v{version}" / f"pulumi-resource-{name}"


def missing_tools() -> list[str]:
    missing = [name for name in REQUIRED_BINARIES if not os.access(BIN / name, os.X_OK)]
    for name, version in PLUGINS:
        if not os.access(plugin_binary(name, version), os.X_OK):
            missing.append(f"pulumi-resource-{name} v{version}")
    return missing


class Secret:
    """A secret value that compares by value and never shows itself (repr, str, f-strings)."""

    __slots__ = ("value",)

    def __init__(self, value: str | bytes):
        self.value = value.decode() if isinstance(value, bytes) else value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self.value.encode(), other.value.encode())

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def secret_data(secret: Mapping[str, Any]) -> dict[str, Secret]:
    """A Kubernetes Secret's data, decoded and wrapped."""
    return {key: Secret(base64.b64decode(value)) for key, value in (secret.get("data") or {}).items()}


# --- the project copy and its stacks ---------------------------------------------------------


def copy_project(dest: Path) -> Path:
    """The work tree's files as git sees them (tracked and new, not ignored), without e2e/, and a
    `.venv` link to the work tree's: runs leave their state and stack files here, not in the tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if name.startswith("e2e/") or not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    ensure_eso_values(dest)
    return dest


def supports_eso_values(project: Path) -> bool:
    return "esoValues:" in (project / "Pulumi.yaml").read_text()


def ensure_eso_values(project: Path) -> None:
    """Until the program has the `esoValues` key, turn ESO's webhooks off in the copy's code (never
    in the work tree): with nothing serving them, the API server would refuse the store."""
    if supports_eso_values(project):
        return
    path = project / "components" / "external_secrets.py"
    old = 'return {"installCRDs": True, "crds": {"annotations": dict(KEEP)}}'
    new = (
        'return {"installCRDs": True, "crds": {"annotations": dict(KEEP), "conversion": {"enabled": False}},'
        ' "webhook": {"create": False}, "certController": {"create": False}}'
    )
    text = path.read_text()
    if old not in text:
        raise RuntimeError("cannot turn ESO's webhooks off: no esoValues key and eso_values() changed")
    path.write_text(text.replace(old, new))


def stack_differences(cluster: Cluster, charts_url: str, project: Path) -> dict[str, Any]:
    """The keys in which an e2e stack differs from the homelab stack file it copies."""
    differences: dict[str, Any] = {
        "kubeContext": cluster.context,
        "kubeconfigPath": str(cluster.kubeconfig),
        "connectChartRepo": charts_url,
        "esoChartRepo": charts_url,
        "argocdChartRepo": charts_url,
    }
    if supports_eso_values(project):
        differences["esoValues"] = ESO_VALUES
    return differences


def write_stack(project: Path, stack: str, base: str, settings: Mapping[str, Any]) -> None:
    """Pulumi.<stack>.yaml: Pulumi.<base>.yaml with `settings` (project keys without the prefix)."""
    config = yaml.safe_load((project / f"Pulumi.{base}.yaml").read_text())["config"]
    for key, value in settings.items():
        config[key if ":" in key else f"{PROJECT}:{key}"] = value
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))


def set_stack_keys(project: Path, stack: str, settings: Mapping[str, Any]) -> None:
    """Change keys of an existing stack file, keeping what Pulumi added (the encryption salt)."""
    path = project / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    for key, value in settings.items():
        document["config"][key if ":" in key else f"{PROJECT}:{key}"] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def pulumi_env(workdir: Path, pulumi_token: str) -> dict[str, str]:
    """The environment of every run: the suite's own CLI, plugins, state and Helm dirs; nothing is
    downloaded; the Pulumi provider talks to the stand-in."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "OP_", "HELM_", "KUBECONFIG"))}
    (workdir / "state").mkdir(parents=True, exist_ok=True)
    env = {
        **base,
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PULUMI_HOME": str(PULUMI_HOME),
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_BACKEND_URL": (workdir / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": secrets.token_hex(16),
        "OP_CONNECT_HOST": CONNECT_STANDIN,
        "OP_CONNECT_TOKEN": pulumi_token,
    }
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(workdir / "helm" / name.lower())
    if cli_version(env) != SDK_VERSION:
        # The CLI is the nearest release the module proxy serves; a newer CLI runs the older SDK.
        env["PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK"] = "true"
    return env


def cli_version(env: Mapping[str, str]) -> str:
    out = subprocess.run([str(BIN / "pulumi"), "version"], env=dict(env), capture_output=True, text=True, check=True)
    return out.stdout.strip().removeprefix("v")


# --- runs --------------------------------------------------------------------------------------


@dataclass
class Run:
    command: str
    code: int
    output: str
    seconds: float
    requests: dict[str, int]  # the Pulumi provider's 1Password requests during the run, by route

    @property
    def runs(self) -> int | None:
        """How many `pulumi up` runs the tool reported (`Stack X: N run(s)`)."""
        match = re.search(r"^Stack \S+: (\d+) run\(s\)", self.output, re.MULTILINE)
        return int(match.group(1)) if match else None


@dataclass
class Figures:
    """Measured figures, printed at the end of the session (conftest's terminal summary)."""

    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def run(self, label: str, run: Run) -> None:
        requests = ", ".join(f"{route} {n}" for route, n in run.requests.items()) or "none"
        self.lines.append(
            f"{label}: `{run.command}` exit {run.code}, {run.seconds:.1f}s; 1Password requests "
            f"{sum(run.requests.values())} ({requests})"
        )

    def note(self, line: str) -> None:
        self.lines.append(line)


FIGURES = Figures()


def run_tool(
    project: Path,
    command: str,
    stack: str,
    env: Mapping[str, str],
    counts: Callable[[], Counter[str]],
    label: str,
    on_line: Callable[[str], None] | None = None,
    extra: Sequence[str] = (),
    interrupt: tuple[str, signal.Signals, float] | None = None,
) -> Run:
    """`./cluster-secrets COMMAND STACK` in the project copy, its output streamed with a prefix
    (and handed to `on_line`, which a scenario uses to act between two runs of one `up`).

    The tool runs in a process group of its own, as a terminal runs a job. With `interrupt` (text,
    signal, seconds), that many seconds after the first line holding the text the signal goes to the
    whole group, as a terminal's Ctrl-C does (SIGINT) or as a job killed outright is (SIGKILL): the
    tool, Pulumi and its plugins."""
    before = counts()
    started = time.monotonic()
    print(f"\n--- {label}: ./cluster-secrets {command} {stack} {' '.join(extra)}", flush=True)
    process = subprocess.Popen(
        ["./cluster-secrets", command, stack, *extra],
        cwd=project,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            print(f"    {line}", end="", flush=True)
            if on_line is not None:
                on_line(line)
            if interrupt is not None and interrupt[0] in line:
                text, sig, delay = interrupt
                print(f"    >>> in {delay:.0f}s the suite sends {sig.name} to the tool's process group", flush=True)
                threading.Timer(delay, os.killpg, (process.pid, sig)).start()
                interrupt = None
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)  # the suite is stopping: so does the tool, in its own group
        raise
    code = process.wait()
    seconds = time.monotonic() - started
    requests = counts() - before
    run = Run(f"{command} {stack}", code, "".join(lines), seconds, dict(sorted(requests.items())))
    FIGURES.run(label, run)
    return run


def status_links(output: str, links: Sequence[str]) -> dict[str, tuple[str, str]]:
    """link -> (OK|BROKEN, text) of the lines for `links` in `./cluster-secrets status`'s output
    (`<link:16> <OK|BROKEN:6> <text>`, cluster_secrets/status.py Line); the longest name first, so
    `gitops creds` is not read as `gitops`."""
    names = "|".join(re.escape(link) for link in sorted(links, key=len, reverse=True))
    line = re.compile(rf"^\s*({names})\s+(OK|BROKEN)\s+(.*)$")
    return {m.group(1): (m.group(2), m.group(3)) for text in output.splitlines() if (m := line.match(text))}


def plugins_in_use() -> list[str]:
    """One line per provider plugin: what the binary the engine will load is (bridged, built, stand-in)."""
    return [f"plugin {name} {version}: {describe_plugin(plugin_binary(name, version))}" for name, version in PLUGINS]


def served_by(project: Path, stack: str, env: Mapping[str, str]) -> list[str]:
    """Which plugin served each resource type of the stack, from its state (`pulumi stack export`:
    each resource names its provider; a provider resource names its plugin's package and version)."""
    exported = subprocess.run(
        ["pulumi", "stack", "export", "--stack", stack],
        cwd=project,
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
    )
    resources = json.loads(exported.stdout)["deployment"].get("resources") or []
    plugins = {}
    for resource in resources:
        # The engine's own provider (StackReference) is no plugin.
        if resource["type"].startswith("pulumi:providers:") and resource["type"] != "pulumi:providers:pulumi":
            package = resource["type"].removeprefix("pulumi:providers:")
            plugins[resource["urn"]] = (package, (resource.get("inputs") or {}).get("version", ""))
    counts: Counter[tuple[str, tuple[str, str]]] = Counter()
    for resource in resources:
        provider = (resource.get("provider") or "").rsplit("::", 1)[0]
        if provider in plugins:
            counts[(resource["type"], plugins[provider])] += 1
    described = {(name, version): describe_plugin(plugin_binary(name, version)) for name, version in PLUGINS}
    return [
        f"{kind} x{n}: plugin {package} {version}, {described.get((package, version), 'not a plugin of the suite')}"
        for (kind, (package, version)), n in sorted(counts.items())
    ]


def eso_path(stack_outputs: Mapping[str, Any], rest: str) -> str:
    """The API path of an ESO object (`rest`) in the API version of the ESO chart a stack deployed."""
    return f"/apis/{ESO_GROUP}/{eso_version(stack_outputs)}/{rest}"


def condition_true(obj: Mapping[str, Any] | None, kind: str) -> bool:
    """Whether an object's status has the condition `kind` (Ready, Established) True."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


def ready(obj: Mapping[str, Any] | None) -> bool:
    return condition_true(obj, "Ready")


def stack_outputs(project: Path, stack: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The stack's outputs, secrets decrypted and wrapped in `Secret`; {} for a stack without any."""
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
        cwd=project,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pulumi stack output failed: {result.stderr[-500:]}")
    values: dict[str, Any] = json.loads(result.stdout or "{}")
    if "argocdAdminPassword" in values:
        values["argocdAdminPassword"] = Secret(values["argocdAdminPassword"])
    return values


# --- ESO's kubelet -----------------------------------------------------------------------------

ESO_NAMESPACE, ESO_DEPLOYMENT = "eso", "external-secrets"
_TAG = re.compile(r":v?(\d+\.\d+\.\d+)")


class EsoKubelet(threading.Thread):
    """Plays the kubelet for ESO's Deployment: runs the ESO controller binary of the Deployment's
    image version on the host, once the chart's CRDs are established; restarts it with the other
    binary when the version changes (an upgrade); stops it when the Deployment goes.

    Processes are started from this thread, which lives as long as the cluster (controlplane's
    children get SIGTERM when the thread that started them ends). `hold()` stops ESO and keeps it
    stopped (an outage), `release()` lets it run again.
    """

    def __init__(self, cluster: Cluster):
        super().__init__(name=f"eso-kubelet-{cluster.name}", daemon=True)
        self.cluster = cluster
        self.process: HostProcess | None = None
        self.version: str | None = None
        self.error: str | None = None
        self.started_versions: list[str] = []
        self._held = threading.Event()
        self._done = threading.Event()

    def wanted_version(self) -> str | None:
        deployment = self.cluster.get(f"/apis/apps/v1/namespaces/{ESO_NAMESPACE}/deployments/{ESO_DEPLOYMENT}")
        if not deployment or deployment["metadata"].get("deletionTimestamp"):
            return None
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        match = _TAG.search(image)
        if not match:
            self.error = f"cannot tell ESO's version from image {image!r}"
            return None
        crds = self.cluster.api("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        ours = [c for c in crds if c["spec"]["group"].endswith("external-secrets.io")]
        established = all(condition_true(c, "Established") for c in ours)
        return match.group(1) if ours and established else None

    def run(self) -> None:
        while not self._done.wait(0.5):
            try:
                wanted = None if self._held.is_set() else self.wanted_version()
            except Exception as error:  # noqa: BLE001 - the API server may be busy; try again
                self.error = f"{error}"
                continue
            if wanted == self.version and (wanted is None or (self.process and self.process.running)):
                continue
            self._stop_process()
            if wanted is not None:
                try:
                    self.process = controlplane.start_eso(self.cluster, wanted)
                    self.version = wanted
                    self.started_versions.append(wanted)
                    self.error = None
                except Exception as error:  # noqa: BLE001 - reported to the scenario, retried
                    self.error = f"ESO {wanted}: {error}"
                    self._done.wait(5)
        self._stop_process()

    def _stop_process(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process, self.version = None, None

    def hold(self) -> None:
        self._held.set()
        wait_for(lambda: self.process is None, 30, "ESO to stop")

    def release(self) -> None:
        self._held.clear()

    def shutdown(self) -> None:
        self._done.set()
        self.join(timeout=30)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    controlplane.wait_until(check, timeout, what)


def upgrade_eso_version() -> str | None:
    """ESO 2.9.0 if its controller was built, else 0.16.2 (the first release serving v1), else None."""
    for version in ("2.9.0", "0.16.2"):
        if os.access(BIN / f"external-secrets-v{version}", os.X_OK):
            return version
    return None


def eso_upgrade_path() -> list[str] | None:
    """The ESO versions a cluster on 0.12.1 goes through, as the upgrade guard allows (0.16.2 first, the
    one series serving v1beta1 and v1; then 2.9.0 where its controller was built); None without 0.16.2."""
    if not os.access(BIN / "external-secrets-v0.16.2", os.X_OK):
        return None
    return ["0.16.2"] + (["2.9.0"] if os.access(BIN / "external-secrets-v2.9.0", os.X_OK) else [])

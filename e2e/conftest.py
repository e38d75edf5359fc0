"""Fixtures of the end-to-end scenarios (e2e/README.md): the real Pulumi engine, the Kubernetes,
onepassword and time provider plugins, API servers and ESO; 1Password Connect and the random plugin
are stand-ins.

Every scenario is skipped, with one reason, when a binary or plugin from `e2e/build-tools` is missing.
Processes are started from the main thread (or ESO's kubelet thread) and stopped by their context
managers, whatever happens; the /etc/hosts line is always removed.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from e2e import harness
from e2e.connect_standin import ConnectStandIn, seed
from e2e.controlplane import Cluster, Unavailable, hosts_entry, serve_charts
from e2e.harness import FIGURES, EsoKubelet, Run, Secret

# Connect servers of the init vault (homelab and homelab-2 stack files), by stand-in client name.
CONNECT_SERVERS = {
    "eso-e2e": ("1password-credentials", "onepassword-connect-token"),
    "eso-e2e-2": ("1password-credentials-homelab-2", "onepassword-connect-token-homelab-2"),
    "eso-e2e-adopt": ("1password-credentials-adopt", "onepassword-connect-token-adopt"),
}
FAULTS_VAULT = "E2EFaults"  # the fault scenario's own working vault (its items are destroyed)
ADOPT_VAULT = "E2EAdopt"  # the adopt scenario's working vault, with the items the reference steps make
ADOPT_ARGOCD_VAULT = "E2EAdoptArgo"  # the same, for its variant with an Argo CD Application
EXTERNAL_VAULT = "E2EExternal"  # the external-connect scenario's working vault
WRONG_VAULT = "E2EWrong"  # the working vault of the scenario of runs that go wrong


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = harness.missing_tools()
    if missing:
        reason = (
            f"missing {', '.join(missing)}: run e2e/build-tools (it caches them in {harness.CACHE}) and "
            "`python -m e2e.standin_providers install` for the stand-in plugins, or ./run-e2e for both"
        )
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES.lines:
        return
    terminalreporter.section("cluster-secrets e2e figures")
    for line in FIGURES.lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"whole suite: {time.monotonic() - FIGURES.started:.0f}s")


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cluster-secrets-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def charts(workdir: Path) -> Iterator[str]:
    """The served chart repository; every scenario that installs a chart is skipped, with the reason,
    where ../shared/upstream/charts is absent (a clone that does not sit beside it)."""
    try:
        with serve_charts(log_dir=workdir / "logs") as url:
            yield url
    except Unavailable as missing:
        pytest.skip(str(missing))


class Connect:
    """The stand-in, seeded, at 127.0.0.2:8080, with the program's connectHost mapped to it."""

    def __init__(self, standin: ConnectStandIn, tokens: dict[str, str]):
        self.standin = standin
        self.tokens = tokens

    def pulumi_counts(self) -> Counter[str]:
        return Counter(self.standin.counted(harness.PULUMI_CLIENT))

    def item_fields(self, vault: str, title: str) -> dict[str, Secret]:
        item = self.standin.item(vault, title)
        return {f["label"]: Secret(f.get("value", "")) for f in item.get("fields", [])}


@pytest.fixture(scope="session")
def connect() -> Iterator[Connect]:
    with ConnectStandIn() as standin, hosts_entry(harness.CONNECT_HOST_NAME, "127.0.0.2"):
        tokens = seed(standin, CONNECT_SERVERS)
        standin.add_vault(FAULTS_VAULT)
        standin.add_vault(ADOPT_VAULT)
        standin.add_vault(ADOPT_ARGOCD_VAULT)
        standin.add_vault(EXTERNAL_VAULT)
        standin.add_vault(WRONG_VAULT)
        tokens[harness.PULUMI_CLIENT] = pulumi_token = secrets.token_urlsafe(24)
        standin.tokens[pulumi_token] = harness.PULUMI_CLIENT
        yield Connect(standin, tokens)


class Deployment:
    """One stack on one cluster, driven through the real `./cluster-secrets` in a project copy."""

    def __init__(self, cluster: Cluster, project: Path, stack: str, env: dict[str, str], connect: Connect):
        self.cluster, self.project, self.stack, self.env, self.connect = cluster, project, stack, env, connect
        self.eso = EsoKubelet(cluster)
        self.converged = False  # set by scenario a: later scenarios build on it

    def tool(
        self,
        command: str,
        label: str,
        on_line: Callable[[str], None] | None = None,
        extra: Sequence[str] = (),
        interrupt: tuple[str, signal.Signals, float] | None = None,
    ) -> Run:
        counts = self.connect.pulumi_counts
        return harness.run_tool(self.project, command, self.stack, self.env, counts, label, on_line, extra, interrupt)

    def outputs(self) -> dict[str, Any]:
        return harness.stack_outputs(self.project, self.stack, self.env)

    def eso_path(self, rest: str) -> str:
        """The API path of an ESO object of this stack (`rest`), in its ESO's API version."""
        return harness.eso_path(self.outputs(), rest)

    def set_keys(self, **settings: Any) -> None:
        harness.set_stack_keys(self.project, self.stack, settings)

    def require_converged(self) -> None:
        if not self.converged:
            pytest.skip(f"stack {self.stack} did not converge in scenario a")

    def get(self, path: str) -> Any:
        return self.cluster.get(path)


@pytest.fixture(scope="session")
def project(workdir: Path, connect: Connect) -> tuple[Path, dict[str, str]]:
    """One project copy and one environment (backend, passphrase) for every stack: the second
    cluster's stack reads the primary's outputs, secrets included, through a StackReference."""
    copy = harness.copy_project(workdir / "project")
    for line in harness.plugins_in_use():
        print(line, flush=True)
        FIGURES.note(line)
    return copy, harness.pulumi_env(workdir, connect.tokens[harness.PULUMI_CLIENT])


@contextlib.contextmanager
def deployment(
    name: str,
    index: int,
    base: str,
    workdir: Path,
    charts: str,
    connect: Connect,
    project: tuple[Path, dict[str, str]],
    **settings: Any,
) -> Iterator[Deployment]:
    """Cluster `index` and stack `name` (Pulumi.<base>.yaml with the e2e differences), ESO's kubelet."""
    copy, env = project
    with Cluster(name, workdir / f"{name}-cluster", index) as cluster:
        differences = harness.stack_differences(cluster, charts, copy)
        harness.write_stack(copy, name, base, {**differences, **settings})
        result = Deployment(cluster, copy, name, env, connect)
        result.eso.start()
        try:
            yield result
        finally:
            result.eso.shutdown()
            FIGURES.note(cluster.memory_summary())


@pytest.fixture(scope="session")
def primary(workdir: Path, charts: str, connect: Connect, project: tuple[Path, dict[str, str]]) -> Iterator[Deployment]:
    """The homelab stack as `e2e` on cluster 0: scenarios a, b, c, d and g run on it, in that order."""
    with deployment("e2e", 0, "homelab", workdir, charts, connect, project) as result:
        yield result


class SecretWatch:
    """Watches argocd-secret from now on, across re-connects (a resourceVersion chain), in a thread."""

    def __init__(self, cluster: Cluster, namespace: str = "argocd", name: str = "argocd-secret"):
        self.cluster, self.path, self.name = cluster, f"/api/v1/namespaces/{namespace}/secrets", name
        self.events: list[str] = []
        self.error: str | None = None
        self._stop = threading.Event()
        listed = cluster.api("GET", self.path, query={"fieldSelector": f"metadata.name={name}"})
        self._version = listed["metadata"]["resourceVersion"]
        self.events += ["EXISTING" for _ in listed["items"]]
        self._thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = {"fieldSelector": f"metadata.name={self.name}", "allowWatchBookmarks": "true"}
        while not self._stop.is_set():
            try:
                for event in self.cluster.watch(self.path, timeout=5, resource_version=self._version, query=query):
                    if event["type"] == "ERROR":
                        self.error = str(event["object"].get("message"))
                        return
                    self._version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self.events.append(event["type"])
            except Exception as error:  # noqa: BLE001 - reported by stop()
                self.error = str(error)
                return

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error:
            raise AssertionError(f"the watch on {self.name} broke: {self.error}")
        return self.events

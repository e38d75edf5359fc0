"""Real processes for the end-to-end suite: a Kubernetes control plane, ESO, argocd-server, charts.

No container runs here, so a cluster is assembled from binaries built from Go modules by
`e2e/build-tools` into `$CLUSTER_SECRETS_E2E_CACHE/bin` (default `~/.cache/cluster-secrets-e2e/bin`):
etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK (which plays the kubelet for
one fake Node, see `kwok-stages.yaml`). Workloads that matter are run on the host instead of in
Pods: the ESO controller and Argo CD's server, repo-server and application controller talk to the
API server through the cluster's kubeconfig.

    from e2e.controlplane import Cluster, binary, hosts_entry, serve_charts, start_eso

    with serve_charts() as repo, Cluster("homelab", tmp_path / "homelab", 0) as cluster:
        env = cluster.env()  # KUBECONFIG=<cluster.kubeconfig>, context "homelab"
        subprocess.run([str(binary("helm")), "install", ..., "--repo", repo], env=env, check=True)
        with hosts_entry("onepassword-connect.onepassword.svc.cluster.local", "127.0.0.2"):
            eso = start_eso(cluster, "0.12.1")      # stopped with the cluster at the latest
            ...
            eso.stop(); ...; eso.start()            # an outage in the middle of a scenario
        secret = cluster.get("/api/v1/namespaces/argocd/secrets/argocd-secret")
        print(cluster.memory_summary())

Addresses. Cluster `index` i owns the loopback address 127.0.10.(i+1) and uses fixed ports on it,
so clusters 0 and 1 run side by side and nothing touches 127.0.0.1:8879 (the chart repository,
`serve_charts`) or 127.0.0.2:8080 (the Connect stand-in):

    etcd 2379 (client) 2380 (peer), kube-apiserver 6443, kube-controller-manager 10257,
    kube-scheduler 10259, ESO controller 8082 (health, when the version has --live-addr; metrics off),
    redis-server 6379, argocd-repo-server 8081 (metrics and health 8084).

The exceptions: argocd-server, at 127.0.0.1:(18080+i) with metrics at 127.0.0.1:(18090+i) (its
REST gateway dials its own gRPC side at `localhost:PORT`, so it must listen on 127.0.0.1), and
argocd-application-controller's metrics and health on 0.0.0.0:(18100+i) (it binds every address).

Inside the cluster: Services get ClusterIPs from 10.96.0.0/16 (nothing routes them: no kube-proxy),
Pods get fake IPs from 10.244.0.0/16 (KWOK's --cidr), and the fake Node's InternalIP is
10.255.0.(i+1), outside both and not loopback (loopback endpoint addresses are invalid).

Every process is started in its own session with its output in `<workdir>/logs/<name>.log`, and is
stopped (SIGTERM, then SIGKILL after a timeout) when its context exits, whatever the reason. The logs
are kept; on failure their paths and last lines are printed to stderr. As a backstop against a
harness that is killed outright, children get SIGTERM when the Python thread that started them dies
(`setpriv --pdeathsig`), so start processes from the test's main thread.

Anything missing (a binary, redis-server, the chart folder) raises `Unavailable` with what to do;
the suite's conftest can turn it into `pytest.skip`.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

CACHE = Path(os.environ.get("CLUSTER_SECRETS_E2E_CACHE") or Path.home() / ".cache" / "cluster-secrets-e2e")
BIN = CACHE / "bin"
E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parent
STAGES = E2E_DIR / "kwok-stages.yaml"
# The chart repository sits beside the repository (../shared/upstream/charts), see its README.md.
CHARTS_DIR = REPO.parent / "shared" / "upstream" / "charts"
CHARTS_ADDRESS = ("127.0.0.1", 8879)
CHARTS_URL = f"http://{CHARTS_ADDRESS[0]}:{CHARTS_ADDRESS[1]}"

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "cluster-secrets-e2e"

T = TypeVar("T")


class Unavailable(RuntimeError):
    """Something the suite needs is not on this machine; the message says how to get it."""


class ApiError(RuntimeError):
    """The API server answered with an HTTP error."""

    def __init__(self, status: int, method: str, path: str, body: bytes) -> None:
        self.status = status
        self.body = body
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = body[:300].decode(errors="replace")
        super().__init__(f"{method} {path}: HTTP {status}: {message}")


def binary(name: str) -> Path:
    """The path of a tool built by `e2e/build-tools`, or `Unavailable` naming it."""
    path = BIN / name
    if not os.access(path, os.X_OK):
        raise Unavailable(f"{path} is missing: run `e2e/build-tools {name}` (binaries are cached in {BIN})")
    return path


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Call `check` until it returns something truthy and return that; TimeoutError naming `what`.

    Exceptions from `check` count as "not yet" (the last one is chained to the TimeoutError),
    except `ProcessDied`, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except ProcessDied:
            raise
        except Exception as error:  # "not ready yet" takes many forms
            last = error
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}") from last
        time.sleep(interval)


# --- processes -------------------------------------------------------------------------------


class ProcessDied(RuntimeError):
    """A process we started exited on its own."""


def _status_kib(pid: int, field: str) -> int:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM), 0 if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


_SETPRIV = shutil.which("setpriv")


class HostProcess:
    """One long-running process on the host, logging to `log_path`; can be stopped and started again.

    A context manager: `with HostProcess(...) as p:` starts it and stops it on exit.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        ready: Callable[[], object] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = dict(env) if env is not None else None
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.peak_hwm_kib = 0  # the largest VmHWM seen over all runs of this process
        self.url: str | None = None  # where it serves, for servers the suite talks to
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, wait: bool = True) -> HostProcess:
        """Start (or start again after `stop`); with `wait`, wait for `ready` (stopping it if that fails)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if _SETPRIV:
            # Backstop for a harness killed with SIGKILL: the child gets SIGTERM when our thread dies.
            argv = [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._stopped = False
            env = None if self.env is None else {**os.environ, **self.env}
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C in the terminal reaches only us, and we stop the
                # processes in order; killpg below also reaches anything it forks.
                start_new_session=True,
            )
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                _print_logs([self])
                raise
        return self

    def wait_ready(self) -> None:
        """Wait until `ready` (if any) returns something truthy; `ProcessDied` if it exits meanwhile."""
        ready = self.ready
        if ready is not None:
            wait_until(lambda: self.check_alive() and ready(), self.ready_timeout, f"{self.name} to be ready")

    def check_alive(self) -> bool:
        """True while running; `ProcessDied` (with the log's tail) if it exited."""
        if self._popen is None:
            raise ProcessDied(f"{self.name} was never started")
        code = self._popen.poll()
        if code is not None:
            raise ProcessDied(f"{self.name} exited with {code}; log {self.log_path}:\n{self.log_tail()}")
        return True

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds (0: kill at once); the exit code, None if never started.

        Idempotent: stopping a stopped process only returns its exit code.
        """
        popen = self._popen
        if popen is None:
            return None
        if self._stopped:
            return popen.returncode
        if popen.poll() is None:
            self.peak_hwm_kib = max(self.peak_hwm_kib, _status_kib(popen.pid, "VmHWM"))
            _signal_group(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
        # The group may hold children that outlived the leader.
        _signal_group(popen.pid, signal.SIGKILL)
        self._stopped = True
        with contextlib.suppress(OSError), self.log_path.open("ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} stopped, exit code {popen.returncode}\n".encode())
        return popen.returncode

    def rss_kib(self) -> int:
        return _status_kib(self._popen.pid, "VmRSS") if self.running and self._popen else 0

    def hwm_kib(self) -> int:
        """The process's peak RSS (VmHWM) so far, over all its runs."""
        if self.running and self._popen:
            self.peak_hwm_kib = max(self.peak_hwm_kib, _status_kib(self._popen.pid, "VmHWM"))
        return self.peak_hwm_kib

    def log_text(self, since_start: bool = True) -> str:
        """The log, by default only what the current (or last) run wrote."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset if since_start else 0)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> HostProcess:
        return self.start()

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.stop()
        if exc is not None:
            _print_logs([self])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _print_logs(processes: Sequence[HostProcess], lines: int = 15) -> None:
    for process in processes:
        if not process.log_path.exists():
            continue
        print(f"--- {process.name}: log kept in {process.log_path}", file=sys.stderr)
        tail = process.log_tail(lines)
        if tail:
            print(tail, file=sys.stderr)


def _sigterm_unwinds() -> None:
    """Make SIGTERM raise KeyboardInterrupt, so `finally` blocks (stopping processes, /etc/hosts) run.

    KeyboardInterrupt rather than SystemExit: pytest ends the session on it (running fixture
    teardowns) instead of failing one test and going on. Only when SIGTERM has its default action
    and we are on the main thread; kept for the life of the process.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def handler(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, handler)


class _MemorySampler(threading.Thread):
    """Samples the summed VmRSS of some processes every `interval` seconds and keeps the peak."""

    def __init__(self, processes: Callable[[], Sequence[HostProcess]], interval: float = 0.5) -> None:
        super().__init__(name="controlplane-memory", daemon=True)
        self._processes = processes
        self._interval = interval
        self._stop_event = threading.Event()
        self.peak_kib = 0

    def sample(self) -> None:
        self.peak_kib = max(self.peak_kib, sum(p.rss_kib() for p in self._processes()))

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop_event.set()


# --- HTTP --------------------------------------------------------------------------------------

# The API server's certificate is self-signed (--cert-dir); the kubeconfig says
# insecure-skip-tls-verify too. Loopback only.
_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=_INSECURE))


def http_get(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """GET without proxies or certificate checks; (status, body), HTTP errors included."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


# --- the cluster -------------------------------------------------------------------------------


class Cluster:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK with one fake Node.

    `Cluster(name, workdir, index)`: `name` is the kubeconfig context (and cluster/user entry
    prefix), `workdir` holds etcd data, certificates, the kubeconfig and `logs/`, `index` (0, 1, ...)
    picks the loopback address. Use it as a context manager; `start()`/`stop()` also exist.
    """

    def __init__(self, name: str, workdir: Path | str, index: int = 0, start_timeout: float = 180.0) -> None:
        if not 0 <= index < 250:
            raise ValueError(f"index must be 0..249, not {index}")
        self.name = name
        self.index = index
        self.workdir = Path(workdir).resolve()
        self.ip = f"127.0.10.{index + 1}"
        self.node_ip = f"10.255.0.{index + 1}"
        self.node_name = "kwok-node"
        self.server = f"https://{self.ip}:6443"
        self.context = name
        self.kubeconfig = self.workdir / "kubeconfig"
        self.log_dir = self.workdir / "logs"
        self.token = secrets.token_hex(16)
        self.start_timeout = start_timeout
        self.start_seconds: float | None = None  # wall time of the last start(), until the node was Ready
        self.version: dict[str, Any] = {}  # the API server's /version
        self.control_plane: list[HostProcess] = []  # etcd, apiserver, KCM, scheduler, kwok
        self.extras: list[HostProcess] = []  # ESO, argocd-server, redis started for this cluster
        self._sampler = _MemorySampler(lambda: self.control_plane)

    # -- life cycle

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.stop(failed=exc is not None)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """os.environ plus KUBECONFIG for this cluster, for helm, pulumi or the program's CLI."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), **(extra or {})}

    def start(self) -> None:
        if self.control_plane:
            raise RuntimeError(f"cluster {self.name} was started before; make a new Cluster")
        _sigterm_unwinds()
        began = time.monotonic()
        for tool in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            binary(tool)
        if not STAGES.is_file():
            raise Unavailable(f"{STAGES} is missing")
        # A readiness probe would otherwise be answered by another cluster's process.
        taken = [port for port in (2379, 2380, 6443, 10257, 10259) if _tcp_open(self.ip, port)]
        if taken:
            raise RuntimeError(
                f"{self.ip} ports {taken} are in use: is another Cluster with index {self.index} running?"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop(failed=True)
            raise
        self.start_seconds = time.monotonic() - began

    def _component(self, name: str, port: int, flags: list[str]) -> HostProcess:
        """kube-controller-manager or kube-scheduler on this cluster's address, ready when its
        /healthz answers on `port`."""
        args: list[str | os.PathLike[str]] = [
            binary(name),
            f"--kubeconfig={self.kubeconfig}",
            f"--bind-address={self.ip}",
            f"--secure-port={port}",
            "--leader-elect=false",
            *flags,
            "--profiling=false",
        ]
        return HostProcess(
            name, args, self.log_dir, ready=lambda: http_get(f"https://{self.ip}:{port}/healthz")[0] == 200
        )

    def _start(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        sa_key = pki / "sa.key"
        if not sa_key.exists():
            # Service-account tokens are signed by the API server and KCM with this key.
            subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
        tokens = self.workdir / "tokens.csv"
        # token,user,uid,"groups": an admin in system:masters, which RBAC lets do anything.
        tokens.write_text(f'{self.token},admin,admin,"system:masters"\n')
        tokens.chmod(0o600)
        self._write_kubeconfig()

        ip = self.ip
        etcd = HostProcess(
            "etcd",
            [
                binary("etcd"),
                f"--name={self.name}",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://{ip}:2379",
                # Must be set with listen-client-urls: etcd drops its default advertise URL then.
                f"--advertise-client-urls=http://{ip}:2379",
                f"--listen-peer-urls=http://{ip}:2380",
                f"--initial-advertise-peer-urls=http://{ip}:2380",
                f"--initial-cluster={self.name}=http://{ip}:2380",
                "--unsafe-no-fsync",  # a throwaway store: speed over durability
                "--auto-compaction-retention=1",
                "--log-level=warn",
            ],
            self.log_dir,
            ready=lambda: http_get(f"http://{ip}:2379/health")[0] == 200,
        )
        self._run(etcd)

        apiserver = HostProcess(
            "kube-apiserver",
            [
                binary("kube-apiserver"),
                f"--etcd-servers=http://{ip}:2379",
                f"--bind-address={ip}",
                f"--advertise-address={ip}",
                "--secure-port=6443",
                # No --tls-cert-file: the API server makes a self-signed certificate in --cert-dir.
                f"--cert-dir={pki}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                # Kept apart from KWOK's pod CIDR; both default to 10.0.0.0/24 otherwise.
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                # Default admission plugins stay on: ServiceAccount needs the `default` SA that KCM creates.
            ],
            self.log_dir,
            ready=lambda: self._status("/readyz") == 200,
            ready_timeout=self.start_timeout,
        )
        self._run(apiserver)
        self.version = self.api("GET", "/version")
        if str(self.version.get("gitVersion", "")).startswith("v0.0.0"):
            # Helm's kubeVersion checks (argo-cd: >=1.25.0-0) and semverCompare in the charts fail on it.
            raise RuntimeError(
                f"kube-apiserver reports {self.version.get('gitVersion')}: it was built without the version "
                "ldflags; rebuild with `e2e/build-tools kube-apiserver`"
            )

        kcm = self._component(
            "kube-controller-manager",
            10257,
            [
                # Signs the service-account token Secrets; the root CA goes into every namespace's
                # kube-root-ca.crt. The API server's self-signed certificate file holds its CA too.
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki / 'apiserver.crt'}",
                f"--cluster-name={self.name}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                # No kubelet posts status: KWOK renews the Node's Lease (and refreshes its conditions),
                # or KCM would mark the node NotReady and taint it after this grace period.
                "--node-monitor-grace-period=40s",
                "--concurrent-namespace-syncs=5",
            ],
        )
        scheduler = self._component("kube-scheduler", 10259, [])
        kwok = HostProcess(
            "kwok",
            [
                binary("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={STAGES}",
                "--manage-all-nodes=true",
                f"--cidr={POD_CIDR}",
                f"--node-ip={self.node_ip}",
                "--node-lease-duration-seconds=40",
                # No --server-address: kwok's kubelet-like API (logs, exec) is not needed.
            ],
            self.log_dir,
        )
        # These three start together; KWOK has no readiness endpoint here, the Node's state shows it.
        for process in (kcm, scheduler, kwok):
            process.ready_timeout = self.start_timeout
            self._run(process, wait=False)
        kcm.wait_ready()
        scheduler.wait_ready()

        self.api(
            "POST",
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.node_name,
                    # No kwok.x-k8s.io/node=fake:NoSchedule taint: the charts' Pods do not tolerate it.
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/hostname": self.node_name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
            },
        )
        wait_until(self._node_ready, self.start_timeout, f"node {self.node_name} Ready without taints")
        # KCM's service-account controller is working once the `default` SA exists; Pods need it.
        wait_until(
            lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default"),
            self.start_timeout,
            "the default ServiceAccount",
        )

    def _run(self, process: HostProcess, wait: bool = True) -> None:
        self.control_plane.append(process)
        process.start(wait=wait)
        if not self._sampler.is_alive():
            self._sampler.start()

    def _node_ready(self) -> bool:
        for process in self.control_plane:
            process.check_alive()
        node = self.get(f"/api/v1/nodes/{self.node_name}")
        if not node:
            return False
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        # The admission plugin TaintNodesByCondition puts not-ready taints on a new Node; KCM lifts them.
        return conditions.get("Ready") == "True" and not node["spec"].get("taints")

    def stop(self, failed: bool = False) -> None:
        """Stop ESO/argocd/redis, then the control plane in reverse order. Logs stay in `log_dir`."""
        if self._sampler.is_alive():
            self._sampler.stop()
        everything = [*self.extras, *self.control_plane]
        for process in [*reversed(self.extras), *reversed(self.control_plane)]:
            try:
                process.stop()
            except Exception as error:  # stop the rest regardless
                print(f"stopping {process.name} failed: {error}", file=sys.stderr)
        if failed:
            print(f"=== cluster {self.name}: logs kept in {self.log_dir}", file=sys.stderr)
            _print_logs(everything)

    def adopt(self, process: HostProcess) -> HostProcess:
        """Stop `process` together with the cluster (ESO, argocd-server, redis)."""
        if process not in self.extras:
            self.extras.append(process)
        return process

    # -- memory

    @property
    def peak_rss_bytes(self) -> int:
        """Peak of the summed RSS of the control-plane processes, sampled every 0.5 s from /proc."""
        if self._sampler.is_alive():
            self._sampler.sample()
        return self._sampler.peak_kib * 1024

    def memory_summary(self) -> str:
        """One line: the sampled peak, and each process's own peak (VmHWM) including host extras."""
        peaks: dict[str, int] = {}  # by name: a process restarted through start_eso appears once
        for process in [*self.control_plane, *self.extras]:
            peaks[process.name] = max(peaks.get(process.name, 0), process.hwm_kib())
        parts = [f"{name} {kib / 1024:.0f}" for name, kib in peaks.items()]
        return (
            f"cluster {self.name}: control plane peak RSS {self.peak_rss_bytes / 2**20:.0f} MiB "
            f"(sum sampled every 0.5 s); per-process peak MiB: {', '.join(parts)}"
        )

    # -- API access

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": {"server": self.server, "insecure-skip-tls-verify": True}}],
            "users": [{"name": f"{self.name}-admin", "user": {"token": self.token}}],
            "contexts": [{"name": self.context, "context": {"cluster": self.name, "user": f"{self.name}-admin"}}],
            "current-context": self.context,
            "preferences": {},
        }
        # JSON is YAML; distinct cluster/user names let KUBECONFIG=a:b merge two clusters' files.
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    def _request(
        self,
        method: str,
        path: str,
        body: object = None,
        query: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> urllib.request.Request:
        url = self.server + path
        if query:
            url += ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            default = "application/merge-patch+json" if method == "PATCH" else "application/json"
            headers["Content-Type"] = content_type or default
        return urllib.request.Request(url, data=data, headers=headers, method=method)

    def api(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """One API call; the decoded JSON answer (None if empty, text if not JSON). `ApiError` on HTTP errors.

        `body` is JSON-encoded unless bytes; PATCH defaults to a JSON merge patch.
        Example: `cluster.api("GET", "/api/v1/namespaces/argocd/secrets")["items"]`.
        """
        request = self._request(method, path, body, query, content_type)
        try:
            with _NO_PROXY.open(request, timeout=timeout) as response:
                raw = response.read()
            json_answer = "json" in response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, method, path, error.read()) from None
        if not raw:
            return None
        return json.loads(raw) if json_answer else raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        """GET `path`; None if it does not exist (404)."""
        try:
            return self.api("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def _status(self, path: str) -> int:
        try:
            self.api("GET", path, timeout=5)
            return 200
        except ApiError as error:
            return error.status

    def watch(
        self,
        path: str,
        *,
        timeout: float = 60.0,
        resource_version: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Watch events on a collection path (`{"type": "ADDED"|"MODIFIED"|"DELETED"|..., "object": ...}`).

        Ends after `timeout` seconds (server side, plus a margin on the socket). Without
        `resource_version` the server first sends ADDED for what exists. Example, waiting for a
        Secret to go:

            for event in cluster.watch("/api/v1/namespaces/argocd/secrets",
                                       query={"fieldSelector": "metadata.name=argocd-secret"}):
                if event["type"] == "DELETED": ...
        """
        params = {"watch": "true", "timeoutSeconds": str(int(timeout)), **(query or {})}
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        request = self._request("GET", path, query=params)
        try:
            response = _NO_PROXY.open(request, timeout=timeout + 15)
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, "WATCH", path, error.read()) from None
        with response:
            for line in response:
                if line.strip():
                    yield json.loads(line)


# --- host processes for a cluster --------------------------------------------------------------


def _help_text(path: Path) -> str:
    result = subprocess.run([str(path), "--help"], capture_output=True, timeout=60, check=False)
    return (result.stdout + result.stderr).decode(errors="replace")


def start_eso(cluster: Cluster, version: str, *extra_args: str, ready_timeout: float = 90.0) -> HostProcess:
    """Start the ESO controller `external-secrets-v<version>` as a host process for `cluster`.

    Returns the (adopted) HostProcess: `.stop()` and `.start()` again simulate an outage. Ready
    when controller-runtime logs "Starting workers" (its caches have synced). ESO's webhook and
    cert-controller are not run: the suite installs the chart with `webhook.create=false`,
    `certController.create=false` (and `crds.conversion.enabled=false` for 0.12.1), since nothing
    could serve a webhook at a ClusterIP.
    """
    path = binary(f"external-secrets-v{version.removeprefix('v')}")
    argv: list[str | os.PathLike[str]] = [
        path,
        "--enable-leader-election=false",  # one replica; the chart's fake Pod does nothing
        "--metrics-addr=0",  # off; the default ":8080" takes that port on every address
        "--enable-cluster-store-reconciler=true",
        "--concurrent=2",
        "--loglevel=debug",
        "--zap-time-encoding=iso8601",
    ]
    if "--live-addr" in _help_text(path):
        argv.append(f"--live-addr={cluster.ip}:8082")  # default ":8082" on every address
    argv.extend(extra_args)
    process = HostProcess(
        f"external-secrets-v{version.removeprefix('v')}",
        argv,
        cluster.log_dir,
        # The controller finds its cluster through ctrl.GetConfigOrDie(): KUBECONFIG, not a flag.
        env={"KUBECONFIG": str(cluster.kubeconfig)},
        ready=lambda: "Starting workers" in process.log_text(),
        ready_timeout=ready_timeout,
    )
    return cluster.adopt(process.start())


def start_redis(cluster: Cluster) -> HostProcess:
    """A throwaway redis-server (Debian's) on the cluster's address, port 6379, no persistence; the
    one already running for `cluster` if there is one (Argo CD's server, repo-server and controller
    share it, as the chart's Deployments share its redis)."""
    running = [p for p in cluster.extras if p.name == "redis-server" and p.running]
    if running:
        return running[0]
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(path, os.X_OK):
        raise Unavailable("redis-server is missing: run `apt-get install -y redis-server`")
    workdir = cluster.workdir / "redis"
    workdir.mkdir(exist_ok=True)
    process = HostProcess(
        "redis-server",
        [
            path,
            "--bind",
            cluster.ip,
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
        ],
        cluster.log_dir,
        ready=lambda: _redis_ping(cluster.ip, 6379),
    )
    return cluster.adopt(process.start())


def _redis_ping(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=2) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(64).startswith(b"+PONG")


def start_argocd_server(cluster: Cluster, namespace: str = "argocd", ready_timeout: float = 120.0) -> HostProcess:
    """argocd-server for `cluster` as a host process, plus the redis-server it uses.

    Plain HTTP (`--insecure`) at `.url` (http://127.0.0.1:18080+i); log in with
    `POST {url}/api/v1/session`. It needs `argocd-secret`, `argocd-cm` and Argo CD's CRDs in
    `namespace` (the chart provides them); it exits at start without `argocd-secret`. Dex is not
    run: logging in does not need it. The redis-server has no password, and the host process gets
    no REDIS_PASSWORD (the chart's redis-secret-init Job only "completes" under KWOK). On start it
    makes the AppProject `default` if it is missing (server/server.go, initializeDefaultProject),
    which the application controller needs.
    """
    path = binary("argocd-server")
    start_redis(cluster)
    ip = cluster.ip
    port = 18080 + cluster.index
    url = f"http://127.0.0.1:{port}"
    process = HostProcess(
        "argocd-server",
        [
            path,  # a multi-call binary: it acts as the server because its name is argocd-server
            "--insecure",
            # Its REST gateway dials its own gRPC side at localhost:PORT, so it must listen on
            # 127.0.0.1; a port per cluster keeps two servers apart.
            "--address=127.0.0.1",
            f"--port={port}",
            # The metrics listener also binds --address (--metrics-address is not used for it),
            # so the port is per cluster too.
            f"--metrics-port={port + 10}",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--context={cluster.context}",
            f"--namespace={namespace}",
            f"--redis={ip}:6379",
            f"--repo-server={ip}:{REPO_SERVER_PORT}",  # start_argocd_gitops runs one there
            "--loglevel=debug",
        ],
        cluster.log_dir,
        env={"KUBECONFIG": str(cluster.kubeconfig), "ARGOCD_BINARY_NAME": "argocd-server"},
        ready=lambda: http_get(f"{url}/healthz")[0] == 200,
        ready_timeout=ready_timeout,
    )
    process.url = url
    return cluster.adopt(process.start())


REPO_SERVER_PORT = 8081  # the chart's repoServer.containerPorts.server, on the cluster's address


def start_argocd_gitops(cluster: Cluster, namespace: str = "argocd", ready_timeout: float = 120.0) -> list[HostProcess]:
    """argocd-repo-server and argocd-application-controller for `cluster`, as host processes from
    the argocd-server binary (a multi-call binary: ARGOCD_BINARY_NAME picks the command), sharing
    the cluster's redis-server (start `start_argocd_server` first: it makes the AppProject).

    As the argo-cd chart runs them (10.1.1 templates argocd-repo-server/deployment.yaml and
    argocd-application-controller/statefulset.yaml: `--port=8081 --metrics-port=8084` and
    `--metrics-port=8082`, one controller replica), with these differences:
    - addresses: the repo-server on the cluster's address; the controller's metrics and health
      listener binds 0.0.0.0 (controller/appcontroller.go), so it gets a port per cluster;
    - the controller reaches the cluster through the kubeconfig: `ARGOCD_FAKE_IN_CLUSTER=true`
      makes the in-cluster destination https://kubernetes.default.svc read `KUBECONFIG`
      (pkg/apis/application/v1alpha1/types.go, RawRestConfig), as Argo CD's own Procfile runs it;
    - the repo-server's GPG verification is off (`ARGOCD_GPG_ENABLED=false`; the chart keeps it on
      with a keyring volume), and its TLS, SSH and ask-pass paths, HOME and TMPDIR are in the
      cluster's workdir instead of the container's /app/config and /tmp;
    - git runs `GIT_ASKPASS=argocd` for credentials (util/askpass/server.go), which the image puts
      on PATH: here a link named `argocd` to the same binary, first on the repo-server's PATH.
    TLS between them stays the chart's default: the repo-server makes a self-signed certificate,
    the controller does not verify it.
    """
    path = binary("argocd-server")
    redis = f"{cluster.ip}:6379"
    home = cluster.workdir / "argocd-repo-server"
    links = home / "bin"
    links.mkdir(parents=True, exist_ok=True)
    askpass = links / "argocd"
    if not askpass.exists():
        askpass.symlink_to(path)
    for folder in ("tls", "ssh", "tmp"):
        (home / folder).mkdir(exist_ok=True)
    repo_metrics = f"http://{cluster.ip}:8084/healthz"
    repo_server = HostProcess(
        "argocd-repo-server",
        [
            path,
            f"--address={cluster.ip}",
            f"--port={REPO_SERVER_PORT}",
            f"--metrics-address={cluster.ip}",
            "--metrics-port=8084",
            f"--redis={redis}",
            "--loglevel=debug",
        ],
        cluster.log_dir,
        env={
            "ARGOCD_BINARY_NAME": "argocd-repo-server",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_TLS_DATA_PATH": str(home / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(home / "ssh"),
            "ARGOCD_ASK_PASS_SOCK": str(home / "ask-pass.sock"),
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "PATH": f"{links}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        ready=lambda: http_get(repo_metrics)[0] == 200,
        ready_timeout=ready_timeout,
    )
    controller_health = f"http://127.0.0.1:{18100 + cluster.index}/healthz"
    controller = HostProcess(
        "argocd-application-controller",
        [
            path,
            f"--metrics-port={18100 + cluster.index}",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--context={cluster.context}",
            f"--namespace={namespace}",
            f"--redis={redis}",
            f"--repo-server={cluster.ip}:{REPO_SERVER_PORT}",
            "--loglevel=debug",
        ],
        cluster.log_dir,
        env={
            "ARGOCD_BINARY_NAME": "argocd-application-controller",
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_CONTROLLER_REPLICAS": "1",
            "KUBECONFIG": str(cluster.kubeconfig),
        },
        ready=lambda: http_get(controller_health)[0] == 200,
        ready_timeout=ready_timeout,
    )
    started = [cluster.adopt(repo_server.start())]
    try:
        started.append(cluster.adopt(controller.start()))
    except BaseException:
        repo_server.stop()
        raise
    return started


@contextlib.contextmanager
def serve_charts(directory: Path = CHARTS_DIR, log_dir: Path | None = None) -> Iterator[str]:
    """Serve the offline chart repository on http://127.0.0.1:8879 and yield that URL.

    `Unavailable` if the folder (../shared/upstream/charts beside the repository) is absent.
    """
    if not (directory / "index.yaml").is_file():
        raise Unavailable(f"no chart repository at {directory} (expected index.yaml and the chart archives)")
    host, port = CHARTS_ADDRESS
    if _tcp_open(host, port):
        raise RuntimeError(f"{host}:{port} is already taken; is another chart server still running?")
    process = HostProcess(
        "charts-http",
        [sys.executable, "-m", "http.server", "--directory", str(directory), "--bind", host, str(port)],
        log_dir or Path(tempfile.mkdtemp(prefix="cluster-secrets-e2e-charts-")),
        ready=lambda: http_get(f"{CHARTS_URL}/index.yaml")[0] == 200,
    )
    with process:
        yield CHARTS_URL


# --- /etc/hosts --------------------------------------------------------------------------------


def _marked(line: str) -> int | None:
    """The owner pid of a line this module wrote (0 if unreadable), None for other lines."""
    if f"# {HOSTS_MARK}" not in line:
        return None
    match = re.search(rf"# {HOSTS_MARK} pid=(\d+)", line)
    return int(match.group(1)) if match else 0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hosts_without_stale(lines: list[str]) -> list[str]:
    """Drop marked lines whose owner process is gone (left by a crashed run)."""
    return [line for line in lines if (pid := _marked(line)) is None or _pid_alive(pid)]


def hosts_line(name: str, ip: str) -> str:
    """`IP NAME # cluster-secrets-e2e pid=PID entry=RANDOM`: the owner, and unique to one entry."""
    ipaddress.ip_address(ip)  # ValueError if not an address
    if not name or any(c.isspace() or c == "#" for c in name):
        raise ValueError(f"bad host name {name!r}")
    return f"{ip} {name} # {HOSTS_MARK} pid={os.getpid()} entry={secrets.token_hex(4)}"


@contextlib.contextmanager
def _edit_hosts(hosts_file: Path) -> Iterator[list[str]]:
    """Lock the file, yield its lines for editing, write them back in place.

    In place (not rename): /etc/hosts may be a bind mount. SIGINT/SIGTERM are blocked meanwhile
    so a Ctrl-C cannot leave it half written.
    """
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        with hosts_file.open("r+") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            lines = file.read().splitlines()
            yield lines
            file.seek(0)
            file.write("".join(line + "\n" for line in lines))
            file.truncate()
            file.flush()
            os.fsync(file.fileno())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def hosts_entry(name: str, ip: str, hosts_file: Path = HOSTS_FILE) -> Iterator[str]:
    """Map `name` to `ip` in /etc/hosts for the duration; yields the line added.

    Host processes (the ESO controller) resolve through /etc/hosts, so this is how
    `onepassword-connect.onepassword.svc.cluster.local` reaches the Connect stand-in at 127.0.0.2.
    The line is marked `# cluster-secrets-e2e pid=PID`; exactly that line is removed on exit,
    whatever the exit (SIGTERM included, see `_sigterm_unwinds`). Marked lines of dead processes are
    removed first.
    """
    _sigterm_unwinds()
    line = hosts_line(name, ip)
    try:
        # Inside the try: a signal that arrives while the file is written is raised just after,
        # and the line (unique, see hosts_line) must still go.
        with _edit_hosts(hosts_file) as lines:
            lines[:] = [*hosts_without_stale(lines), line]
        yield line
    finally:
        with _edit_hosts(hosts_file) as lines:
            if line in lines:
                lines.remove(line)

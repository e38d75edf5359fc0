"""Runs that go wrong: a stack another run holds, a run interrupted with Ctrl-C, and what a run killed
outright leaves behind (its lock, and operations pending in the state).

Pulumi's file backend takes a lock per stack for `up`, `preview`, `destroy`, `refresh` and `stack
import` (a file `.pulumi/locks/<organization>/<project>/<stack>/<id>.json` naming the user, host
and pid of the `pulumi` process), refuses a second run while it exists, and deletes it at the end;
a killed run leaves it (pulumi/pulumi pkg/backend/diy/lock.go). An interrupted operation stays in
the state as a pending operation: the next `pulumi up` only warns (pkg/resource/deploy/
deployment_executor.go, v3.274.0). `pulumi refresh` settles pending updates and deletes by reading the
resources again, and drops pending creates with `--clear-pending-creates`; what such a create made
is then outside the state, and the preflight takes it in with `pulumi import` (preflight.py).
Refresh's `--import-pending-creates URN ID` only turns the operation into a pending import
(pkg/cmd/pulumi/operations/refresh.go); the e2e suite saw the object stay outside the state with it.
"""

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pulumi import automation as auto

from cluster_secrets.errors import UsageError

Print = Callable[[str], None]
PROJECT = "cluster-secrets"
# Pulumi Cloud's answer to a second update (the Automation API raises ConcurrentUpdateError for it),
# and the file backend's.
LOCKED_TEXTS = ("the stack is currently locked", "Another update is currently in progress")


@dataclass(frozen=True)
class Lock:
    path: Path
    user: str
    host: str
    pid: int
    created: str


def lock_folder(backend_url: str, stack: str) -> Path | None:
    """Where a file backend keeps `stack`'s locks; None for other backends."""
    if not backend_url.startswith("file://"):
        return None
    return Path(backend_url.removeprefix("file://")) / ".pulumi" / "locks" / "organization" / PROJECT / stack


def stack_locks(backend_url: str, stack: str) -> list[Lock]:
    folder = lock_folder(backend_url, stack)
    if folder is None or not folder.is_dir():
        return []
    locks = []
    for path in sorted(folder.glob("*.json")):
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            content = {}
        locks.append(
            Lock(
                path,
                str(content.get("username", "?")),
                str(content.get("hostname", "?")),
                int(content.get("pid") or 0),
                str(content.get("timestamp", "?")),
            )
        )
    return locks


def pulumi_runs(pid: int) -> bool:
    """Whether `pid` is a running `pulumi` process on this machine (a pid can be reused)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return os.path.basename(command) == b"pulumi"


def is_stale(lock: Lock, host: str | None = None, runs: Callable[[int], bool] = pulumi_runs) -> bool:
    """A lock of this machine whose `pulumi` process is gone: left by a run that was killed."""
    return lock.host == (host or socket.gethostname()) and not runs(lock.pid)


def locked_message(stack: str, backend_url: str, locks: Sequence[Lock]) -> str:
    held = "\n".join(
        f"  {lock.path}: pulumi (pid {lock.pid}) of {lock.user}@{lock.host}, since {lock.created}" for lock in locks
    )
    return (
        f"Stack {stack} is locked: another run (up, preview, destroy, adopt) is using it, and nothing was "
        f"changed:\n{held or '  (Pulumi holds the lock)'}\n"
        f"Wait for that run to end, then run this again. If it is not running any more (a run killed on another "
        f"machine leaves its lock), clear the lock with: PULUMI_BACKEND_URL={backend_url} pulumi cancel --stack "
        f"{stack} --yes"
    )


def check_unlocked(backend_url: str, stack: str, say: Print, host: str | None = None) -> None:
    """Before a run: clear the locks a killed run of this machine left (and stop the plugins it left
    running); refuse while another run holds one."""
    held = []
    for lock in stack_locks(backend_url, stack):
        if is_stale(lock, host):
            lock.path.unlink(missing_ok=True)
            say(f"Cleared a lock left by a run that is gone: pulumi (pid {lock.pid}, {lock.created}) no longer runs.")
            stopped = stop_orphaned_plugins()
            if stopped:
                pids = ", ".join(map(str, stopped))
                say(f"Stopped {len(stopped)} plugin process(es) that run had left running (pids {pids}).")
        else:
            held.append(lock)
    if held:
        raise UsageError(locked_message(stack, backend_url, held))


_ADDRESS = re.compile(r"[\w.\-]+:\d+")  # the engine's gRPC address a plugin is started with


def _engine_gone(address: str) -> bool:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def orphaned_plugins() -> list[int]:
    """This user's Pulumi plugin processes whose engine is gone. Pulumi starts its language host and
    providers in process groups of their own, with the engine's address as their argument, so a run
    killed outright leaves them running, waiting for an engine that no longer answers."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            argv = (folder / "cmdline").read_bytes().decode(errors="replace").split("\0")
            parent = int((folder / "stat").read_text().rsplit(")", 1)[1].split()[1])
            mine = folder.stat().st_uid == os.getuid()
        except (OSError, ValueError, IndexError):
            continue
        plugin = os.path.basename(argv[0]).startswith(("pulumi-resource-", "pulumi-language-"))
        engine = next((arg for arg in reversed(argv) if _ADDRESS.fullmatch(arg)), "")
        if plugin and mine and engine and not pulumi_runs(parent) and _engine_gone(engine):
            found.append(int(folder.name))
    return found


def stop_orphaned_plugins() -> list[int]:
    stopped = []
    for pid in orphaned_plugins():
        try:
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
        except OSError:
            continue
    return stopped


def is_locked_error(error: auto.CommandError) -> bool:
    return isinstance(error, auto.ConcurrentUpdateError) or any(text in str(error) for text in LOCKED_TEXTS)


# --- pending operations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    urn: str
    type: str
    operation: str  # creating, updating, deleting, reading, importing

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


def pending_operations(deployment: Mapping[str, Any] | None) -> list[Pending]:
    """The operations an interrupted run left in an exported deployment."""
    return [
        Pending(str(op["resource"]["urn"]), str(op["resource"]["type"]), str(op.get("type", "")))
        for op in (deployment or {}).get("pending_operations") or []
    ]


def pending_message(stack: str, pending: Sequence[Pending]) -> str:
    lines = [f"Stack {stack} has {len(pending)} operation(s) an interrupted run left unfinished:"]
    lines += [f"  {op.operation} {op.type} {op.name}" for op in pending]
    return "\n".join(lines)


# --- interrupts -----------------------------------------------------------------------------------------


def pulumi_children(pid: int | None = None) -> list[int]:
    """The `pulumi` processes this process started (the Automation API's, one at a time)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid or os.getpid()}/task").glob("*/children"):
        try:
            children += [int(word) for word in task.read_text().split()]
        except OSError:
            continue
    return [child for child in children if pulumi_runs(child)]


@dataclass
class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM seen while Pulumi ran."""

    count: int = 0
    acknowledged: bool = False  # Pulumi said it is cancelling

    def heard(self, text: str) -> None:
        """Output of Pulumi's: it says so when it starts cancelling (pkg/backend/cancellation_scope.go)."""
        if "received; cancelling" in text:
            self.acknowledged = True

    def seen(self, event: auto.EngineEvent) -> None:
        if event.stdout_event is not None:
            self.heard(event.stdout_event.message)


@contextmanager
def pulumi_cancels_gracefully(say: Print, forward_after: float = 2.0) -> Iterator[Interrupts]:
    """While Pulumi runs, Ctrl-C and SIGTERM do not end this process: Python's default would close the
    pipes of the `pulumi` CLI the Automation API reads, which kills it in the middle of an operation
    and leaves it pending (and the stack locked). Pulumi itself cancels gracefully on the first signal
    (its providers end the operations in flight, pulumi-kubernetes by cancelling their requests, and
    it records what they did) and stops at once on the second (pkg/backend/cancellation_scope.go).
    A Ctrl-C in a terminal reaches it already (the terminal signals the whole foreground group); a
    signal sent to this process alone is passed on when Pulumi has not said it is cancelling within
    two seconds."""
    interrupts = Interrupts()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def forward(sig: int, count: int) -> None:
        time.sleep(forward_after)
        if count > 1 or not interrupts.acknowledged:
            for child in pulumi_children():
                os.kill(child, sig)

    terminal = _in_terminal_foreground()

    def handler(sig: int, frame: object) -> None:
        interrupts.count += 1
        if interrupts.count == 1:
            say(
                "Interrupted: Pulumi is cancelling: it ends the operations in flight and records what they did. "
                "Press Ctrl-C again to stop at once, which leaves them unfinished."
            )
        if not (terminal and sig == signal.SIGINT):  # a terminal's Ctrl-C reaches the whole process group
            threading.Thread(target=forward, args=(sig, interrupts.count), daemon=True).start()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in previous:
            signal.signal(sig, handler)
    try:
        yield interrupts
    finally:
        if in_main:
            for sig, before in previous.items():
                signal.signal(sig, before)


class Cancelled(Exception):
    """A Ctrl-C or SIGTERM came while a Pulumi command ran (cancellable): the tool goes no further."""


T = TypeVar("T")


def cancellable(say: Print, call: Callable[[Interrupts], T]) -> T:
    """`call` (one Pulumi command, given the interrupts to report its events to) under
    pulumi_cancels_gracefully. Cancelled when a Ctrl-C or SIGTERM came meanwhile, whether Pulumi
    stopped or still finished: the user asked to stop, so nothing after it runs."""
    with pulumi_cancels_gracefully(say) as interrupts:
        try:
            result = call(interrupts)
        except auto.CommandError:
            if interrupts.count:
                raise Cancelled() from None
            raise
    if interrupts.count:
        raise Cancelled()
    return result


def _in_terminal_foreground() -> bool:
    """Whether this process runs in the foreground of a terminal, where Ctrl-C signals its whole group."""
    try:
        tty = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(tty) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(tty)

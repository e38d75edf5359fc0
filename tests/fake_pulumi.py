"""A stand-in for the `pulumi` CLI, for the calls the Automation API makes in cluster_secrets.deploy.

It records each call (arguments and the environment variables that matter) in $FAKE_PULUMI_DIR/calls.jsonl,
keeps its stacks in $FAKE_PULUMI_DIR/state.json, and answers as the real CLI does: the same exit codes,
JSON shapes and event-log lines. $FAKE_PULUMI_SCENARIO says how deployments go:
  converges  - the first `up` leaves the chart's Secret synced, the next hands over to ESO
  stuck      - every `up` leaves the chart's Secret synced (the hand-off never completes)
  fails      - `up` fails
  ctrl-c-in-refresh - `refresh` sends SIGINT to the tool, then fails as a cancelled refresh does
It reports version 3.205.0, the last whose Automation API tails a file for engine events.
A deployed stack's state (`stack export`/`import`) holds the two 1Password items and the ExternalSecret
that depends on one of them; secrets in it are ciphertext, as the CLI exports them.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

HOME = Path(os.environ.get("FAKE_PULUMI_DIR", "."))  # the tests import the constants below
STATE = HOME / "state.json"
SCENARIO = os.environ.get("FAKE_PULUMI_SCENARIO", "converges")
RESOURCES = ["connect-namespace", "connect-release", "external-secrets-store", "argocd-release"]
MTIME = "2026-11-28T09:00:00Z"  # argocdAdminPasswordMtime of every deployment
PREFIX = "urn:pulumi:homelab::cluster-secrets::"
SECRET_ITEM = PREFIX + "cluster-secrets:index:ArgoCD$onepassword:index/item:Item::argocd-secret-item"
ADMIN_ITEM = PREFIX + "cluster-secrets:index:ArgoCD$onepassword:index/item:Item::argocd-admin-item"
EXTERNAL_SECRET = PREFIX + "cluster-secrets:index:ArgoCD$kubernetes:external-secrets.io/v1beta1:ExternalSecret::es"
CIPHERTEXT = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:abc"}


def deployed_resources() -> list[dict]:
    item = "onepassword:index/item:Item"
    return [
        {"urn": SECRET_ITEM, "type": item, "outputs": {"title": "argocd-secret", "uuid": "item1", "vault": "vault1"}},
        {"urn": ADMIN_ITEM, "type": item, "outputs": {"title": "argo-admin", "uuid": "item2", "vault": "vault1"}},
        {
            "urn": EXTERNAL_SECRET,
            "type": "kubernetes:external-secrets.io/v1beta1:ExternalSecret",
            "inputs": {"password": CIPHERTEXT},
            "dependencies": [SECRET_ITEM],
            "propertyDependencies": {"spec": [SECRET_ITEM]},
        },
    ]


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def load() -> dict:
    return json.loads(STATE.read_text()) if STATE.exists() else {"stacks": {}}


def save(state: dict) -> None:
    STATE.write_text(json.dumps(state))


def fail(message: str, code: int = 255) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def write_events(args: list[str], changes: dict[str, int]) -> None:
    log = option(args, "--event-log")
    if log is None or log.startswith("tcp://"):
        return
    events: list[dict] = [{"preludeEvent": {"config": {}}}]
    op = "create" if changes.get("create") else "update"
    for name in RESOURCES:
        metadata = {"op": op, "urn": f"urn:pulumi:s::cluster-secrets::t::{name}", "type": "t", "provider": ""}
        events.append({"resourcePreEvent": {"metadata": metadata}})
    events.append({"summaryEvent": {"resourceChanges": changes, "durationSeconds": 1, "maybeCorrupt": False}})
    events.append({"cancelEvent": {}})  # the CLI ends every event log with it
    with open(log, "a", encoding="utf-8") as stream:
        for sequence, event in enumerate(events, 1):
            stream.write(json.dumps({"sequence": sequence, "timestamp": sequence, **event}) + "\n")


def record(stack: dict, kind: str, changes: dict[str, int]) -> None:
    """An entry of `pulumi stack history --json`."""
    stack["history"].append(
        {
            "kind": kind,
            "startTime": "2026-11-28T10:00:00.000000Z",
            "endTime": "2026-11-28T10:01:00.000000Z",
            "message": "",
            "environment": {},
            "config": {},
            "result": "succeeded",
            "version": len(stack["history"]) + 1,
            "resourceChanges": changes,
        }
    )


def next_outputs(previous: dict) -> tuple[dict, dict[str, int]]:
    """The outputs of the next deployment, and its change counts."""
    outputs = {
        "connectHost": "http://onepassword-connect.onepassword.svc.cluster.local:8080",
        "argocdAdminPassword": "fake-admin-password",
        "argocdAdminPasswordMtime": MTIME,
        "argocdNamespace": "argocd",
        "secretStoreName": "one-secretstore",
        "chartVersions": {"connect": "1.17.0", "externalSecrets": "0.12.1", "argocd": "10.1.1"},
    }
    if not previous:
        return {**outputs, "argocdCreateSecret": True, "argocdSecretSynced": True}, {"create": 20}
    handed_over = SCENARIO == "converges"
    return {**outputs, "argocdCreateSecret": not handed_over, "argocdSecretSynced": True}, {"update": 1, "same": 19}


def main(raw: list[str]) -> None:
    args = [arg for arg in raw if arg != "--non-interactive"]  # a global flag the Automation API adds
    with open(HOME / "calls.jsonl", "a", encoding="utf-8") as calls:
        env = {k: os.environ[k] for k in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE") if k in os.environ}
        calls.write(json.dumps({"args": args, "raw": raw, "env": env}) + "\n")
    state = load()
    stack_name = option(args, "--stack")
    stacks = state["stacks"]
    if args == ["version"]:
        print("v3.205.0")
    elif args[:2] == ["stack", "select"]:
        if stack_name not in stacks:
            fail(f"no stack named '{stack_name}' found")
    elif args[:2] == ["stack", "init"]:
        stacks[args[2]] = {"outputs": {}, "history": [], "resources": []}
    elif args[:2] == ["stack", "export"]:
        stack = stacks[stack_name]
        deployment = {
            "resources": stack.get("resources", []),
            "pending_operations": stack.get("pending_operations", []),
        }
        print(json.dumps({"version": 3, "deployment": deployment}))
    elif args[:2] == ["stack", "import"]:
        imported = json.loads(Path(str(option(args, "--file"))).read_text())
        stacks[stack_name]["resources"] = imported["deployment"]["resources"]
        with open(HOME / "imported.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(imported) + "\n")
    elif args[:1] == ["config"]:
        print(json.dumps({}))
    elif args[:2] == ["stack", "output"]:
        outputs = dict(stacks[stack_name]["outputs"])
        if "--show-secrets" not in args and "argocdAdminPassword" in outputs:
            outputs["argocdAdminPassword"] = "[secret]"
        print(json.dumps(outputs))
    elif args[:2] == ["stack", "history"]:
        print(json.dumps(stacks[stack_name]["history"][-1:]))
    elif args[0] == "up":
        if SCENARIO == "fails":
            print("Updating (homelab):")
            fail("update failed: ExternalSecret argocd/argocd-secret did not become Ready")
        stack = stacks[stack_name]
        stack["outputs"], changes = next_outputs(stack["outputs"])
        stack["resources"] = deployed_resources()
        write_events(args, changes)
        record(stack, "update", changes)
        print(f"Updating ({stack_name}): done")
    elif args[0] == "preview":
        if "--expect-no-changes" in args:  # as the CLI does when the preview proposes changes
            fail("error: no changes were expected but changes were proposed")
        write_events(args, {"update": 1, "same": 19})
        print(f"Previewing update ({stack_name}): done")
    elif args[0] == "refresh" and SCENARIO == "ctrl-c-in-refresh":
        os.kill(os.getppid(), signal.SIGINT)  # as a Ctrl-C sent to the tool alone
        time.sleep(0.5)
        fail("refresh cancelled")
    elif args[0] == "refresh":
        # The tool refreshes with --clear-pending-creates: creates dropped, every other operation settled.
        stacks[stack_name]["pending_operations"] = []
    elif args[0] == "import":
        spec = json.loads(Path(str(option(args, "--file"))).read_text())
        with open(HOME / "import-files.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(spec) + "\n")
        for resource in spec["resources"]:
            urn = f"urn:pulumi:{stack_name}::cluster-secrets::{resource['type']}::{resource['name']}"
            stacks[stack_name]["resources"].append({"urn": urn, "type": resource["type"], "id": resource["id"]})
    elif args[0] == "destroy":
        stack = stacks[stack_name]
        stack["outputs"], stack["resources"] = {}, []
        write_events(args, {"delete": 20})
        record(stack, "destroy", {"delete": 20})
    else:
        fail(f"fake pulumi does not know: {' '.join(args)}", code=1)
    save(state)


if __name__ == "__main__":
    main(sys.argv[1:])

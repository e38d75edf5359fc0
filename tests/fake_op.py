"""A stand-in for the 1Password CLI `op`, for the calls `init --create-1password` makes (cluster_secrets/init.py).

No real 1Password account is behind it: it answers as the CLI's reference and help text describe
(developer.1password.com/docs/cli/reference), keeping its account in $FAKE_OP_DIR/state.json, and
records each call (argv, the folder it ran in and that folder's mode, stdin) in $FAKE_OP_DIR/calls.jsonl.
It refuses (exit 99) any argv that holds one of its secrets: the token it issues or the credentials file.

$FAKE_OP_VERSION is what `op --version` prints (default 2.30.0), $FAKE_OP_FAIL a command that fails
(e.g. "document create"), $FAKE_OP_SIGNED_OUT=1 makes `op whoami` fail.
The error wording for a missing item or vault is the CLI's (`"X" isn't an item in the "V" vault.`);
for a missing Connect server it is assumed alike.
"""

import json
import os
import sys
from pathlib import Path

HOME = Path(os.environ.get("FAKE_OP_DIR", "."))  # the tests import the constants below
STATE = HOME / "state.json"
TOKEN = "canary-connect-token-op-4e1d"  # what `op connect token create` prints
CREDENTIALS = json.dumps({"verifier": {"salt": "canary-op-salt"}, "encCredentials": {"data": "canary-op-creds-c9"}})
SECRETS = (TOKEN, "canary-op-creds-c9", "canary-op-salt")
CREDENTIALS_FILE = "1password-credentials.json"


def load() -> dict:
    if STATE.exists():
        return json.loads(STATE.read_text())
    return {"vaults": [], "items": {}, "servers": {}, "tokens": []}


def save(state: dict) -> None:
    STATE.write_text(json.dumps(state, indent=2))


def fail(message: str, code: int = 1) -> None:
    print(f"[ERROR] 2026/11/28 10:00:00 {message}", file=sys.stderr)
    sys.exit(code)


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def options(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


def positional(args: list[str], start: int) -> list[str]:
    """The arguments after `start` that are neither a flag nor a flag's value."""
    found, skip = [], False
    for arg in args[start:]:
        if skip:
            skip = False
        elif arg.startswith("--"):
            skip = "=" not in arg
        else:
            found.append(arg)
    return found


def main(args: list[str]) -> None:
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    cwd = Path.cwd()
    with open(HOME / "calls.jsonl", "a", encoding="utf-8") as calls:
        entry = {"args": args, "cwd": str(cwd), "cwd_mode": oct(cwd.stat().st_mode & 0o777), "stdin": stdin}
        calls.write(json.dumps(entry) + "\n")
    if any(secret in arg for arg in args for secret in SECRETS):
        fail("a secret is on the command line", 99)
    command = " ".join(positional(args, 0)[:3])
    if os.environ.get("FAKE_OP_FAIL") and command.startswith(os.environ["FAKE_OP_FAIL"]):
        fail(f"{os.environ['FAKE_OP_FAIL']} failed (the fake was told to)")
    state = load()
    if args == ["--version"]:
        print(os.environ.get("FAKE_OP_VERSION", "2.30.0"))
    elif args[:1] == ["whoami"]:
        if os.environ.get("FAKE_OP_SIGNED_OUT"):
            fail("account is not signed in")
        print(json.dumps({"url": "https://fake.1password.com", "user_type": "HUMAN"}))
    elif args[:2] == ["vault", "get"]:
        name = positional(args, 2)[0]
        if name not in state["vaults"]:
            fail(f'"{name}" isn\'t a vault in this account. Specify the vault with its ID or name.')
        print(json.dumps({"id": f"id-{name}", "name": name}))
    elif args[:2] == ["item", "get"]:
        title, vault = positional(args, 2)[0], option(args, "--vault")
        item = state["items"].get(vault, {}).get(title)
        if item is None:
            fail(f'"{title}" isn\'t an item in the "{vault}" vault. Specify the item with its UUID, name, or domain.')
        print(json.dumps(item))  # values and all, as the CLI does
    elif args[:3] == ["connect", "server", "get"]:
        name = positional(args, 3)[0]
        if name not in state["servers"]:
            fail(f'"{name}" isn\'t a Connect server in this account.')
        print(json.dumps({"id": f"id-{name}", "name": name, "state": "ACTIVE"}))
    elif args[:3] == ["connect", "server", "create"]:
        name = positional(args, 3)[0]
        if (cwd / CREDENTIALS_FILE).exists():
            fail(f"{CREDENTIALS_FILE} exists in the current directory (the CLI would ask before overwriting it)")
        state["servers"][name] = {"vaults": (option(args, "--vaults") or "").split(",")}
        (cwd / CREDENTIALS_FILE).write_text(CREDENTIALS)
        (cwd / CREDENTIALS_FILE).chmod(0o600)
        print(f"Set up a Connect server.\nUUID: id-{name}\nCredentials file: {cwd / CREDENTIALS_FILE}")
    elif args[:2] == ["document", "create"]:
        path, title, vault = positional(args, 2)[0], option(args, "--title") or "", option(args, "--vault")
        content = (cwd / path).read_text()
        state["items"].setdefault(vault, {})[title] = {
            "id": f"id-{title}",
            "title": title,
            "category": "DOCUMENT",
            "files": [{"name": Path(path).name, "content": content}],
        }
        print(json.dumps({"uuid": f"id-{title}", "createdAt": "2026-11-28T10:00:00Z"}))
    elif args[:3] == ["connect", "token", "create"]:
        server = option(args, "--server")
        if server not in state["servers"]:
            fail(f'"{server}" isn\'t a Connect server in this account.')
        state["tokens"].append({"name": positional(args, 3)[0], "server": server, "vaults": options(args, "--vault")})
        print(TOKEN)
    elif args[:2] == ["item", "create"] and "-" in positional(args, 2):
        template = json.loads(stdin)
        item = {"id": f"id-{template['title']}", **template}
        state["items"].setdefault(option(args, "--vault"), {})[template["title"]] = item
        print(json.dumps(item))  # the CLI answers with the item, its concealed values included
    else:
        fail(f"the fake does not know `op {' '.join(args)}`", 2)
    save(state)


if __name__ == "__main__":
    main(sys.argv[1:])

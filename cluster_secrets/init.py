"""`init STACK`: write a new stack file, and with --create-1password make what is missing in 1Password.

The stack file is Pulumi.homelab.yaml (the reference stack) read as a round trip, so its comments,
`pulumi:disable-default-providers` and pinned chart versions (with their Renovate comments) carry
over, with this cluster's values set. It is validated by the same model `up` uses before anything
is written, and it never replaces a file that exists.

With --create-1password the `op` CLI (2.23.0 or newer) makes, in the init vault, what is missing:
a Connect server for this cluster (with access to the store's vaults) whose
1password-credentials.json is saved as a Document, and a read-only Connect token saved as an API
Credential item. An item that exists is reused, never replaced. No secret is ever on a command
line or printed: the credentials file is written by `op` into a private temporary folder, removed
afterwards (also on failure), and the token goes from one `op`'s stdout to the next one's stdin.

The commands (1Password CLI reference, developer.1password.com/docs/cli/reference/management-commands/):
  op connect server create NAME --vaults V1,V2      writes 1password-credentials.json in the current folder
  op document create FILE --title TITLE --vault V
  op connect token create NAME --server S --vault V,r   `,r` limits the token to read-only; prints the token
  op item create --vault V -                         an item JSON template on stdin
"""

import argparse
import dataclasses
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml.comments import CommentedMap

from cluster_secrets.errors import UsageError
from cluster_secrets.kube import kubeconfig_paths
from cluster_secrets.onepassword import OnePasswordError
from cluster_secrets.stack_files import project_values, round_trip, stack_config
from components.config import CHART_VERSION_KEYS, PROJECT, StackConfig, load_config
from components.errors import ConfigError

TEMPLATE = "Pulumi.homelab.yaml"
CREDENTIALS_FILE = "1password-credentials.json"
MIN_OP_VERSION = (2, 23, 0)
OP_TIMEOUT = 120  # seconds for each `op` call (a desktop-app sign-in prompt may be waiting)
ATTEMPTS = 3  # answers to one question before giving up
STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # what Pulumi accepts in a stack name

Print = Callable[[str], None]
Ask = Callable[[str, Sequence[str]], str]  # (prompt, choices: empty for free text) -> the answer

# The values init asks for when their flag is missing: option field, flag, question.
REQUIRED = (
    ("kube_context", "--kube-context", "Kube context of the cluster"),
    ("init_vault", "--init-vault", "Init vault (holds the Connect credentials file and token)"),
    ("working_vault", "--working-vault", "Working vault (where the stack creates the Argo CD items)"),
)


@dataclass(frozen=True)
class InitOptions:
    kube_context: str = ""
    kubeconfig_path: str = ""
    init_vault: str = ""
    working_vault: str = ""
    argocd_namespace: str = ""
    primary_stack: str = ""
    create_1password: bool = False
    connect_server: str = ""  # empty: cluster-secrets-STACK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `init`, on its subparser (the caller adds the STACK positional)."""
    parser.add_argument("--kube-context", default="", help="kubeconfig context of the cluster (asked if missing)")
    parser.add_argument("--kubeconfig-path", default="", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--init-vault", default="", help="vault holding the Connect credentials and token")
    parser.add_argument("--working-vault", default="", help="vault where the stack creates the Argo CD items")
    parser.add_argument("--argocd-namespace", default="", help="namespace of Argo CD (default argocd)")
    parser.add_argument(
        "--primary-stack", default="", help="<org>/cluster-secrets/<stack> this stack follows (chart versions too)"
    )
    parser.add_argument(
        "--create-1password",
        action="store_true",
        help="make the Connect server, its credentials Document and token item if missing (needs op 2.23.0+)",
    )
    parser.add_argument(
        "--connect-server", default="", metavar="NAME", help="Connect server name (default cluster-secrets-STACK)"
    )


def options_from(args: argparse.Namespace) -> InitOptions:
    return InitOptions(
        kube_context=args.kube_context,
        kubeconfig_path=args.kubeconfig_path,
        init_vault=args.init_vault,
        working_vault=args.working_vault,
        argocd_namespace=args.argocd_namespace,
        primary_stack=args.primary_stack,
        create_1password=args.create_1password,
        connect_server=args.connect_server,
    )


def _ask_on_terminal(prompt: str, choices: Sequence[str]) -> str:
    for number, choice in enumerate(choices, 1):
        print(f"  {number}) {choice}", file=sys.stderr)
    sys.stderr.write(f"{prompt}{f' [1-{len(choices)}]' if choices else ''}: ")
    sys.stderr.flush()
    return input()


def terminal_ask() -> Ask | None:
    """Questions on the terminal; None when stdin is not one (then a missing flag is an error)."""
    return _ask_on_terminal if sys.stdin.isatty() else None


def run(
    project_dir: Path, stack: str, options: InitOptions, say: Print, ask: Ask | None, environ: Mapping[str, str]
) -> int:
    """Write Pulumi.STACK.yaml (and with --create-1password make what is missing in 1Password).
    Raises UsageError (exit 2) for what it refuses and OnePasswordError (exit 1) for a failed `op`."""
    if not STACK_NAME.match(stack):
        raise UsageError(f"{stack!r} is not a stack name (expected letters, digits, '-', '_' or '.')")
    target = project_dir / f"Pulumi.{stack}.yaml"
    if target.exists():
        raise UsageError(f"{target.name} exists already; init never replaces a stack file (edit it instead).")
    kubeconfig, contexts = kube_contexts(options.kubeconfig_path, environ)
    options = _completed(options, stack, ask, contexts, kubeconfig)
    if contexts and options.kube_context not in contexts:
        say(f"note: context {options.kube_context!r} is not in {kubeconfig}; `up` needs it there.")
    text = stack_text(project_dir, stack, options)
    config = validated(project_dir, stack, text)
    if options.create_1password:
        server = options.connect_server or f"cluster-secrets-{stack}"
        path = shutil.which("op", path=environ.get("PATH"))
        if path is None:
            for line in by_hand(config, server, stack):
                say(line)
            raise UsageError(
                "--create-1password needs the 1Password CLI `op` (2.23.0 or newer) on PATH "
                "(https://developer.1password.com/docs/cli/get-started/). Nothing was made and "
                f"{target.name} was not written: run the commands above, then init again without --create-1password."
            )
        OnePassword(path, environ, say).ensure(config, server, stack)
    write_new(target, text)
    say(
        f"Wrote {target.name}: kube context {config.kube_context!r}, init vault {config.init_vault!r}, "
        f"working vault {config.working_vault!r}."
    )
    if not options.create_1password:
        say(
            f"Before `up`, the init vault {config.init_vault!r} must hold {config.credentials_item!r} (the Connect "
            f"credentials file) and {config.token_item!r} (its token); README: Your own cluster."
        )
    say(f"Next: ./cluster-secrets plan {stack} --new-stack")
    say(f"Then: ./cluster-secrets up {stack}")
    return 0


def kube_contexts(configured: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The kubeconfig init reads (--kubeconfig-path, else $KUBECONFIG, a path list, else
    ~/.kube/config) and the names of its contexts; none where it cannot be read."""
    chosen, paths = kubeconfig_paths(configured, environ)
    names: list[str] = []
    for path in paths:
        try:
            document = pyyaml.safe_load(Path(path).read_text())
        except (OSError, pyyaml.YAMLError):
            continue
        contexts = document.get("contexts") if isinstance(document, dict) else None
        for context in contexts if isinstance(contexts, list) else []:
            name = context.get("name") if isinstance(context, dict) else None
            if isinstance(name, str) and name and name not in names:
                names.append(name)
    return chosen, names


def _completed(options: InitOptions, stack: str, ask: Ask | None, contexts: list[str], kubeconfig: str) -> InitOptions:
    missing = [(field, flag, question) for field, flag, question in REQUIRED if not getattr(options, field).strip()]
    if not missing:
        return options
    if ask is None:
        raise UsageError(
            f"init {stack}: missing {', '.join(flag for _, flag, _ in missing)} (no terminal to ask on); "
            f"e.g. ./cluster-secrets init {stack} --kube-context CONTEXT --init-vault VAULT --working-vault VAULT"
        )
    answers: dict[str, Any] = {}
    for field, _, question in missing:
        if field == "kube_context" and contexts:
            answers[field] = _asked(ask, f"{question} (the contexts of {kubeconfig})", contexts)
        else:
            answers[field] = _asked(ask, question, [])
    return dataclasses.replace(options, **answers)


def _asked(ask: Ask, question: str, choices: Sequence[str]) -> str:
    """An answer: one of `choices` (by number or name) when there are some, else any non-empty text."""
    for _ in range(ATTEMPTS):
        try:
            answer = ask(question, choices).strip()
        except EOFError:
            break
        if choices and answer.isdigit() and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1]
        if answer and (not choices or answer in choices):
            return answer
    raise UsageError(f"no answer to {question!r}" + (f" among {', '.join(choices)}" if choices else ""))


def stack_text(project_dir: Path, stack: str, options: InitOptions) -> str:
    """The new stack file: the template with this cluster's values, its comments kept."""
    try:
        document = round_trip().load((project_dir / TEMPLATE).read_text())
    except OSError as error:
        raise UsageError(f"{TEMPLATE}: cannot be read ({error.strerror}); init writes stack files from it") from None
    config: CommentedMap = document["config"]

    def key(name: str) -> str:
        return f"{PROJECT}:{name}"

    config[key("kubeContext")] = options.kube_context
    after = list(config).index(key("kubeContext")) + 1
    for name, value in (("kubeconfigPath", options.kubeconfig_path), ("primaryStack", options.primary_stack)):
        if value:
            config.insert(after, key(name), value)
            after += 1
    config[key("initVault")] = options.init_vault
    config[key("workingVault")] = options.working_vault
    config[key("storeVaults")] = CommentedMap([(options.working_vault, 1)])
    if options.argocd_namespace:
        config[key("argocdNamespace")] = options.argocd_namespace
    document.ca.comment = None
    if options.primary_stack:
        # As Pulumi.homelab-2.yaml: chart versions follow the primary's, and each Connect server and
        # each stack's Argo CD items have their own titles (the primary's are the primary's).
        for version_key in CHART_VERSION_KEYS.values():
            _remove(config, key(version_key))
        for name in ("credentialsItem", "tokenItem", "argocdSecretItem", "argocdAdminItem"):
            config[key(name)] = f"{config[key(name)]}-{stack}"
        document.yaml_set_start_comment(
            f"Stack {stack}, written by `./cluster-secrets init`. It follows {options.primary_stack}: its chart\n"
            "versions are the primary's unless pinned here. Its Connect server and Argo CD items are its own."
        )
    else:
        document.yaml_set_start_comment(
            f"Stack {stack}, written by `./cluster-secrets init` from {TEMPLATE}. Chart versions are the\n"
            "project's pinned ones (Renovate bumps them here too)."
        )
    stream = io.StringIO()
    round_trip().dump(document, stream)
    return stream.getvalue()


def _remove(config: CommentedMap, key: str) -> None:
    """Delete a key and the comment above it (ruamel keeps that comment on the key before)."""
    if key not in config:
        return
    keys = list(config)
    position = keys.index(key)
    if position:
        tokens = config.ca.items.get(keys[position - 1])
        if tokens and len(tokens) > 2:
            tokens[2] = None
    del config[key]


def validated(project_dir: Path, stack: str, text: str) -> StackConfig:
    """The new file read as `up` reads it (beside Pulumi.yaml, in a private folder) and validated."""
    with tempfile.TemporaryDirectory(prefix="cluster-secrets-init-") as folder:
        shutil.copy(project_dir / "Pulumi.yaml", Path(folder) / "Pulumi.yaml")
        (Path(folder) / f"Pulumi.{stack}.yaml").write_text(text)
        try:
            return load_config(project_values(stack_config(Path(folder), stack)), stack)
        except (UsageError, ConfigError) as error:
            raise UsageError(f"Pulumi.{stack}.yaml not written: {error}") from None


def write_new(target: Path, text: str) -> None:
    """Write `text` under a temporary name beside `target`, then link it in place: never over a file."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as any file written here (mkstemp's is private)
        os.link(temporary, target)
    except FileExistsError:
        raise UsageError(f"{target.name} exists already; init never replaces a stack file.") from None
    finally:
        os.unlink(temporary)


def _token_name(stack: str) -> str:
    return f"external-secrets-{stack}"


def _vault_access(config: StackConfig) -> list[str]:
    """`--vault V,r` for each vault the store searches: the token reads, never writes."""
    return [arg for vault in config.store_vaults for arg in ("--vault", f"{vault},r")]


def by_hand(config: StackConfig, server: str, stack: str) -> list[str]:
    """The commands --create-1password runs, to run by hand (skip what exists already)."""
    q = shlex.quote
    init = q(config.init_vault)
    token = [
        "op",
        "connect",
        "token",
        "create",
        _token_name(stack),
        "--server",
        server,
        *_vault_access(config),
    ]
    return [
        "Without the op CLI, make these by hand (skip any that exists already in the init vault). In a",
        'folder only you can read, signed in (eval "$(op signin)") or with OP_SERVICE_ACCOUNT_TOKEN:',
        "",
        'cd "$(mktemp -d)"',
        f"op connect server create {q(server)} --vaults {q(','.join(config.store_vaults))}",
        f"op document create {CREDENTIALS_FILE} --title {q(config.credentials_item)} --vault {init}",
        f"rm {CREDENTIALS_FILE}",
        shlex.join(token),
        "# It prints the token once. Don't put it on a command line: in the 1Password app, add an API",
        f"# Credential item titled {config.token_item!r} to vault {config.init_vault!r} and paste the token",
        "# into its credential field.",
        "",
    ]


def _missing(stderr: str) -> bool:
    """`op` saying an object does not exist: `"X" isn't an item in the "V" vault.`, `isn't a vault`
    (the wording of the CLI's item and vault errors; for a Connect server it is assumed alike)."""
    return "isn't a" in stderr or "not found" in stderr.lower()


class OnePassword:
    """The `op` calls of --create-1password. Each is shown as `op ...` (its argv: never a secret;
    stdin is never shown); its output stays here."""

    def __init__(self, path: str, environ: Mapping[str, str], say: Print):
        self.path, self.say = path, say
        self.environ = {k: v for k, v in environ.items() if k != "OP_FORMAT"}  # every output as asked here
        self.secrets: list[str] = []  # cut out of any message

    def call(self, *args: str, cwd: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        self.say("op " + shlex.join(args))
        feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        try:
            return subprocess.run(
                [self.path, *args],
                cwd=cwd,
                env=self.environ,
                capture_output=True,
                text=True,
                timeout=OP_TIMEOUT,
                check=False,
                **feed,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise OnePasswordError(f"cannot run `op {args[0]}`: {self.scrubbed(str(error))}") from None

    def scrubbed(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        return text

    def failure(self, args: Sequence[str], done: subprocess.CompletedProcess[str]) -> OnePasswordError:
        return OnePasswordError(f"`op {shlex.join(args)}` failed: {self.scrubbed(done.stderr.strip()[-400:])}")

    def ok(self, *args: str, cwd: str | None = None, stdin: str | None = None) -> str:
        done = self.call(*args, cwd=cwd, stdin=stdin)
        if done.returncode != 0:
            raise self.failure(args, done)
        return done.stdout

    def exists(self, *args: str) -> bool:
        """Whether `op ... get` finds the object; its output (an item's values too) is dropped."""
        done = self.call(*args, "--format", "json")
        if done.returncode == 0:
            return True
        if _missing(done.stderr):
            return False
        raise self.failure(args, done)

    def check_cli(self) -> None:
        version = self.ok("--version").strip()
        found = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
        if not found or tuple(int(part) for part in found.groups()) < MIN_OP_VERSION:
            raise UsageError(
                f"op {version or '(no version)'} is too old: --create-1password needs the 1Password CLI 2.23.0 or "
                "newer (https://developer.1password.com/docs/cli/get-started/)"
            )
        if self.environ.get("OP_SERVICE_ACCOUNT_TOKEN"):
            return
        done = self.call("whoami", "--format", "json")
        if done.returncode != 0:
            raise UsageError(
                f"op is not signed in ({self.scrubbed(done.stderr.strip()[-200:])}): sign in with "
                '`eval "$(op signin)"`, or set OP_SERVICE_ACCOUNT_TOKEN, and run init again'
            )

    def check_vaults(self, config: StackConfig) -> None:
        for vault in dict.fromkeys([config.init_vault, *config.store_vaults]):
            if not self.exists("vault", "get", vault):
                raise UsageError(
                    f"1Password has no vault {vault!r} that this account can see: create it "
                    f"(`op vault create {shlex.quote(vault)}`) or name another, and run init again"
                )

    def ensure(self, config: StackConfig, server: str, stack: str) -> None:
        """Make what is missing of the Connect server, its credentials Document and its token item."""
        init, credentials, token = config.init_vault, config.credentials_item, config.token_item
        self.check_cli()
        self.check_vaults(config)
        have_credentials = self.exists("item", "get", credentials, "--vault", init)
        have_token = self.exists("item", "get", token, "--vault", init)
        for title, present in ((credentials, have_credentials), (token, have_token)):
            if present:
                self.say(f"1Password: {title!r} is in vault {init!r} already: reused, not replaced.")
        if have_credentials and have_token:
            return
        if have_token:
            raise UsageError(
                f"{token!r} is in vault {init!r} but {credentials!r} is not: that token is another Connect server's, "
                f"whose credentials file is gone. Delete or rename {token!r} in 1Password, then run init again."
            )
        server_exists = self.exists("connect", "server", "get", server)
        if not have_credentials:
            if server_exists:
                raise UsageError(
                    f"Connect server {server!r} exists but its credentials are not in {credentials!r} in vault "
                    f"{init!r}, and 1Password hands out a server's {CREDENTIALS_FILE} only when it creates it. Make "
                    f"a new server: delete this one (`op connect server delete {shlex.quote(server)}`, which "
                    "revokes its tokens) or name another with --connect-server NAME, and run init again."
                )
            self.create_server(config, server)
        elif not server_exists:
            raise UsageError(
                f"{credentials!r} is in vault {init!r} but there is no Connect server {server!r} to issue its token: "
                "give --connect-server the name of the server those credentials belong to."
            )
        self.create_token_item(config, server, stack)

    def create_server(self, config: StackConfig, server: str) -> None:
        """The server and its credentials Document, the file only ever in a private temporary folder."""
        folder = tempfile.mkdtemp(prefix="cluster-secrets-op-")
        try:
            os.chmod(folder, 0o700)
            self.ok("connect", "server", "create", server, "--vaults", ",".join(config.store_vaults), cwd=folder)
            lost = (
                f"The Connect server {server!r} was created, but its credentials file is gone with the temporary "
                f"folder: delete the server (`op connect server delete {shlex.quote(server)}`) and run init again."
            )
            if not (Path(folder) / CREDENTIALS_FILE).is_file():
                raise OnePasswordError(f"`op connect server create` wrote no {CREDENTIALS_FILE}. {lost}")
            try:
                self.ok(
                    "document",
                    "create",
                    CREDENTIALS_FILE,
                    "--title",
                    config.credentials_item,
                    "--vault",
                    config.init_vault,
                    "--format",
                    "json",
                    cwd=folder,
                )
            except OnePasswordError as error:
                raise OnePasswordError(f"{error}\n{lost}") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.say(
            f"1Password: made Connect server {server!r} (vaults {', '.join(config.store_vaults)}) and Document "
            f"{config.credentials_item!r} in vault {config.init_vault!r} with its {CREDENTIALS_FILE}."
        )

    def create_token_item(self, config: StackConfig, server: str, stack: str) -> None:
        """A read-only token for the store's vaults, from `op connect token create`'s stdout straight to
        `op item create`'s stdin, as the `credential` of an API Credential item."""
        name = _token_name(stack)
        printed = self.ok("connect", "token", "create", name, "--server", server, *_vault_access(config)).strip()
        if printed.startswith("{"):  # were it ever JSON
            try:
                printed = str(json.loads(printed).get("token", ""))
            except (ValueError, AttributeError):
                printed = ""
        if not printed or any(c.isspace() for c in printed):
            raise OnePasswordError("`op connect token create` did not print a token")
        self.secrets.append(printed)
        template = {
            "title": config.token_item,
            "category": "API_CREDENTIAL",
            "fields": [{"id": "credential", "label": "credential", "type": "CONCEALED", "value": printed}],
        }
        try:
            self.ok("item", "create", "--vault", config.init_vault, "--format", "json", "-", stdin=json.dumps(template))
        except OnePasswordError as error:
            raise OnePasswordError(
                f"{error}\nThe token {name!r} was issued but not saved: revoke it "
                f"(`op connect token delete {shlex.quote(name)} --server {shlex.quote(server)}`) and run init again."
            ) from None
        self.say(
            f"1Password: made API Credential {config.token_item!r} in vault {config.init_vault!r}: token {name!r} "
            f"of {server!r}, read-only on {', '.join(config.store_vaults)}."
        )

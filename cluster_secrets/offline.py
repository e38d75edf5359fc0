"""Evaluate the Pulumi program without an engine, a cluster, 1Password or the Pulumi CLI.

The real Pulumi SDK and provider SDKs run the real program; Pulumi's mock hooks stand in for the
engine and the providers. `plan` uses this to print the desired state, and the tests use it to
check the program. Nothing here talks to a cluster: outputs are fakes, said to be fakes.

- Config is built as the CLI builds it: Pulumi.yaml defaults, then the stack file.
- 1Password reads are answered from `vaults` (vault -> item title -> fields), or, where `vaults`
  is None, by labelled placeholders for whatever is asked.
- Every registration is recorded as the engine receives it: type, parent, provider,
  dependencies and raw inputs with secrets still wrapped.
"""

import base64
import json
import logging
import runpy
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from components.admin_secret import ARGOCD_SECRET_KEYS
from components.config import PROJECT, StackConfig

ORGANIZATION = "organization"  # the organization of DIY backends (file, S3)

# Values the fake providers return, distinctive so that tests can look for them as canaries.
FAKE_PASSWORD_PREFIX = "OfflineRandomPassword"
FAKE_BYTES_HEX = "c0ffee"  # RandomBytes: this pattern repeated
FAKE_TIMESTAMP = "2000-01-01T00:00:00Z"
UUID_PREFIX = "uuid-"  # a fake vault's or item's UUID is this prefix and its name

# The engine's marker for a secret value in a serialized property.
SECRET_SIG = rpc._special_sig_key
SECRET_VALUE_SIG = rpc._special_secret_sig

Vaults = Mapping[str, Mapping[str, Mapping[str, Any]]]


def attached_file(content: bytes, name: str = "1password-credentials.json") -> dict[str, str]:
    """A file attached to a 1Password item, as the provider's getItem returns it."""
    return {
        "id": f"file-{name}",
        "name": name,
        "content": content.decode(errors="replace"),
        "contentBase64": base64.b64encode(content).decode(),
    }


def placeholder_item(vault: str, title: str) -> dict[str, Any]:
    """What `plan` answers for any item: labelled placeholders shaped like the real thing (a password,
    a credentials file, and argocd-secret's fields in a section, for an adopted stack's items)."""
    label = f"<placeholder for 1Password {vault}/{title}>"
    credentials = {name: label for name in ("verifier", "encCredentials", "version", "deviceUuid", "uniqueKey")}
    section = {"label": "", "fields": [{"label": key, "value": label} for key in ARGOCD_SECRET_KEYS]}
    return {
        "category": "secure_note",
        "password": label,
        "files": [attached_file(json.dumps(credentials).encode())],
        "sections": [section],
    }


class ProviderError(grpc.RpcError):
    """What the engine raises when a provider answers an invoke with an error."""

    def __init__(self, details: str):
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


@dataclass(frozen=True)
class StackOutputs:
    """What a StackReference reads: a stack's outputs, and which of them are secret."""

    outputs: Mapping[str, Any]
    secret: frozenset[str] = frozenset()


class OfflineCloud(pulumi.runtime.Mocks):
    """The providers' side: realistic outputs per type token, a fake 1Password, and other stacks.

    A StackReference to this stack itself reads `previous_outputs` (a new stack has none); one to
    a stack in `other_stacks` reads its outputs; any other stack does not exist.
    """

    def __init__(
        self,
        vaults: Vaults | None,
        previous_outputs: Mapping[str, Any],
        other_stacks: Mapping[str, StackOutputs] | None = None,
    ):
        self.vaults = vaults
        self.previous_outputs = previous_outputs
        self.other_stacks = other_stacks or {}
        self.self_reference = ""  # set by `evaluate`

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        if args.typ == "kubernetes:helm.sh/v3:Release":
            state["status"] = {
                "name": args.inputs["name"],
                "namespace": args.inputs["namespace"],
                "status": "deployed",
                "version": args.inputs["version"],
                "revision": 1,
            }
        elif args.typ == "random:index/randomPassword:RandomPassword":
            length = int(args.inputs["length"])
            state["result"] = (FAKE_PASSWORD_PREFIX + "x" * length)[:length]
        elif args.typ == "random:index/randomBytes:RandomBytes":
            length = int(args.inputs["length"])
            raw = bytes.fromhex(FAKE_BYTES_HEX * length)[:length]
            state.update(hex=raw.hex(), base64=base64.b64encode(raw).decode())
        elif args.typ == "time:index/static:Static":
            state.update(rfc3339=FAKE_TIMESTAMP, unix=946684800)
        elif args.typ == "onepassword:index/item:Item":
            state["uuid"] = f"item-{args.name}"
        elif args.typ == "pulumi:pulumi:StackReference":
            if args.name == self.self_reference:
                stack = StackOutputs(self.previous_outputs)
            elif args.name in self.other_stacks:
                stack = self.other_stacks[args.name]
            else:
                raise ProviderError(f"unknown stack {args.name!r}")
            state.update(outputs=dict(stack.outputs), secretOutputNames=sorted(stack.secret))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return self._answer(args), []

    def _answer(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "onepassword:index/getVault:getVault":
            name = args.args["name"]
            if self.vaults is not None and name not in self.vaults:
                raise ProviderError(f"vault {name!r} not found")
            return {"name": name, "uuid": f"{UUID_PREFIX}{name}", "description": ""}
        if args.token == "onepassword:index/getItem:getItem":
            vault = args.args["vault"].removeprefix(UUID_PREFIX)
            title = args.args["title"]
            if self.vaults is None:
                item: Mapping[str, Any] | None = placeholder_item(vault, title)
            else:
                item = self.vaults.get(vault, {}).get(title)
            if item is None:
                raise ProviderError(f"error looking up item: no item found with title {title!r}")
            if "providerError" in item:  # a read that fails: rate limit, network, permissions
                raise ProviderError(item["providerError"])
            return {"title": title, "uuid": f"{UUID_PREFIX}{title}", "vault": args.args["vault"], **item}
        raise NotImplementedError(f"no offline answer for invoke {args.token}")


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]  # raw: secrets are still wrapped
    aliases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plain(self) -> dict[str, Any]:
        """The inputs with secrets unwrapped."""
        return unwrap_secrets(self.inputs)


class RecordingLog(logging.Logger):
    """The engine's log: keeps every (severity, message) the program logs (pulumi.log)."""

    def __init__(self) -> None:
        super().__init__("offline-engine")
        self.messages: list[tuple[str, str]] = []

    def _log(self, level: int, msg: object, args: Any, *_: Any, **__: Any) -> None:
        self.messages.append((logging.getLevelName(level).lower(), str(msg)))


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps every registration, read, invoke, registered output and log message."""

    mocks: OfflineCloud

    def __init__(self, mocks: OfflineCloud):
        super().__init__(mocks)
        self.log = RecordingLog()
        self.registrations: list[Registration] = []
        self.reads: list[Registration] = []
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        self.registered_outputs: dict[str, dict[str, Any]] = {}

    def _record(self, request: Any, urn: str, properties: Any) -> Registration:
        return Registration(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent,
            provider=request.provider,
            dependencies=list(request.dependencies),
            inputs=json_format.MessageToDict(properties),
            aliases=[json_format.MessageToDict(alias) for alias in getattr(request, "aliases", [])],
        )

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(self._record(request, response.urn, request.object))
        return response

    def ReadResource(self, request):
        response = super().ReadResource(request)
        self.reads.append(self._record(request, response.urn, request.properties))
        return response

    def Invoke(self, request):
        self.invokes.append((request.tok, json_format.MessageToDict(request.args)))
        return super().Invoke(request)

    def RegisterResourceOutputs(self, request):
        self.registered_outputs[request.urn] = json_format.MessageToDict(request.outputs)
        return super().RegisterResourceOutputs(request)


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG


def unwrap_secrets(value: Any) -> Any:
    if is_secret(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def plaintext_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string outside a secret wrapper, with its path."""
    if is_secret(value):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from plaintext_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from plaintext_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


@dataclass
class Evaluation:
    monitor: RecordingMonitor
    outputs: dict[str, Any]  # stack outputs, resolved and unwrapped
    secret_outputs: set[str] = field(default_factory=set)
    config: StackConfig | None = None  # the stack's validated config, where the caller had it

    @property
    def registrations(self) -> list[Registration]:
        return self.monitor.registrations


def recording_monitor(
    vaults: Vaults | None,
    previous_outputs: Mapping[str, Any] | None = None,
    other_stacks: Mapping[str, StackOutputs] | None = None,
) -> RecordingMonitor:
    return RecordingMonitor(OfflineCloud(vaults, previous_outputs or {}, other_stacks))


def evaluate(
    program_dir: Path,
    stack: str,
    monitor: RecordingMonitor,
    config: Mapping[str, str],
) -> Evaluation:
    """Run the program in `program_dir` once for `stack`, as `pulumi up` would, against `monitor`'s fakes,
    with `config` as the CLI would hand it over (stack_files.stack_config).

    `preview=False`, so every `apply` runs. Errors the program raises propagate.
    """
    _import_components_from(program_dir)
    monitor.mocks.self_reference = f"{ORGANIZATION}/{PROJECT}/{stack}"
    pulumi.runtime.settings.ROOT.set(None)  # a fresh root stack: no output survives from another run
    pulumi.runtime.set_mocks(
        monitor.mocks,
        project=PROJECT,
        stack=stack,
        preview=False,
        monitor=monitor,
        organization=ORGANIZATION,
        logger=monitor.log,
    )
    pulumi.runtime.set_all_config(dict(config))

    @pulumi.runtime.test
    def run_program() -> None:
        runpy.run_path(str(program_dir / "__main__.py"), run_name="__main__")

    run_program()
    root = pulumi.runtime.settings.get_root_resource()
    assert root is not None
    outputs, secret = _resolve_outputs(root.outputs)  # type: ignore[attr-defined]
    return Evaluation(monitor=monitor, outputs=outputs, secret_outputs=secret)


def _import_components_from(program_dir: Path) -> None:
    """The program imports its own `components` package: make it the one beside its __main__.py,
    even where another version was imported first (plan --diff evaluates an older tree)."""
    loaded = sys.modules.get("components")
    if loaded is not None and Path(str(loaded.__file__)).resolve().parent.parent != program_dir.resolve():
        for name in [module for module in sys.modules if module.split(".")[0] == "components"]:
            del sys.modules[name]
    if str(program_dir) in sys.path:
        sys.path.remove(str(program_dir))
    sys.path.insert(0, str(program_dir))


def _resolve_outputs(exported: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    resolved: dict[str, Any] = {}
    secret: set[str] = set()

    async def resolve_all() -> None:
        for name, value in exported.items():
            output = pulumi.Output.from_input(value)
            resolved[name] = await output.future()
            if await output.is_secret():
                secret.add(name)

    _sync_await(resolve_all())
    return resolved, secret

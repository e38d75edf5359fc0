"""One mock harness for every test: the real Pulumi SDK and provider SDKs, a fake engine.

`run_stack` evaluates `__main__.py` afresh with `preview=False` (so every `apply` runs), against:
- config built the way the Pulumi CLI builds it: Pulumi.yaml defaults, then the stack file;
- a fake 1Password (vaults and items, answering the provider's invokes);
- fake providers that return realistic outputs per type token;
- a recording monitor that keeps every registration (type, parent, provider, dependencies and
  the raw inputs, secrets still wrapped) and every invoke.
"""

import base64
import json
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pytest
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "__main__.py"
SHARED_UPSTREAM = ROOT.parent / "shared" / "upstream"
PROJECT = "cluster-secrets"
ORGANIZATION = "organization"  # what DIY backends use

# Canaries: secret values that must never appear outside a Pulumi secret.
CANARY_TOKEN = "canary-connect-token-7f3a"
CANARY_PASSWORD_PREFIX = "CanaryAdminPassword"
CANARY_SECRET_HEX = "c0ffee"  # RandomBytes hex output is this pattern repeated
CREDENTIALS = {
    "verifier": {"salt": "canary-verifier-salt", "localHash": "canary-local-hash"},
    "encCredentials": {"kid": "canary-kid", "enc": "A256GCM", "data": "canary-enc-data"},
    "version": "2",
    "deviceUuid": "canary-device-uuid",
    "uniqueKey": {"kid": "canary-unique-kid", "k": "canary-unique-key"},
}
CREDENTIALS_TEXT = json.dumps(CREDENTIALS)
CANARIES = (
    CANARY_TOKEN,
    CANARY_PASSWORD_PREFIX,
    CANARY_SECRET_HEX * 4,
    "canary-enc-data",
    base64.b64encode(CREDENTIALS_TEXT.encode()).decode()[:40],
    "$2b$10$",  # any bcrypt hash
)

# The Pulumi engine's marker for a secret value in a serialized property.
SECRET_SIG = rpc._special_sig_key
SECRET_VALUE_SIG = rpc._special_secret_sig


def stack_config(stack: str = "homelab", overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Config as the CLI hands it to the program: project defaults, the stack file, then overrides.

    Values are strings; objects and lists are JSON, as the engine passes them.
    """
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {
        f"{PROJECT}:{key}": spec["default"] for key, spec in project["config"].items() if "default" in spec
    }
    values.update(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])
    for key, value in (overrides or {}).items():
        values[key if ":" in key else f"{PROJECT}:{key}"] = value
    return {key: _config_text(value) for key, value in values.items() if value is not None}


def _config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def credentials_file(content: bytes, name: str = "1password-credentials.json") -> dict[str, str]:
    return {
        "id": "file-1",
        "name": name,
        "content": content.decode(errors="replace"),
        "contentBase64": base64.b64encode(content).decode(),
    }


def default_vaults() -> dict[str, dict[str, dict[str, Any]]]:
    """The reference setup's 1Password: vault name -> item title -> item fields."""
    return {
        "InitHomeLab": {
            "1password-credentials": {"files": [credentials_file(CREDENTIALS_TEXT.encode())]},
            "onepassword-connect-token": {"password": CANARY_TOKEN},
        },
        "HomeLab": {},
    }


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]  # raw: secrets are still wrapped, unknowns still marked

    @property
    def plain(self) -> dict[str, Any]:
        """The inputs with secrets unwrapped."""
        return unwrap_secrets(self.inputs)


class ProviderError(grpc.RpcError):
    """What the engine raises when a provider answers an invoke with an error."""

    def __init__(self, details: str):
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


class FakeCloud(pulumi.runtime.Mocks):
    """The providers' side: realistic outputs per type token, and a fake 1Password."""

    def __init__(self, vaults: Mapping[str, Mapping[str, Mapping[str, Any]]], previous_outputs: Mapping[str, Any]):
        self.vaults = vaults
        self.previous_outputs = previous_outputs

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
            state["result"] = (CANARY_PASSWORD_PREFIX + "x" * length)[:length]
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = bytes.fromhex(CANARY_SECRET_HEX * int(args.inputs["length"]))[: int(args.inputs["length"])]
            state.update(hex=raw.hex(), base64=base64.b64encode(raw).decode())
        elif args.typ == "time:index/static:Static":
            state.update(rfc3339="2026-11-28T10:00:00Z", unix=1795860000)
        elif args.typ == "onepassword:index/item:Item":
            state["uuid"] = f"item-{args.name}"
        elif args.typ == "pulumi:pulumi:StackReference":
            state.update(outputs=dict(self.previous_outputs), secretOutputNames=[])
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return self._answer(args), []

    def _answer(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "onepassword:index/getVault:getVault":
            name = args.args["name"]
            if name not in self.vaults:
                raise ProviderError(f"vault {name!r} not found")
            return {"name": name, "uuid": f"uuid-{name}", "description": ""}
        if args.token == "onepassword:index/getItem:getItem":
            vault = args.args["vault"].removeprefix("uuid-")
            title = args.args["title"]
            item = self.vaults.get(vault, {}).get(title)
            if item is None:
                raise ProviderError(f"error looking up item: no item found with title {title!r}")
            return {"title": title, "uuid": f"uuid-{title}", "vault": args.args["vault"], **item}
        raise AssertionError(f"unexpected invoke {args.token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps every registration, read, invoke and registered output, as the engine received them."""

    def __init__(self, mocks: FakeCloud):
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.reads: list[Registration] = []
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        self.registered_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        self.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                inputs=json_format.MessageToDict(request.object),
            )
        )
        return response

    def ReadResource(self, request):
        response = super().ReadResource(request)
        self.reads.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                inputs=json_format.MessageToDict(request.properties),
            )
        )
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
class Run:
    monitor: RecordingMonitor
    outputs: dict[str, Any]  # stack outputs, resolved, secrets wrapped as pulumi.Output secrets are
    secret_outputs: set[str] = field(default_factory=set)

    @property
    def registrations(self) -> list[Registration]:
        return self.monitor.registrations

    def by_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registration:
        found = [r for r in self.by_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registration:
        found = [r for r in self.registrations if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def onepassword_invokes(self) -> list[str]:
        return [token for token, _ in self.monitor.invokes if token.startswith("onepassword:")]


def fakes(
    vaults: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    previous_outputs: Mapping[str, Any] | None = None,
) -> RecordingMonitor:
    """A recording monitor over a fake cloud: the reference 1Password, and the given previous outputs."""
    return RecordingMonitor(FakeCloud(default_vaults() if vaults is None else vaults, previous_outputs or {}))


def run_stack(
    stack: str = "homelab",
    config: Mapping[str, Any] | None = None,
    vaults: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    previous_outputs: Mapping[str, Any] | None = None,
    monitor: RecordingMonitor | None = None,
) -> Run:
    """Evaluate the program once, as `pulumi up` would, against the fakes (or `monitor`'s)."""
    monitor = monitor or fakes(vaults, previous_outputs)
    pulumi.runtime.settings.ROOT.set(None)  # a fresh root stack, so no output survives from another run
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor, organization=ORGANIZATION
    )
    pulumi.runtime.set_all_config(stack_config(stack, config))

    @pulumi.runtime.test
    def evaluate() -> None:
        runpy.run_path(str(MAIN), run_name="__main__")

    evaluate()
    root = pulumi.runtime.settings.get_root_resource()
    assert root is not None
    resolved, secret_names = _resolve_outputs(root.outputs)  # type: ignore[attr-defined]
    return Run(monitor=monitor, outputs=resolved, secret_outputs=secret_names)


def _resolve_outputs(exported: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    resolved: dict[str, Any] = {}
    secret: set[str] = set()

    async def resolve_all() -> None:
        for name, value in exported.items():
            output = pulumi.Output.from_input(value)
            resolved[name] = await output.future()
            if await output.is_secret():
                secret.add(name)

    pulumi.runtime.sync_await._sync_await(resolve_all())
    return resolved, secret


@pytest.fixture
def homelab() -> Run:
    return run_stack()


def upstream(*parts: str) -> Path:
    """A file of ../shared/upstream, or skip the test where that folder is absent."""
    path = SHARED_UPSTREAM.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the pinned upstream data (../shared/upstream) is not beside this checkout")
    return path

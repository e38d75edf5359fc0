"""A STAND-IN random provider plugin for the end-to-end suite: NOT the real pulumi-random.

random is the only stand-in left; time and onepassword are real plugins built by e2e/build-tools.
pulumi-random 4.21.4 cannot be built here: the Go module proxy refuses
`github.com/pulumi/pulumi-random/provider/v4`, and it serves terraform-provider-random only at
v1.3.1 and v2.0.0, not the v3 that pulumi-random 4.21.4 bridges. So this module serves a small
plugin that speaks the engine's gRPC ResourceProvider protocol and implements what cluster-secrets
uses:

- `RandomPassword`: length, special, upper, lower, numeric, min_*, override_special, keepers ->
  `result`, `bcryptHash` (a bcrypt of the first 72 bytes of `result`; the program does not use it).
- `RandomBytes`: length, keepers -> `hex`, `base64`.

Every input is replace-on-change, as in the real provider's schema; the generated values are secret.

What it cannot tell: how the real provider diffs (this one compares inputs with the previous inputs),
what refresh does (Read returns the stored state), and the real error texts and validation. The line
the plugin prints on stderr at start reaches the engine's debug log (`pulumi ... --debug`), not the
normal output.

Run: `python -m e2e.standin_providers serve random` (what the installed plugin script does),
`python -m e2e.standin_providers install` / `uninstall` (or `install --uninstall`). `uninstall` also
removes the time and onepassword stand-in scripts an earlier install left; it never touches a real
plugin.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import string
import sys
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import bcrypt
import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

# The version exactly as the Python package in requirements.txt: the engine wants an exact match.
VERSIONS = {"random": "4.21.4"}
# Names an earlier install wrote stand-ins for (time and onepassword are real plugins now).
FORMER_STANDINS = ("random", "time", "onepassword")
MARKER = "cluster-secrets STAND-IN provider plugin"  # in every installed script; uninstall checks it

Props = dict[str, Any]

# The engine's wire encodings inside a Struct (sdk/go/common/resource/plugin/rpc.go).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


# --- values ----------------------------------------------------------------------------------


def secret(value: Any) -> Props:
    """`value` marked secret, as the engine encodes it."""
    return {SIG_KEY: SECRET_SIG, "value": value}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def plain(value: Any) -> Any:
    """`value` with every secret marker removed (deeply)."""
    if is_secret(value):
        return plain(value.get("value"))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def has_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def from_struct(message: struct_pb2.Struct | None) -> Props:
    if message is None:
        return {}
    return dict(json_format.MessageToDict(message))


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update({k: v for k, v in props.items() if v is not None})
    return message


class ProviderError(Exception):
    """A failure to report to the engine as a gRPC error with this message (never a secret)."""


# --- diffs -----------------------------------------------------------------------------------

_KIND = provider_pb2.PropertyDiff
_KINDS = {
    ("add", False): _KIND.ADD,
    ("add", True): _KIND.ADD_REPLACE,
    ("delete", False): _KIND.DELETE,
    ("delete", True): _KIND.DELETE_REPLACE,
    ("update", False): _KIND.UPDATE,
    ("update", True): _KIND.UPDATE_REPLACE,
}


@dataclass(frozen=True)
class Diff:
    """Changed top-level properties: name -> (kind, replaces)."""

    changes: dict[str, tuple[str, bool]] = field(default_factory=dict)

    @property
    def replaces(self) -> list[str]:
        return sorted(k for k, (_, replace) in self.changes.items() if replace)

    def to_response(self) -> provider_pb2.DiffResponse:
        if not self.changes:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE, hasDetailedDiff=True)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME,
            replaces=self.replaces,
            diffs=sorted(self.changes),
            detailedDiff={
                key: provider_pb2.PropertyDiff(kind=_KINDS[(kind, replace)], inputDiff=True)
                for key, (kind, replace) in self.changes.items()
            },
            hasDetailedDiff=True,
        )


def diff_inputs(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    replace_on: Callable[[str], bool],
    ignore: frozenset[str] = frozenset(),
) -> Diff:
    """Compare inputs by value (secretness aside; absent equals null). An unknown new value counts as
    a change, as the engine cannot know better before the apply."""
    changes: dict[str, tuple[str, bool]] = {}
    for key in sorted((set(old) | set(new)) - ignore):
        before, after = plain(old.get(key)), new.get(key)
        if not has_unknown(after) and before == plain(after):
            continue
        kind = "add" if before is None else "delete" if after is None else "update"
        changes[key] = (kind, replace_on(key))
    return Diff(changes)


def _every_key(_: str) -> bool:
    return True


# --- resources -------------------------------------------------------------------------------


@dataclass
class Created:
    id: str
    outputs: Props


class Resource:
    """One resource type of a stand-in: check, diff, create, update, read, delete."""

    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        return news, []

    def diff(self, old_inputs: Props, news: Props) -> Diff:
        return diff_inputs(old_inputs, news, _every_key)

    def create(self, inputs: Props, preview: bool) -> Created:
        raise NotImplementedError

    def update(self, id_: str, olds: Props, news: Props, preview: bool) -> Props:
        """Keep computed outputs. Every random input replaces, so the engine does not call this for them."""
        return {**olds, **news}

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props, Props]:
        return id_, state, inputs

    def delete(self, id_: str, state: Props) -> None:
        pass


def _int(value: Any) -> int | None:
    """An integral number from the wire (numbers are doubles there), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        return None
    return int(value)


# random ------------------------------------------------------------------------------------------

PASSWORD_DEFAULTS: Props = {
    "lower": True,
    "upper": True,
    "numeric": True,
    "number": True,
    "special": True,
    "minLower": 0,
    "minUpper": 0,
    "minNumeric": 0,
    "minSpecial": 0,
}
DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"
BCRYPT_COST = 10


def generate_password(inputs: Props) -> str:
    """A random password as the inputs ask: each enabled class at least its minimum, the rest drawn
    from all enabled classes, shuffled; `secrets` throughout."""
    values = {k: plain(v) for k, v in inputs.items()}
    length = _int(values.get("length")) or 0
    special = values.get("overrideSpecial")
    digits = values.get("numeric", True) and values.get("number", True)
    classes = [
        (values.get("lower", True), string.ascii_lowercase, _int(values.get("minLower")) or 0),
        (values.get("upper", True), string.ascii_uppercase, _int(values.get("minUpper")) or 0),
        (digits, string.digits, _int(values.get("minNumeric")) or 0),
        (
            values.get("special", True),
            special if isinstance(special, str) else DEFAULT_SPECIAL,
            _int(values.get("minSpecial")) or 0,
        ),
    ]
    chosen: list[str] = []
    pool = ""
    for enabled, alphabet, minimum in classes:
        if enabled and alphabet:
            pool += alphabet
            chosen.extend(secrets.choice(alphabet) for _ in range(minimum))
    if not pool:
        raise ProviderError("RandomPassword: every character class is disabled")
    chosen.extend(secrets.choice(pool) for _ in range(length - len(chosen)))
    shuffled: list[str] = []
    while chosen:
        shuffled.append(chosen.pop(secrets.randbelow(len(chosen))))
    return "".join(shuffled)


class RandomPassword(Resource):
    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        inputs = {**PASSWORD_DEFAULTS, **{k: v for k, v in news.items() if v is not None}}
        failures: list[tuple[str, str]] = []
        length = inputs.get("length")
        if length is None:
            failures.append(("length", "length is required"))
        elif not has_unknown(length):
            count = _int(plain(length))
            if count is None or count < 1:
                failures.append(("length", "length must be a whole number of at least 1"))
            else:
                minimums = [inputs[k] for k in ("minLower", "minUpper", "minNumeric", "minSpecial")]
                if not has_unknown(minimums) and sum(_int(plain(m)) or 0 for m in minimums) > count:
                    failures.append(("length", "length must be at least the sum of the min_* values"))
        return inputs, failures

    def create(self, inputs: Props, preview: bool) -> Created:
        if preview:
            return Created("", {**inputs, "result": UNKNOWN, "bcryptHash": UNKNOWN})
        result = generate_password(inputs)
        digest = bcrypt.hashpw(result.encode()[:72], bcrypt.gensalt(BCRYPT_COST)).decode()
        return Created("none", {**inputs, "result": secret(result), "bcryptHash": secret(digest)})


class RandomBytes(Resource):
    def check(self, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        inputs = {k: v for k, v in news.items() if v is not None}
        length = inputs.get("length")
        if length is None:
            return inputs, [("length", "length is required")]
        if not has_unknown(length) and (_int(plain(length)) or 0) < 1:
            return inputs, [("length", "length must be a whole number of at least 1")]
        return inputs, []

    def create(self, inputs: Props, preview: bool) -> Created:
        if preview:
            return Created("", {**inputs, "hex": UNKNOWN, "base64": UNKNOWN})
        data = secrets.token_bytes(_int(plain(inputs["length"])) or 0)
        return Created("none", {**inputs, "hex": secret(data.hex()), "base64": secret(base64.b64encode(data).decode())})


# --- the plugins -----------------------------------------------------------------------------


@dataclass
class Plugin:
    name: str
    resources: dict[str, Resource]


def make_plugin(name: str) -> Plugin:
    if name == "random":
        return Plugin(
            name,
            {
                "random:index/randomPassword:RandomPassword": RandomPassword(),
                "random:index/randomBytes:RandomBytes": RandomBytes(),
            },
        )
    raise ValueError(f"no stand-in for provider {name!r} (there are: {', '.join(VERSIONS)})")


def _type_of(urn: str) -> str:
    """The type token of a URN: urn:pulumi:stack::project::[parent$]type::name."""
    qualified = urn.split("::")[2] if urn.count("::") >= 3 else ""
    return qualified.rsplit("$", 1)[-1]


def _abort(context: grpc.ServicerContext, message: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


class Servicer(provider_pb2_grpc.ResourceProviderServicer):
    """The ResourceProvider service over one Plugin."""

    def __init__(self, plugin: Plugin):
        self.plugin = plugin

    def _resource(self, urn: str, type_: str, context: grpc.ServicerContext) -> Resource:
        token = type_ or _type_of(urn)
        found = self.plugin.resources.get(token)
        if found is None:
            _abort(
                context,
                f"the {self.plugin.name} stand-in does not implement resource type {token!r}",
                grpc.StatusCode.UNIMPLEMENTED,
            )
        return found

    # Plugin-level --------------------------------------------------------------------------

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:  # noqa: N802
        return plugin_pb2.PluginInfo(version=VERSIONS[self.plugin.name])

    def Handshake(  # noqa: N802
        self, request: provider_pb2.ProviderHandshakeRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ProviderHandshakeResponse:
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def GetSchema(
        self, request: provider_pb2.GetSchemaRequest, context: grpc.ServicerContext
    ) -> provider_pb2.GetSchemaResponse:  # noqa: N802
        schema = {"name": self.plugin.name, "version": VERSIONS[self.plugin.name], "description": MARKER}
        return provider_pb2.GetSchemaResponse(schema=json.dumps(schema))

    def CheckConfig(
        self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> provider_pb2.CheckResponse:  # noqa: N802
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:  # noqa: N802
        old = from_struct(request.old_inputs) if request.HasField("old_inputs") else from_struct(request.olds)
        found = diff_inputs(old, from_struct(request.news), lambda _: False, ignore=frozenset({"version"}))
        return found.to_response()

    def Configure(
        self, request: provider_pb2.ConfigureRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ConfigureResponse:  # noqa: N802
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:  # noqa: N802
        return empty_pb2.Empty()

    # Resources -----------------------------------------------------------------------------

    def Check(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> provider_pb2.CheckResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        inputs, failures = resource.check(from_struct(request.news))
        return provider_pb2.CheckResponse(
            inputs=to_struct(inputs),
            failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures],
        )

    def Diff(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        olds = from_struct(request.olds)
        old_inputs = from_struct(request.old_inputs) if request.HasField("old_inputs") else olds
        return resource.diff(old_inputs, from_struct(request.news)).to_response()

    def Create(self, request: provider_pb2.CreateRequest, context: grpc.ServicerContext) -> provider_pb2.CreateResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            created = resource.create(from_struct(request.properties), request.preview)
        except ProviderError as error:
            _abort(context, str(error))
        return provider_pb2.CreateResponse(id=created.id, properties=to_struct(created.outputs))

    def Read(self, request: provider_pb2.ReadRequest, context: grpc.ServicerContext) -> provider_pb2.ReadResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            id_, state, inputs = resource.read(request.id, from_struct(request.properties), from_struct(request.inputs))
        except ProviderError as error:
            _abort(context, str(error))
        return provider_pb2.ReadResponse(id=id_, properties=to_struct(state), inputs=to_struct(inputs))

    def Update(self, request: provider_pb2.UpdateRequest, context: grpc.ServicerContext) -> provider_pb2.UpdateResponse:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            outputs = resource.update(request.id, from_struct(request.olds), from_struct(request.news), request.preview)
        except ProviderError as error:
            _abort(context, str(error))
        return provider_pb2.UpdateResponse(properties=to_struct(outputs))

    def Delete(self, request: provider_pb2.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:  # noqa: N802
        resource = self._resource(request.urn, request.type, context)
        try:
            resource.delete(request.id, from_struct(request.properties))
        except ProviderError as error:
            _abort(context, str(error))
        return empty_pb2.Empty()


def serve(name: str) -> None:
    """Serve the stand-in `name` on 127.0.0.1 and print its port on stdout (the plugin handshake),
    until the engine stops the process."""
    plugin = make_plugin(name)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(Servicer(plugin), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(
        f"pulumi-resource-{name} {VERSIONS[name]}: {MARKER} (e2e/standin_providers.py), not the real "
        "provider; it implements only what cluster-secrets uses",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1)


# --- installing them into the suite's PULUMI_HOME ---------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def plugins_dir() -> Path:
    cache = os.environ.get("CLUSTER_SECRETS_E2E_CACHE") or str(Path.home() / ".cache" / "cluster-secrets-e2e")
    return Path(cache) / "pulumi-home" / "plugins"


def plugin_path(name: str, plugins: Path | None = None) -> Path:
    return (plugins or plugins_dir()) / f"resource-{name}-v{VERSIONS[name]}" / f"pulumi-resource-{name}"


def plugin_script(name: str, repo: Path = REPO) -> str:
    """The plugin: the venv's Python serving the stand-in, under the plugin's own name (`exec -a`).
    A real plugin's process is named pulumi-resource-NAME, and a run killed outright leaves it running:
    the tool finds such processes by that name and stops them (cluster_secrets/recovery.py). Under
    another name Python no longer finds its venv by itself, hence the venv's site-packages on the path."""
    python = repo / ".venv" / "bin" / "python"  # the venv's interpreter, not the file it links to
    site = repo / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    return (
        "#!/usr/bin/env bash\n"
        f"# {MARKER}: pulumi-resource-{name} v{VERSIONS[name]} is NOT the real provider.\n"
        f"# Installed by `python -m e2e.standin_providers install` from {repo}.\n"
        f"PYTHONPATH='{repo}:{site}'\n"
        "export PYTHONPATH\n"
        f'exec -a "$0" \'{python}\' -m e2e.standin_providers serve {name} "$@"\n'
    )


def _is_standin(path: Path) -> bool:
    """Whether `path` is a script an install wrote: it carries MARKER near the top (a real plugin
    binary never contains it; only its first bytes are read)."""
    try:
        with path.open("rb") as file:
            return MARKER.encode() in file.read(2000)
    except OSError:
        return False


def install(plugins: Path | None = None, repo: Path = REPO) -> list[str]:
    """Write the random plugin script (idempotent); refuse to overwrite anything that is not ours."""
    done = []
    for name in VERSIONS:
        path = plugin_path(name, plugins)
        script = plugin_script(name, repo)
        if path.exists() and not _is_standin(path):
            raise SystemExit(f"{path} exists and is not a stand-in (a real plugin?): left alone")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent.with_name(path.parent.name + ".partial")
        if partial.exists():
            partial.unlink()  # the engine skips a plugin directory with a .partial marker
        if not path.exists() or path.read_text() != script:
            path.write_text(script)
            done.append(f"installed {path}")
        else:
            done.append(f"up to date {path}")
        path.chmod(0o755)
    return done


def uninstall(plugins: Path | None = None) -> list[str]:
    """Remove every stand-in script an install wrote, of any version of random, time or onepassword;
    leave everything else (real plugins) alone."""
    done = []
    folder = plugins or plugins_dir()
    for name in FORMER_STANDINS:
        for path in sorted(folder.glob(f"resource-{name}-v*/pulumi-resource-{name}")):
            if not _is_standin(path):
                done.append(f"left {path} alone: not a stand-in")
                continue
            path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()
            done.append(f"removed {path}")
    return done


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"] and len(args) >= 2:
        if args[1] not in VERSIONS:
            print(f"no stand-in named {args[1]!r} (there are: {', '.join(VERSIONS)})", file=sys.stderr)
            return 2
        serve(args[1])  # the engine's address and flags after the name are not needed
        return 0
    parser = argparse.ArgumentParser(prog="python -m e2e.standin_providers", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("install", "uninstall"))
    parser.add_argument("--uninstall", action="store_true", help="with install: remove the stand-ins instead")
    options = parser.parse_args(args)
    lines = uninstall() if options.command == "uninstall" or options.uninstall else install()
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

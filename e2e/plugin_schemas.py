"""What an installed Pulumi Python SDK sends a provider plugin, and whether a plugin's schema has it.

`sdk_surface` reads a tfgen-generated Python SDK's source with `ast` (it never imports it): the
tokens of its resources and invokes, the wire names of their inputs, outputs, arguments and results,
the nested object types those refer to, what it marks secret, and the provider's config keys with
their environment defaults. `compare` holds that surface to a package schema (`pulumi package
get-schema`); `extras` lists what the schema has beyond it. `describe_plugin` says what a plugin
binary is (bridged Go build, other Go binary, or the suite's stand-in script).

What the Python SDK cannot express is not compared: it marks secrets only on a resource's own
inputs (`pulumi.Output.secret` in `_internal_init`) and outputs (`additional_secret_outputs`) and,
through the provider resource, on config keys; secrets inside nested types and invokes are left to
the plugin.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from e2e.standin_providers import MARKER

BRIDGE_MODULE = "github.com/pulumi/pulumi-terraform-bridge/v3"

# A property's wire name -> the SDK class (in _inputs.py/outputs.py) of the object type it carries.
Props = dict[str, str | None]
Getters = dict[str, tuple[str, ast.expr | None]]  # a class's Python name -> (wire name, return annotation)


@dataclass
class Resource:
    token: str
    cls: str
    inputs: Props = field(default_factory=dict)
    outputs: Props = field(default_factory=dict)
    secret_inputs: set[str] = field(default_factory=set)
    secret_outputs: set[str] = field(default_factory=set)


@dataclass
class Invoke:
    token: str
    args: Props = field(default_factory=dict)
    results: Props = field(default_factory=dict)


@dataclass
class ConfigKey:
    env: tuple[str, ...] = ()
    secret: bool = False


@dataclass
class Surface:
    name: str  # pulumi-plugin.json's
    resources: dict[str, Resource] = field(default_factory=dict)
    provider: Resource | None = None  # token pulumi:providers:<name>
    invokes: dict[str, Invoke] = field(default_factory=dict)
    types: dict[str, Props] = field(default_factory=dict)  # by SDK class name
    config: dict[str, ConfigKey] = field(default_factory=dict)


# --- reading the SDK ---------------------------------------------------------------------------


def _decorated(node: ast.ClassDef | ast.FunctionDef, name: str) -> ast.expr | None:
    """The decorator `pulumi.<name>` or `pulumi.<name>(...)`, if present."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) == f"pulumi.{name}":
            return decorator
    return None


def _getters(cls: ast.ClassDef) -> Getters:
    """The class's `@pulumi.getter` properties."""
    found: Getters = {}
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef) or (getter := _decorated(node, "getter")) is None:
            continue
        wire = node.name
        if isinstance(getter, ast.Call):
            for keyword in getter.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    wire = str(keyword.value.value)
        found[node.name] = (wire, node.returns)
    return found


def _calls(node: ast.AST, dotted: str) -> Iterator[ast.Call]:
    for call in ast.walk(node):
        if isinstance(call, ast.Call) and ast.unparse(call.func) == dotted:
            yield call


def _string_args(call: ast.Call) -> list[str]:
    return [arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]


def sdk_surface(package_dir: Path) -> Surface:
    """What the SDK in `package_dir` (e.g. site-packages/pulumi_onepassword) sends over the wire."""
    name = json.loads((package_dir / "pulumi-plugin.json").read_text())["name"]
    modules = {
        path: ast.parse(path.read_text(), str(path))
        for path in sorted(package_dir.rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    sdk = _Sdk(modules)
    surface = Surface(name, types={cls: sdk.props(getters) for cls, getters in sdk.nested.items()})
    for module in modules.values():
        for node in module.body:
            if isinstance(node, ast.ClassDef) and (resource := sdk.resource(node)) is not None:
                if ":" in resource.token:
                    surface.resources[resource.token] = resource
                else:  # a ProviderResource registers its package name; the engine's token is:
                    resource.token = f"pulumi:providers:{resource.token}"
                    surface.provider = resource
            elif isinstance(node, ast.FunctionDef):
                for invoke in sdk.invokes(node):
                    known = surface.invokes.setdefault(invoke.token, Invoke(invoke.token))
                    known.args.update(invoke.args)
                    known.results.update(invoke.results)
    surface.config = _config(modules.get(package_dir / "config" / "vars.py"), surface.provider)
    return surface


class _Sdk:
    def __init__(self, modules: Mapping[Path, ast.Module]):
        self.classes: dict[str, ast.ClassDef] = {}
        self.nested: dict[str, Getters] = {}  # the input/output types of _inputs.py and outputs.py
        for path, module in modules.items():
            for node in module.body:
                if isinstance(node, ast.ClassDef):
                    self.classes[node.name] = node
                    is_type = _decorated(node, "input_type") or _decorated(node, "output_type")
                    if is_type and path.stem in ("_inputs", "outputs"):
                        self.nested[node.name] = _getters(node)

    def ref(self, annotation: ast.expr | None) -> str | None:
        """The nested class named in an annotation (`Optional[Sequence['outputs.ItemSection']]`)."""
        names = re.findall(r"[A-Za-z_]\w*", ast.unparse(annotation)) if annotation is not None else []
        return next((name for name in names if name in self.nested), None)

    def props(self, getters: Getters) -> Props:
        return {wire: self.ref(annotation) for wire, annotation in getters.values()}

    def getters(self, name: str) -> Getters:
        return _getters(self.classes[name]) if name in self.classes else {}

    def resource(self, cls: ast.ClassDef) -> Resource | None:
        """A class whose `_internal_init` calls `super(...).__init__('<token>', ...)`."""
        init = next(
            (node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "_internal_init"), None
        )
        calls = [call for call in ast.walk(init) if isinstance(call, ast.Call)] if init is not None else []
        tokens = [
            args[0]
            for call in calls
            if isinstance(call.func, ast.Attribute)
            and call.func.attr == "__init__"
            and isinstance(call.func.value, ast.Call)
            and ast.unparse(call.func.value.func) == "super"
            and (args := _string_args(call))
        ]
        if init is None or not tokens:
            return None
        # `__props__ = ItemArgs.__new__(ItemArgs)`: the input type whose getters name the inputs.
        args_class = next(
            (
                call.args[0].id
                for call in calls
                if isinstance(call.func, ast.Attribute)
                and call.func.attr == "__new__"
                and call.args
                and isinstance(call.args[0], ast.Name)
            ),
            f"{cls.name}Args",
        )
        inputs, outputs = self.getters(args_class), _getters(cls)
        resource = Resource(tokens[0], cls.name, self.props(inputs), self.props(outputs))
        wire_names = {python: wire for python, (wire, _) in {**outputs, **inputs}.items()}
        for assign in ast.walk(init):
            # __props__.__dict__["password"] = None if password is None else pulumi.Output.secret(password)
            if (
                isinstance(assign, ast.Assign)
                and isinstance(target := assign.targets[0], ast.Subscript)
                and ast.unparse(target.value) == "__props__.__dict__"
                and isinstance(target.slice, ast.Constant)
                and any(_calls(assign.value, "pulumi.Output.secret"))
            ):
                python = str(target.slice.value)
                resource.secret_inputs.add(wire_names.get(python, python))
        for call in calls:
            for keyword in call.keywords:
                if keyword.arg == "additional_secret_outputs" and isinstance(keyword.value, ast.List | ast.Tuple):
                    resource.secret_outputs.update(
                        str(item.value) for item in keyword.value.elts if isinstance(item, ast.Constant)
                    )
        return resource

    def invokes(self, function: ast.FunctionDef) -> Iterator[Invoke]:
        """Each `pulumi.runtime.invoke('<token>', __args__, typ=<Result>)`, with the `__args__` keys."""
        calls = [*_calls(function, "pulumi.runtime.invoke"), *_calls(function, "pulumi.runtime.invoke_output")]
        annotations = {arg.arg: arg.annotation for arg in function.args.args + function.args.kwonlyargs}
        args: Props = {}
        for assign in ast.walk(function) if calls else ():
            # __args__['noteValue'] = note_value
            if (
                isinstance(assign, ast.Assign)
                and isinstance(target := assign.targets[0], ast.Subscript)
                and ast.unparse(target.value) == "__args__"
                and isinstance(target.slice, ast.Constant)
            ):
                value = assign.value.id if isinstance(assign.value, ast.Name) else ""
                args[str(target.slice.value)] = self.ref(annotations.get(value))
        for call in calls:
            typ = next((keyword.value for keyword in call.keywords if keyword.arg == "typ"), None)
            results = self.props(self.getters(typ.id)) if isinstance(typ, ast.Name) else {}
            yield from (Invoke(token, args, results) for token in _string_args(call)[:1])


def _config(module: ast.Module | None, provider: Resource | None) -> dict[str, ConfigKey]:
    """config/vars.py: `__config__.get('serviceAccountToken') or _utilities.get_env('OP_...')`; a key
    is secret when read with get_secret or when the provider resource wraps it in Output.secret."""
    config: dict[str, ConfigKey] = {}
    for function in ast.walk(module) if module is not None else ():
        if not isinstance(function, ast.FunctionDef):
            continue
        env = tuple(
            name
            for call in ast.walk(function)
            if isinstance(call, ast.Call) and ast.unparse(call.func).startswith("_utilities.get_env")
            for name in _string_args(call)
        )
        for call in ast.walk(function):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and ast.unparse(call.func.value) == "__config__"
                and call.func.attr.startswith(("get", "require"))
                and (keys := _string_args(call))
            ):
                secret = "secret" in call.func.attr or (provider is not None and keys[0] in provider.secret_inputs)
                config[keys[0]] = ConfigKey(env, secret)
    return config


# --- holding it to a schema ----------------------------------------------------------------------


def compare(surface: Surface, schema: Mapping[str, Any]) -> list[str]:
    """One line per thing the SDK sends or expects that the schema lacks or types differently."""
    return _Comparison(surface, schema).mismatches


def extras(surface: Surface, schema: Mapping[str, Any]) -> list[str]:
    """What the schema has that this SDK does not use (not mismatches): tokens, properties, config keys."""
    return _Comparison(surface, schema).extras


def _type_token(spec: Mapping[str, Any]) -> str | None:
    """The `#/types/<token>` a property refers to, directly or as array items / map values."""
    while spec:
        ref = str(spec.get("$ref", ""))
        if ref.startswith("#/types/"):
            return unquote(ref.removeprefix("#/types/"))
        spec = spec.get("items") or spec.get("additionalProperties") or {}
    return None


class _Comparison:
    def __init__(self, surface: Surface, schema: Mapping[str, Any]):
        self.surface = surface
        self.schema = schema
        self.mismatches: list[str] = []
        self.extras: list[str] = []
        self.seen: set[tuple[str, str]] = set()
        self.resources(surface.resources, schema.get("resources") or {})
        if surface.provider is not None:
            self.resource("provider", surface.provider, schema.get("provider") or {})
        self.invokes()
        self.config()

    def resources(self, sdk: Mapping[str, Resource], schema: Mapping[str, Any]) -> None:
        for token, resource in sorted(sdk.items()):
            if token not in schema:
                self.mismatches.append(f"resource {token}: not in the schema")
            else:
                self.resource(f"resource {token}", resource, schema[token])
        self.extras += [f"resource {token}: not used by the SDK" for token in sorted(set(schema) - set(sdk))]

    def resource(self, where: str, resource: Resource, spec: Mapping[str, Any]) -> None:
        inputs, outputs = spec.get("inputProperties") or {}, spec.get("properties") or {}
        self.props(f"{where} input", resource.inputs, inputs, resource.secret_inputs)
        self.props(f"{where} output", resource.outputs, outputs, resource.secret_outputs)

    def invokes(self) -> None:
        schema = self.schema.get("functions") or {}
        for token, invoke in sorted(self.surface.invokes.items()):
            if token not in schema:
                self.mismatches.append(f"function {token}: not in the schema")
                continue
            spec = schema[token]
            self.props(f"function {token} argument", invoke.args, (spec.get("inputs") or {}).get("properties"))
            self.props(f"function {token} result", invoke.results, (spec.get("outputs") or {}).get("properties"))
        self.extras += [
            f"function {token}: not used by the SDK" for token in sorted(set(schema) - set(self.surface.invokes))
        ]

    def props(self, where: str, sdk: Props, schema: Mapping[str, Any] | None, secret: set[str] | None = None) -> None:
        """Every property the SDK sends is in the schema (its nested types too); with `secret`,
        the SDK's secrets are the schema's secrets among the properties both know."""
        schema = schema or {}
        for wire in sorted(set(sdk) | (secret or set())):
            if wire not in schema:
                self.mismatches.append(f"{where} {wire!r}: not in the schema")
                continue
            if secret is not None and (wire in secret) != bool(schema[wire].get("secret")):
                self.mismatches.append(
                    f"{where} {wire!r}: secret in the SDK, not in the schema"
                    if wire in secret
                    else f"{where} {wire!r}: secret in the schema, not in the SDK"
                )
            if (cls := sdk.get(wire)) is not None:
                self.nested(f"{where} {wire!r}", cls, schema[wire])
        self.extras += [f"{where} {wire!r}: not used by the SDK" for wire in sorted(set(schema) - set(sdk))]

    def nested(self, where: str, cls: str, spec: Mapping[str, Any]) -> None:
        token = _type_token(spec)
        if token is None:
            self.mismatches.append(f"{where}: the SDK sends object type {cls}, the schema has no object type")
            return
        if (cls, token) in self.seen:
            return
        self.seen.add((cls, token))
        types = self.schema.get("types") or {}
        if token not in types:
            self.mismatches.append(f"{where}: type {token} is not in the schema")
            return
        self.props(f"type {token} (SDK {cls})", self.surface.types.get(cls, {}), types[token].get("properties"))

    def config(self) -> None:
        variables = (self.schema.get("config") or {}).get("variables") or {}
        for key, sdk in sorted(self.surface.config.items()):
            spec = variables.get(key)
            if spec is None:
                self.mismatches.append(f"config {key!r}: not in the schema")
                continue
            env = tuple((spec.get("defaultInfo") or {}).get("environment") or ())
            if env != sdk.env:
                self.mismatches.append(
                    f"config {key!r}: environment default {list(sdk.env)} in the SDK, {list(env)} in the schema"
                )
            if sdk.secret != bool(spec.get("secret")):
                side = "the SDK, not in the schema" if sdk.secret else "the schema, not in the SDK"
                self.mismatches.append(f"config {key!r}: secret in {side}")
        self.extras += [
            f"config {key!r}: not used by the SDK" for key in sorted(set(variables) - set(self.surface.config))
        ]


# --- the plugin binaries -------------------------------------------------------------------------


def get_schema(pulumi: Path, plugin: Path) -> dict[str, Any]:
    """`pulumi package get-schema <plugin>`, with a throwaway PULUMI_HOME and nothing downloaded."""
    with tempfile.TemporaryDirectory(prefix="plugin-schema-") as home:
        env = {
            **os.environ,
            "PULUMI_HOME": home,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PATH": f"{pulumi.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        run = subprocess.run(
            [str(pulumi), "package", "get-schema", str(plugin)], env=env, capture_output=True, text=True, timeout=120
        )
    if run.returncode != 0:
        raise RuntimeError(f"pulumi package get-schema {plugin} failed ({run.returncode}): {run.stderr.strip()}")
    schema: dict[str, Any] = json.loads(run.stdout)
    return schema


@dataclass
class GoBuild:
    main: str  # the main module's path ("mod" line)
    version: str
    deps: dict[str, str]  # module path -> version (", replaced by <path> <version>" when replaced)


def go_build(path: Path) -> GoBuild | None:
    """`go version -m`: the Go module info a binary embeds; None for non-Go files or without `go`."""
    go = shutil.which("go")
    if go is None:
        return None
    run = subprocess.run([go, "version", "-m", str(path)], capture_output=True, text=True, timeout=60)
    return parse_go_build(run.stdout) if run.returncode == 0 else None


def parse_go_build(text: str) -> GoBuild | None:
    """`go version -m` output: `mod <path> <version>`, `dep <path> <version> [h1:…]`, `=> <path> <version>`."""
    main, version, deps = "", "", {}
    last = ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "mod":
            main, version = fields[1], fields[2]
        elif len(fields) >= 3 and fields[0] == "dep":
            last = fields[1]
            deps[last] = fields[2]
        elif len(fields) >= 2 and fields[0] == "=>" and last:
            deps[last] += f", replaced by {' '.join(fields[1:3])}"
    return GoBuild(main, version, deps) if main else None


def bridged_provider(build: GoBuild, name: str) -> tuple[str, str] | None:
    """The terraform-provider-<name> module (path, version) a bridged plugin was built from."""
    pattern = re.compile(rf"(.+/)?terraform-provider-{re.escape(name)}(/v\d+)?")
    return next(((dep, version) for dep, version in build.deps.items() if pattern.fullmatch(dep)), None)


def describe_plugin(path: Path) -> str:
    """One line: what the plugin binary at `path` (…/pulumi-resource-<name>) is."""
    with path.open("rb") as file:
        head = file.read(1 << 20)
    if b"\0" not in head and MARKER.encode() in head:
        return "STAND-IN (e2e/standin_providers.py)"
    build = go_build(path)
    if build is None:
        return "not a Go binary (or `go` is not on PATH)"
    name = path.name.removeprefix("pulumi-resource-")
    provider = bridged_provider(build, name)
    bridge = build.deps.get(BRIDGE_MODULE)
    if provider is not None and bridge is not None:
        return f"bridged terraform-provider-{name} {provider[1]} (pulumi-terraform-bridge {bridge})"
    # A provider module of Pulumi's own, built by a main of ours (the kubernetes plugin).
    upstream = next((dep for dep in build.deps if dep.startswith(f"github.com/pulumi/pulumi-{name}/provider")), None)
    if upstream is not None:
        return f"built from {upstream} {build.deps[upstream]}"
    return f"Go binary of {build.main} {build.version}"

"""Pulumi.yaml and the stack files, read the way the Pulumi CLI reads them.

FACTS.md (Pulumi): the CLI reads YAML with YAML 1.2 rules, so `yes`, `no`, `on` and `off` are
strings and a duplicate key is an error. PyYAML follows YAML 1.1, so these files are read with
ruamel.yaml's YAML 1.2 loader. The CLI also type-checks each value against the `type` its key
declares in Pulumi.yaml; `stack_config` does the same, so `plan` and `up` accept the same files.
"""

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from cluster_secrets.errors import UsageError
from components.config import PROJECT, load_config, shown
from components.errors import ConfigError

# What each Pulumi.yaml `type` accepts, as YAML loads it (bool is an int in Python: checked first).
# Pulumi itself writes booleans and integers back as strings when it rewrites a stack file (`pulumi
# stack init` adding its encryption salt turns `true` into "true"), so those strings pass too; `yes`
# or `on` do not (the e2e suite found this: e2e/test_e_second_cluster.py).
_TYPE_CHECKS = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: (
        (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value) is not None)
    ),
    "boolean": lambda value: isinstance(value, bool) or value in ("true", "false"),
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}


def read_yaml(path: Path) -> Any:
    """A YAML file as plain dicts and lists, or a UsageError naming the file and the line."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"{path.name}: cannot be read ({error.strerror})") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" line {mark.line + 1}" if mark else ""
        problem = (error.problem or "").split("\n")[0] or str(error.context)
        raise UsageError(f"{path.name}{where}: {problem} (the file is not valid YAML)") from None
    except YAMLError as error:
        raise UsageError(f"{path.name}: not valid YAML ({str(error).splitlines()[0]})") from None


def stack_names(program_dir: Path) -> list[str]:
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in program_dir.glob("Pulumi.*.yaml"))


def stack_file(program_dir: Path, stack: str) -> Path:
    path = program_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise UsageError(
            f"No stack file Pulumi.{stack}.yaml; the stacks here are: {', '.join(stack_names(program_dir))}."
        )
    return path


def _config_map(path: Path, document: Any, required: bool) -> dict[str, Any]:
    if document is None and required:
        raise UsageError(f"{path.name}: is empty (expected a `config:` map of {PROJECT}:<key>: <value>)")
    if not isinstance(document, dict):
        raise UsageError(f"{path.name}: expected a YAML map at the top, with a `config:` key")
    if "config" not in document:
        if required:
            raise UsageError(f"{path.name}: has no `config:` (expected a map of {PROJECT}:<key>: <value>)")
        return {}
    config = document["config"]
    if not isinstance(config, dict):
        raise UsageError(f"{path.name}: `config:` is {shown(config)}, not a map of {PROJECT}:<key>: <value>")
    return config


def project_declarations(program_dir: Path) -> dict[str, dict[str, Any]]:
    """The `config:` declarations of Pulumi.yaml, by key."""
    return _config_map(program_dir / "Pulumi.yaml", read_yaml(program_dir / "Pulumi.yaml"), required=False)


def stack_config(program_dir: Path, stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Config as the CLI hands it to the program: project defaults, the stack file, then overrides.

    Keys are `namespace:key`; values are strings, objects and lists as JSON, as the engine passes
    them. A stack file the CLI would refuse raises a UsageError listing every problem.
    """
    declared = project_declarations(program_dir)
    path = stack_file(program_dir, stack)
    values: dict[str, Any] = {
        f"{PROJECT}:{key}": spec["default"] for key, spec in declared.items() if "default" in spec
    }
    problems = []
    config = _config_map(path, read_yaml(path), required=True)
    after_empty = False  # the key before was empty: a map under it that lost its indentation comes next
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if not name:
            where = f"line {_line(path, key)}: " if after_empty else ""
            hint = " (or a map under the key above that is not indented under it)" if after_empty else ""
            problems.append(
                f"{where}{shown(key)}: is not a config key (expected <namespace>:<name>, e.g. {PROJECT}:{key}){hint}"
            )
            after_empty = after_empty and value is not None
            continue
        after_empty = value is None
        if namespace != PROJECT and _near(namespace):
            problems.append(f"{key}: {shown(namespace)} is not a namespace here; did you mean {PROJECT}:{name}?")
        elif namespace == PROJECT and name in declared and not _TYPE_CHECKS[declared[name]["type"]](value):
            kind = declared[name]["type"]
            hint = (
                f"; write it in quotes (YAML reads {value} as a number)"
                if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool)
                else ""
            )
            problems.append(f"{key}: {shown(value)} is not of type {kind} (as Pulumi.yaml declares){hint}")
        values[str(key)] = value
    if problems:
        # Every problem at once: the config model's too, for the keys the file got the type of right.
        reported = {problem.split(":", 2)[1] for problem in problems if problem.startswith(f"{PROJECT}:")}
        try:
            load_config(project_values({k: _config_text(v) for k, v in values.items() if v is not None}), stack)
        except ConfigError as error:
            lines = [line.strip() for line in str(error).splitlines()[1:]]
            problems += [line for line in lines if line.split(":", 2)[1] not in reported]
        raise UsageError(f"{path.name}:\n  " + "\n  ".join(problems))
    for key, value in (overrides or {}).items():
        values[key if ":" in key else f"{PROJECT}:{key}"] = value
    return {key: _config_text(value) for key, value in values.items() if value is not None}


def _near(namespace: str) -> bool:
    """A namespace that is a slip of the project's (cluster_secrets, clusterSecrets, cluster-secret)."""
    squeezed = re.sub(r"[^a-z0-9]", "", namespace.lower())
    return squeezed == re.sub(r"[^a-z0-9]", "", PROJECT) or bool(
        difflib.get_close_matches(namespace, [PROJECT], cutoff=0.8)
    )


def _line(path: Path, key: Any) -> int | None:
    """The line of a `config:` key in a stack file (read again with line marks; for messages only)."""
    document = YAML(typ="rt", pure=True).load(path.read_text())
    try:
        return int(document["config"].lc.key(key)[0]) + 1
    except (KeyError, TypeError, AttributeError):
        return None


def project_values(config: Mapping[str, str]) -> dict[str, str]:
    """The `cluster-secrets:` values of a stack_config, keyed without the prefix."""
    prefix = f"{PROJECT}:"
    return {key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)}


def _config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def round_trip() -> YAML:
    """A YAML that reads and writes a stack file keeping its comments, quotes and layout."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # no line is folded that the user did not fold
    yaml.indent(mapping=2, sequence=4, offset=2)  # the indentation of the stack files here
    return yaml


def set_keys(path: Path, keys: Mapping[str, Any]) -> None:
    """Set `cluster-secrets:` keys in a stack file, keeping its comments and order (a round trip)."""
    if not keys:
        return
    yaml = round_trip()
    document = yaml.load(path.read_text())
    for key, value in keys.items():
        document["config"][f"{PROJECT}:{key}"] = value
    with path.open("w") as file:
        yaml.dump(document, file)

"""One mock harness for every test: cluster_secrets.offline with a reference 1Password full of canaries.

`run_stack` evaluates `__main__.py` afresh with `preview=False` (so every `apply` runs) against the
fake providers of cluster_secrets/offline.py, and returns what the engine would have received.
"""

import base64
import json
import logging
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cluster_secrets import desired, offline, stack_files
from cluster_secrets.offline import Evaluation, RecordingMonitor, Registration, attached_file
from components.config import StackConfig

ROOT = Path(__file__).resolve().parent.parent

# A StackReference to a missing stack leaves futures holding the read's error, which asyncio
# reports again at exit ("Future exception was never retrieved"); the tests check that error itself.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)
SHARED_UPSTREAM = ROOT.parent / "shared" / "upstream"

# Canaries: secret values that must never appear outside a Pulumi secret.
CANARY_TOKEN = "canary-connect-token-7f3a"
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
    offline.FAKE_PASSWORD_PREFIX,
    offline.FAKE_BYTES_HEX * 4,
    "canary-enc-data",
    base64.b64encode(CREDENTIALS_TEXT.encode()).decode()[:40],
    "$2b$10$",  # any bcrypt hash
)


def stack_config(stack: str = "homelab", overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    return stack_files.stack_config(ROOT, stack, overrides)


def default_vaults() -> dict[str, dict[str, dict[str, Any]]]:
    """The reference setup's 1Password: vault name -> item title -> item fields."""
    return {
        "InitHomeLab": {
            "1password-credentials": {"files": [attached_file(CREDENTIALS_TEXT.encode())]},
            "onepassword-connect-token": {"password": CANARY_TOKEN},
        },
        "HomeLab": {},
    }


def fakes(vaults: offline.Vaults | None = None, previous_outputs: Mapping[str, Any] | None = None) -> RecordingMonitor:
    """A recording monitor over the fakes: the reference 1Password, and the given previous outputs."""
    return offline.recording_monitor(default_vaults() if vaults is None else vaults, previous_outputs)


@dataclass
class Run(Evaluation):
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


def run_stack(
    stack: str = "homelab",
    config: Mapping[str, Any] | None = None,
    vaults: offline.Vaults | None = None,
    previous_outputs: Mapping[str, Any] | None = None,
    monitor: RecordingMonitor | None = None,
) -> Run:
    """Evaluate the program once, as `pulumi up` would, against the fakes (or `monitor`'s)."""
    evaluation = offline.evaluate(ROOT, stack, monitor or fakes(vaults, previous_outputs), stack_config(stack, config))
    return Run(evaluation.monitor, evaluation.outputs, evaluation.secret_outputs)


def assert_no_plaintext(run: "Run", secrets: Sequence[str]) -> None:
    """No secret in plaintext (outside a Pulumi secret) in any input, registered output or plain
    stack output of `run`; and enough strings were looked at for that to mean something."""
    checked = 0
    places = [(r.name, r.inputs) for r in run.registrations]
    places += [(f"outputs of {urn}", registered) for urn, registered in run.monitor.registered_outputs.items()]
    for place, values in places:
        for path, text in offline.plaintext_strings(values):
            checked += 1
            for secret in secrets:
                assert secret not in text, f"{place}{path} carries a secret in plaintext"
    assert checked > 50
    for name, value in run.outputs.items():
        if name not in run.secret_outputs:
            assert not any(secret in json.dumps(value) for secret in secrets), name


@pytest.fixture(autouse=True)
def own_components():
    """Tests that plan a copy of the program (--program-dir) import that copy's `components`
    (offline._import_components_from); put this checkout's back after each test, so the classes
    the tests imported (ConfigError, ...) stay the ones the program raises."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "components"}
    saved_path = list(sys.path)
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "components"]:
        del sys.modules[name]
    sys.modules.update(saved)
    sys.path[:] = saved_path


@pytest.fixture
def homelab() -> Run:
    return run_stack()


def upstream(*parts: str) -> Path:
    """A file of ../shared/upstream, or skip the test where that folder is absent."""
    path = SHARED_UPSTREAM.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the pinned upstream data (../shared/upstream) is not beside this checkout")
    return path


def fake_executable(folder: Path, name: str, script: Path) -> Path:
    """An executable `name` in a new `folder` that runs the Python file `script` (a fake CLI for PATH)."""
    folder.mkdir()
    executable = folder / name
    executable.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    executable.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def homelab_evaluation() -> offline.Evaluation:
    """The homelab stack evaluated offline once, as `adopt` and the preflight evaluate it."""
    return desired.evaluate_stack(ROOT, "homelab")


@pytest.fixture(scope="session")
def registrations(homelab_evaluation: offline.Evaluation) -> list[Registration]:
    return homelab_evaluation.registrations


@pytest.fixture(scope="session")
def config(homelab_evaluation: offline.Evaluation) -> StackConfig:
    assert homelab_evaluation.config is not None  # evaluate_stack validates it
    return homelab_evaluation.config


def copy_project(folder: Path) -> Path:
    """A copy of the program at `folder` (without its tests and the e2e suite), whose stack files a test may edit."""
    shutil.copytree(
        ROOT, folder, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache", "tests", "e2e")
    )
    return folder


def copy_program(folder: Path, stack_files: Sequence[str] = ("homelab",)) -> Path:
    """The program alone (Pulumi.yaml, `stack_files`, __main__.py, components/) in a new `folder`: what
    the tool evaluates offline."""
    folder.mkdir()
    for name in ("Pulumi.yaml", *(f"Pulumi.{stack}.yaml" for stack in stack_files), "__main__.py"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "components", folder / "components")
    return folder

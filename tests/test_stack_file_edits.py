"""Random edits of the homelab stack file: every `plan` either plans, or stops with exit code 2 and one
clean message that names a key or the file. Never another exception, never a secret in the output."""

import contextlib
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_secrets import offline
from cluster_secrets.__main__ import main
from components.config import KEYS, PROJECT
from tests.conftest import ROOT, copy_project

HOMELAB = yaml.safe_load((ROOT / "Pulumi.homelab.yaml").read_text())["config"]

scalars = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["yes", "no", "on", "off", "true", "auto", "", " ", "0.12.1", "oci://x", "a" * 300]),
    st.integers(min_value=-5, max_value=100),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=8), scalars, max_size=3))
keys = st.one_of(
    st.sampled_from([f"{PROJECT}:{key}" for key in KEYS]),
    st.sampled_from(KEYS),  # without the namespace
    st.sampled_from([f"{PROJECT}:{key[:-1]}" for key in KEYS]),  # a typo
    st.text(min_size=1, max_size=20),
)
# An edit: set a key to a value, or delete a key of the reference file.
edits = st.lists(
    st.one_of(st.tuples(st.just("set"), keys, values), st.tuples(st.just("delete"), st.sampled_from(sorted(HOMELAB)))),
    min_size=1,
    max_size=4,
)
# Text damage on top of the edits: none, a line the parser cannot read, a duplicated key.
damage = st.sampled_from(["", "  broken: [\n", f"  {PROJECT}:kubeContext: again\n", "\t\n"])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("edits") / "project")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits, damage=damage)
def test_a_random_edit_plans_or_stops_with_one_clean_message(project, edits, damage):
    config = dict(HOMELAB)
    for edit in edits:
        if edit[0] == "set":
            config[edit[1]] = edit[2]
        else:
            config.pop(edit[1], None)
    (project / "Pulumi.homelab.yaml").write_text(yaml.safe_dump({"config": config}) + damage)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", "homelab", "--program-dir", str(project)])
    printed = out.getvalue() + err.getvalue()
    assert code in (0, 2), printed
    if code == 2:
        assert out.getvalue() == ""
        message = err.getvalue()
        assert message.startswith("error: ") and message.count("error: ") == 1, message
        assert f"{PROJECT}:" in message or "Pulumi.homelab.yaml" in message or "config key" in message, message
    assert "Traceback" not in printed
    # Plans mask every secret; the fake providers' values are canaries.
    assert offline.FAKE_PASSWORD_PREFIX not in printed and "<placeholder for 1Password" not in printed

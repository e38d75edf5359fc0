"""The pull-request workflow, checked as data: no runner exists here to run it."""

import re

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pull-request.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as True
    return document


def steps(job: dict) -> list[dict]:
    return job["steps"]


def test_runs_on_pull_requests_with_read_only_defaults(workflow):
    assert list(workflow["on"]) == ["pull_request"]
    assert workflow["permissions"] == {"contents": "read"}
    assert set(workflow["jobs"]) == {"tests", "plan-diff", "live-preview"}


def test_tests_job_runs_the_readme_test_command(workflow):
    assert any(step.get("run") == "./run-tests" for step in steps(workflow["jobs"]["tests"]))


def test_plan_diff_posts_one_comment_edited_in_place(workflow):
    job = workflow["jobs"]["plan-diff"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    checkout = steps(job)[0]
    assert checkout["with"]["fetch-depth"] == 0  # the base commit must be there for `--diff`
    script = "\n".join(step.get("run", "") for step in steps(job))
    assert 'python -m cluster_secrets plan "$stack" --diff "$BASE_SHA" --render' in script
    helm = next(step for step in steps(job) if step.get("uses", "").startswith("azure/setup-helm@"))
    assert helm["with"]["version"] == "v3.22.0"  # pinned: helm fills the API versions the charts see
    assert "for file in Pulumi.*.yaml" in script
    comment = next(step for step in steps(job) if step.get("uses", "").startswith("actions/github-script@"))
    assert "updateComment" in comment["with"]["script"] and "createComment" in comment["with"]["script"]


def test_live_preview_is_opt_in_on_a_self_hosted_runner(workflow):
    job = workflow["jobs"]["live-preview"]
    assert "vars.CLUSTER_SECRETS_LIVE_PREVIEW == 'true'" in job["if"]
    assert job["runs-on"] == ["self-hosted", "cluster-secrets"]
    preview = next(step for step in steps(job) if step.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["comment-on-pr"] is True
    assert "PULUMI_CONFIG_PASSPHRASE" in preview["env"]


def test_every_action_is_pinned_to_a_release(workflow):
    used = [step["uses"] for job in workflow["jobs"].values() for step in steps(job) if "uses" in step]
    assert len(used) == 9
    for action in used:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+){0,2}", action), action


DRIFT = ROOT / ".github" / "workflows" / "drift.yml"


def test_the_drift_check_is_scheduled_opt_in_and_fails_on_changes():
    document = yaml.safe_load(DRIFT.read_text())
    triggers = document.pop(True, document.get("on"))
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert document["permissions"] == {"contents": "read"}
    job = document["jobs"]["drift"]
    assert "vars.CLUSTER_SECRETS_DRIFT_CHECK == 'true'" in job["if"]
    assert job["runs-on"] == ["self-hosted", "cluster-secrets"]
    assert set(job["strategy"]["matrix"]["stack"]) == {
        p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")
    }
    check = next(step for step in steps(job) if "run" in step and "preview" in step["run"])
    assert check["run"] == "./cluster-secrets preview ${{ matrix.stack }} --refresh --expect-no-changes"
    assert "PULUMI_CONFIG_PASSPHRASE" in check["env"]
    for step in steps(job):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+){0,2}", step["uses"]), step["uses"]

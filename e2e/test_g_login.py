"""Scenario g: argocd-server (Argo CD's own Go module, as a host process) accepts `admin` with the
password from the argocdAdminPassword output, and refuses a wrong one."""

import json
import urllib.error
import urllib.request

import pytest

from e2e.conftest import Deployment
from e2e.controlplane import Unavailable, start_argocd_server


def log_in(url: str, password: str) -> tuple[int, dict]:
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(f"{url}/api/v1/session", data=body, headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


def test_admin_logs_in_with_the_output_password_and_a_wrong_one_is_refused(primary: Deployment) -> None:
    primary.require_converged()
    password = primary.outputs()["argocdAdminPassword"]
    try:
        server = start_argocd_server(primary.cluster)
    except Unavailable as missing:
        pytest.skip(str(missing))
    try:
        status, answer = log_in(server.url, password.value)
        assert status == 200 and answer.get("token"), f"login refused with HTTP {status}"
        status, answer = log_in(server.url, password.value + "-wrong")
        assert status == 401 and not answer.get("token")
    finally:
        server.stop()

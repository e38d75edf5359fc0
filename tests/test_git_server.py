"""The e2e suite's Git server (e2e/git_server.py): git's own http-backend behind basic auth, with the
logins it accepted and refused counted. Needs git; skipped without it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e.git_server import GitServer

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not on PATH")


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "HOME": str(cwd or Path.cwd())}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def with_credentials(url: str, username: str, password: str) -> str:
    return url.replace("http://", f"http://{username}:{password}@")


def test_the_allowed_credentials_clone_and_fetch_new_commits_and_others_are_refused(tmp_path: Path):
    with GitServer(tmp_path / "served", ("127.0.0.1", 0)) as server:
        server.allow("bot", "first-password")
        repo = server.repository("homelab-gitops")
        first = repo.commit({"clusters/e2e/a.yaml": "a: 1\n"}, "first")

        clone = tmp_path / "clone"
        cloned = git("clone", "--quiet", with_credentials(repo.url, "bot", "first-password"), str(clone))
        assert cloned.returncode == 0, cloned.stderr
        assert (clone / "clusters/e2e/a.yaml").read_text() == "a: 1\n"
        assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == first
        # git asks without credentials first (the Basic challenge), then with them.
        assert server.challenged >= 1 and server.logins("bot", "first-password") >= 1
        assert server.refused == 0

        refused = git("ls-remote", with_credentials(repo.url, "bot", "wrong"), cwd=tmp_path)
        assert refused.returncode != 0 and "Authentication failed" in refused.stderr
        assert server.refused == 1

        # A rotation: the new password works once allowed, the old one no longer once revoked.
        server.allow("bot", "second-password")
        server.revoke("bot", "first-password")
        second = repo.commit({"clusters/e2e/a.yaml": "a: 2\n", "clusters/e2e/b.yaml": "b: 1\n"}, "second")
        pulled = git("pull", "--quiet", with_credentials(repo.url, "bot", "second-password"), "main", cwd=clone)
        assert pulled.returncode == 0, pulled.stderr
        assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == second
        assert (clone / "clusters/e2e/a.yaml").read_text() == "a: 2\n"
        assert git("ls-remote", with_credentials(repo.url, "bot", "first-password"), cwd=tmp_path).returncode != 0
        assert server.refused == 2
        assert "second-password" not in repr(server)

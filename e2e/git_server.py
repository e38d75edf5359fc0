"""A Git server on loopback for the GitOps scenario: git's own `git http-backend` (smart HTTP, run as
a CGI program per request) behind a small HTTP server of the suite's that asks for basic auth.

    with GitServer(tmp_path / "git") as git:
        git.allow("bot", "s3cret")
        repo = git.repository("homelab-gitops")          # a bare repository, served at repo.url
        revision = repo.commit({"clusters/e2e/ns.yaml": "..."}, "the app")
        git.logins("bot", "s3cret"), git.refused         # counted, never printed

Only fetching is served (git http-backend refuses pushes without an authenticated REMOTE_USER and
`http.receivepack`; the suite commits through the repository's folder). Credentials are checked on
every request: git clients first ask without them, get 401 with a Basic challenge, and ask again
with them; a request with credentials not allowed is refused (401) and counted in `refused`.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ADDRESS = ("127.0.0.1", 8890)
GIT = shutil.which("git")
_AUTHOR = {
    "GIT_AUTHOR_NAME": "cluster-secrets e2e",
    "GIT_AUTHOR_EMAIL": "e2e@cluster-secrets.invalid",
    "GIT_COMMITTER_NAME": "cluster-secrets e2e",
    "GIT_COMMITTER_EMAIL": "e2e@cluster-secrets.invalid",
}


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    if GIT is None:
        raise RuntimeError("git is not on PATH")
    done = subprocess.run(
        [GIT, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


class Repository:
    """A bare repository on the server (branch main) and a work tree the suite commits from."""

    def __init__(self, server: GitServer, name: str):
        self.url = f"{server.url}/{name}.git"
        self.bare = server.root / f"{name}.git"
        self.work = server.root / "work" / name
        self.work.mkdir(parents=True)
        _git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=server.root)
        _git("init", "--quiet", "--initial-branch=main", cwd=self.work)

    def commit(self, files: dict[str, str | None], message: str) -> str:
        """Write (or with None delete) `files` in the work tree, commit, push to the bare repository;
        the new commit's SHA."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        _git("add", "--all", cwd=self.work)
        _git("commit", "--quiet", "--message", message, cwd=self.work, env=_AUTHOR)
        _git("push", "--quiet", str(self.bare), "main", cwd=self.work)
        return _git("rev-parse", "HEAD", cwd=self.work)


class GitServer:
    """Serves every repository under `root` over HTTP at `url`, to the credentials `allow`ed."""

    def __init__(self, root: Path | None = None, address: tuple[str, int] = ADDRESS):
        self.root = Path(root or tempfile.mkdtemp(prefix="cluster-secrets-e2e-git-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.url = f"http://{address[0]}:{address[1]}"
        self.refused = 0  # requests whose credentials were not allowed
        self.challenged = 0  # requests without credentials, answered with the Basic challenge
        self._allowed: set[tuple[str, str]] = set()
        self._accepted: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def __repr__(self) -> str:  # credentials stay out of assertion messages
        return f"GitServer({self.url}, refused={self.refused})"

    def allow(self, username: str, password: str) -> None:
        with self._lock:
            self._allowed.add((username, password))

    def revoke(self, username: str, password: str) -> None:
        with self._lock:
            self._allowed.discard((username, password))

    def logins(self, username: str, password: str) -> int:
        """How many requests these credentials made that were accepted."""
        with self._lock:
            return self._accepted[(username, password)]

    def repository(self, name: str) -> Repository:
        """A new repository, served at its `url` (make it once the server is started)."""
        return Repository(self, name)

    def start(self) -> GitServer:
        if GIT is None:
            raise RuntimeError("git is not on PATH: apt-get install -y git")
        self._httpd = ThreadingHTTPServer(self.address, _handler_for(self))
        self._httpd.daemon_threads = True
        port = int(self._httpd.server_address[1])  # port 0 asks for a free one
        self.address, self.url = (self.address[0], port), f"http://{self.address[0]}:{port}"
        threading.Thread(target=self._httpd.serve_forever, name="git-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def authorize(self, header: str | None) -> str | None:
        """The user name for allowed credentials; None, counted as challenged (none given) or refused."""
        if not header or not header.startswith("Basic "):
            with self._lock:
                self.challenged += 1
            return None
        try:
            username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            username, password = "", ""
        with self._lock:
            if (username, password) in self._allowed:
                self._accepted[(username, password)] += 1
                return username
            self.refused += 1
            return None

    def backend(self, method: str, path: str, query: str, user: str, headers: Any, body: bytes) -> bytes:
        """git http-backend's whole CGI answer (headers, a blank line, the body) to one request."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_USER": user,
            "REMOTE_ADDR": self.address[0],
            "CONTENT_TYPE": headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            # git http-backend inflates a gzipped request body itself; protocol v2 needs GIT_PROTOCOL.
            "HTTP_CONTENT_ENCODING": headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": headers.get("Git-Protocol", ""),
        }
        done = subprocess.run([str(GIT), "http-backend"], input=body, env=env, capture_output=True, check=False)
        return done.stdout


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        handler.rfile.readline()
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _split_cgi(answer: bytes) -> tuple[bytes, bytes]:
    """A CGI answer's headers and body, split at the first blank line (CRLF or LF line ends); the
    body is binary (a pack), so nothing in it is touched."""
    ends = [(answer.find(mark), mark) for mark in (b"\r\n\r\n", b"\n\n") if mark in answer]
    if not ends:
        return answer, b""
    at, mark = min(ends)
    return answer[:at], answer[at + len(mark) :]


def _handler_for(server: GitServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = _read_body(self) if self.command == "POST" else b""
            user = server.authorize(self.headers.get("Authorization"))
            if user is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="cluster-secrets-e2e"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            answer = server.backend(self.command, path, query, user, self.headers, body)
            head, content = _split_cgi(answer)
            status, fields = 200, []
            for line in head.decode(errors="replace").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    fields.append((name, value.strip()))
            self.send_response(status)
            for name, value in fields:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler

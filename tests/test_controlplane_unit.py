"""Fast checks of e2e/controlplane.py's pure parts: /etc/hosts editing, addresses, kubeconfig, KWOK stages.

Nothing here starts a process or needs the e2e binaries.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

from e2e import controlplane
from e2e.controlplane import Cluster, hosts_entry, hosts_line, wait_until


@pytest.fixture
def hosts(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
    return path


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_hosts_entry_adds_one_marked_line_and_removes_exactly_it(hosts):
    before = hosts.read_text()
    with hosts_entry("onepassword-connect.onepassword.svc.cluster.local", "127.0.0.2", hosts) as line:
        lines = hosts.read_text().splitlines()
        assert lines[-1] == line
        assert line.startswith("127.0.0.2 onepassword-connect.onepassword.svc.cluster.local # cluster-secrets-e2e ")
        assert f"pid={os.getpid()}" in line
        assert len(lines) == 3
    assert hosts.read_text() == before


def test_hosts_entry_removes_its_line_when_the_body_fails(hosts):
    before = hosts.read_text()
    with pytest.raises(KeyboardInterrupt), hosts_entry("connect.example", "127.0.0.2", hosts):
        raise KeyboardInterrupt
    assert hosts.read_text() == before


def test_nested_entries_for_the_same_name_are_removed_one_by_one(hosts):
    with hosts_entry("a.example", "127.0.0.2", hosts) as outer:
        with hosts_entry("a.example", "127.0.0.2", hosts) as inner:
            assert outer != inner
            assert outer in hosts.read_text() and inner in hosts.read_text()
        assert outer in hosts.read_text() and inner not in hosts.read_text()
    assert "a.example" not in hosts.read_text()


def test_stale_lines_of_dead_runs_go_and_live_ones_stay(hosts):
    stale = f"127.0.0.2 old.example # cluster-secrets-e2e pid={dead_pid()} entry=0"
    unreadable = "127.0.0.2 older.example # cluster-secrets-e2e"
    alive = f"127.0.0.2 other-run.example # cluster-secrets-e2e pid={os.getppid()} entry=1"
    hosts.write_text(hosts.read_text() + "\n".join([stale, unreadable, alive]) + "\n")
    with hosts_entry("new.example", "127.0.0.2", hosts):
        text = hosts.read_text()
        assert stale not in text and unreadable not in text
        assert alive in text and "localhost" in text
    assert hosts.read_text().splitlines()[-1] == alive


@pytest.mark.parametrize(("name", "ip"), [("a b", "127.0.0.2"), ("", "127.0.0.2"), ("x#y", "127.0.0.2"), ("a", "nope")])
def test_hosts_line_rejects_what_would_break_the_file(name, ip):
    with pytest.raises(ValueError):
        hosts_line(name, ip)


def test_two_clusters_get_separate_addresses_and_kubeconfigs(tmp_path):
    first, second = Cluster("homelab", tmp_path / "a", 0), Cluster("homelab-2", tmp_path / "b", 1)
    assert first.ip != second.ip and first.server != second.server
    taken = {"127.0.0.1", "127.0.0.2"}  # chart repository, Connect stand-in
    assert not {first.ip, second.ip} & taken
    for cluster in (first, second):
        cluster.workdir.mkdir()
        cluster._write_kubeconfig()
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        assert config["current-context"] == cluster.context == cluster.name
        assert [c["name"] for c in config["contexts"]] == [cluster.name]
        assert config["clusters"][0]["cluster"] == {"server": cluster.server, "insecure-skip-tls-verify": True}
        assert config["users"][0]["user"] == {"token": cluster.token}
        assert oct(cluster.kubeconfig.stat().st_mode & 0o777) == "0o600"
    # Distinct entry names, so KUBECONFIG=a:b merges both clusters.
    names = [json.loads(c.kubeconfig.read_text())["users"][0]["name"] for c in (first, second)]
    assert len(set(names)) == 2


def test_kwok_stages_cover_nodes_pods_jobs_and_deletion():
    stages = [doc for doc in yaml.safe_load_all(controlplane.STAGES.read_text()) if doc]
    assert {s["kind"] for s in stages} == {"Stage"}
    by_name = {s["metadata"]["name"]: s["spec"] for s in stages}
    assert set(by_name) == {"node-up", "node-keepalive", "pod-up", "job-pod-done", "pod-gone"}
    assert by_name["pod-gone"]["next"] == {"delete": True}
    assert "Succeeded" in by_name["job-pod-done"]["next"]["statusTemplate"]


def test_missing_binary_names_the_build_command(monkeypatch, tmp_path):
    monkeypatch.setattr(controlplane, "BIN", tmp_path)
    with pytest.raises(controlplane.Unavailable, match=r"e2e/build-tools kwok"):
        controlplane.binary("kwok")


def test_wait_until_returns_the_value_or_names_what_timed_out():
    values = iter([None, 0, "ready"])
    assert wait_until(lambda: next(values), 5, "x", interval=0) == "ready"
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: None, 0.05, "the moon", interval=0.01)

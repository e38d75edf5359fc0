"""After `up`: the wait until the cluster holds what was deployed (cluster_secrets/synced.py), against an
in-memory cluster whose ESO syncs only once it has been asked a given number of times."""

from cluster_secrets.kube import ESO_GROUP, ClusterError
from cluster_secrets.synced import NUDGE_EVERY, REFRESH_ANNOTATION, Target, wait_until_synced
from components.admin_secret import digest
from tests.fake_cluster import CANARY_HASH, CANARY_KEY, MTIME, FakeCluster, b64, ready

NEW = "2026-12-06T12:00:00Z"
WHERE = "Secret argocd/argocd-secret"


def target(mtime: str = NEW) -> Target:
    return Target(store="one-secretstore", namespace="argocd", eso_version="v1beta1", mtime=mtime)


class LaggingCluster(FakeCluster):
    """ESO reads a stale item (Connect not synced yet) until asked to sync `stale_syncs` more times."""

    def __init__(self, stale_syncs: int):
        super().__init__()
        self.stale_syncs = stale_syncs

    def annotate(self, *args: object, **kwargs: object) -> None:
        super().annotate(*args, **kwargs)  # type: ignore[arg-type]
        self.stale_syncs -= 1
        if self.stale_syncs <= 0:
            self.object("secret", "argocd", "argocd-secret")["data"]["admin.passwordMtime"] = b64(NEW)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(cluster: FakeCluster, wanted: Target, seconds: float = 60) -> tuple[bool, str, list[str], Clock]:
    clock, lines = Clock(), list[str]()
    outcome = wait_until_synced(cluster, wanted, lines.append, seconds, clock, clock.sleep)
    return outcome.synced, outcome.message, lines, clock


def test_a_cluster_that_holds_what_was_deployed_needs_no_wait() -> None:
    cluster = FakeCluster()
    synced, message, lines, clock = wait(cluster, target(MTIME))
    assert synced and message == f"The cluster holds what was deployed: argocd-secret has admin.passwordMtime {MTIME}."
    assert lines == [] and cluster.annotated == [] and clock.now == 0


def test_a_stale_secret_is_synced_again_until_it_holds_the_stacks_mtime() -> None:
    cluster = LaggingCluster(stale_syncs=3)
    synced, message, lines, clock = wait(cluster, target())
    assert synced and NEW in message
    # Each look that finds the old value asks ESO to sync, through an annotation ESO reacts to.
    assert [a[:3] for a in cluster.annotated] == [("externalsecrets", "argocd", "argocd-secret")] * 3
    assert all(set(a[3]) == {REFRESH_ANNOTATION} for a in cluster.annotated)
    assert lines[0] == (
        f"[0s] waiting: {WHERE} has admin.passwordMtime {MTIME}, the stack's is {NEW}; asked ESO to sync again"
    )
    assert clock.now == 3 * NUDGE_EVERY


def test_a_store_and_an_external_secret_that_are_not_ready_are_asked_to_sync() -> None:
    cluster = FakeCluster()
    store = cluster.object(ESO_GROUP, "v1beta1", "clustersecretstores", "one-secretstore", None)
    store["status"] = ready("InvalidProviderConfig: 401 Invalid bearer token", ok=False)
    external_secret = cluster.object(ESO_GROUP, "v1beta1", "externalsecrets", "argocd-secret", "argocd")
    external_secret["status"] = ready("SecretSyncedError", ok=False)

    def sync_both(*args: object, **kwargs: object) -> None:
        FakeCluster.annotate(cluster, *args, **kwargs)  # type: ignore[arg-type]
        store["status"], external_secret["status"] = ready("Valid"), ready("SecretSynced")

    cluster.annotate = sync_both  # type: ignore[method-assign]
    synced, _, lines, _ = wait(cluster, target(MTIME))
    assert synced
    assert "ClusterSecretStore one-secretstore not Ready (InvalidProviderConfig: 401 Invalid bearer token)" in lines[0]
    assert "ExternalSecret argocd/argocd-secret not Ready (SecretSyncedError)" in lines[0]
    assert sorted((a[0], a[1]) for a in cluster.annotated) == [
        ("clustersecretstores", None),
        ("externalsecrets", "argocd"),
    ]


def test_a_secret_that_never_syncs_fails_clearly_after_the_bound() -> None:
    cluster = LaggingCluster(stale_syncs=1000)
    synced, message, _, clock = wait(cluster, target(), seconds=30)
    assert not synced
    assert message.startswith(f"After 30s the cluster does not hold what this `up` deployed: {WHERE} has")
    assert f"admin.passwordMtime {MTIME}, the stack's is {NEW}" in message and "./cluster-secrets status" in message
    assert clock.now == 30 and len(cluster.annotated) == 30 // NUDGE_EVERY


def test_a_secret_whose_other_keys_differ_from_the_items_is_synced_again_naming_keys_only() -> None:
    # The item was edited in 1Password (ESO copied the edit), and `up` wrote the stack's values back:
    # the mtime matches, the hash does not.
    cluster = FakeCluster()
    written = {"admin.password": digest("$2b$10$the-stacks-hash"), "server.secretkey": digest(CANARY_KEY)}

    def sync(*args: object, **kwargs: object) -> None:
        FakeCluster.annotate(cluster, *args, **kwargs)  # type: ignore[arg-type]
        cluster.object("secret", "argocd", "argocd-secret")["data"]["admin.password"] = b64("$2b$10$the-stacks-hash")

    cluster.annotate = sync  # type: ignore[method-assign]
    synced, _, lines, _ = wait(cluster, Target("one-secretstore", "argocd", "v1beta1", MTIME, written))
    assert synced and len(cluster.annotated) == 1
    assert lines == [
        f"[0s] waiting: {WHERE} has admin.password other than the stack wrote to the item; asked ESO to sync again"
    ]
    assert CANARY_HASH not in "".join(lines)


def test_digests_that_match_need_no_wait() -> None:
    written = {"admin.password": digest(CANARY_HASH), "server.secretkey": digest(CANARY_KEY)}
    synced, message, lines, _ = wait(FakeCluster(), Target("one-secretstore", "argocd", "v1beta1", MTIME, written))
    assert synced and lines == []
    assert message.endswith(f"admin.passwordMtime {MTIME} and the values the stack wrote to its item.")


def test_an_unreadable_cluster_is_said_plainly() -> None:
    class Broken(FakeCluster):
        def secret(self, namespace: str, name: str) -> None:
            raise ClusterError("reading Secret argocd/argocd-secret: 403 Forbidden")

    synced, message, _, _ = wait(Broken(), target())
    assert not synced and message.endswith("reading Secret argocd/argocd-secret: 403 Forbidden")

"""The upgrade guard: ESO chart bumps that need a step this program does not take for you.

`up` and `preview` read the live cluster before Pulumi changes anything (`read_live`, from the
preflight) and stop with the path to take (`problems`); `plan --diff REF` sees only the pinned
versions, so it warns about the jump (`jump_warnings`). The rules are pure functions over plain facts.

What upstream says, and what each rule follows from (README "Upgrade guard" lists the sources):
- ESO 0.16.0 drops v1alpha1 from its CRDs, and the API server refuses a CRD update that drops a
  version still listed in the CRD's `status.storedVersions`, so the Helm upgrade would fail half
  way. ESO's guide to 0.16 (external-secrets#4662) has the status patch to run first.
- ESO 0.17.0 stops serving v1beta1 (its release notes: move to v1 on 0.16 first). The program moves
  its ESO objects from v1beta1 to v1 with an in-place update, which needs the CRD to serve both at
  that moment (FACTS.md, "Confirmed from upstream source"): only the 0.16 charts do.
- ESO recommends one minor version at a time (docs/introduction/stability-support.md). That is
  advice, not a break the program runs into, so it is a warning.
Connect (1.17.0 to 2.4.1) and Argo CD (10.1.1 only) need no step of their own here: see the README.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from cluster_secrets.kube import ESO_GROUP, Api, object_path
from cluster_secrets.takeover import RELEASE_DEPLOYMENTS
from components.config import PROJECT
from components.versions import ESO_API_VERSIONS, ChartVersion, eso_api_version, parse_chart_version

ESO_KEY = f"{PROJECT}:esoChartVersion"
# The ESO CRDs whose storedVersions ESO's guide to 0.16 has checked.
ESO_CRDS = tuple(
    f"{plural}.{ESO_GROUP}"
    for plural in ("externalsecrets", "secretstores", "clustersecretstores", "clusterexternalsecrets")
)
OBJECTS_CRD = f"externalsecrets.{ESO_GROUP}"  # the kind of ours whose served versions tell which one we use
CRD_API = "apiextensions.k8s.io/v1"
# The one series serving both v1beta1 and v1 (0.16.2 is its last release, and the e2e suite's).
BRIDGE = "0.16.2"
# API versions, oldest first; an unknown one counts as newer than all of them.
API_ORDER = ("v1alpha1", "v1beta1", "v1")
# The last minor of each ESO major, from the release table of docs/introduction/stability-support.md.
LAST_MINOR = {0: 20, 1: 3}


@dataclass(frozen=True)
class CrdVersions:
    listed: frozenset[str]  # in spec.versions
    served: frozenset[str]
    storage: str


def eso_crd_versions(chart: ChartVersion) -> CrdVersions:
    """The versions the ESO CRDs list, serve and store, for an ESO chart.

    Read in the CRD templates of the charts 0.12.1, 0.16.2 and 2.9.0 (../shared/upstream/charts);
    ESO places the changes at 0.16.0 (v1alpha1 gone, v1 added) and 0.17.0 (v1beta1 no longer served,
    still listed). The ClusterExternalSecret CRD of 0.12.1 lists no v1alpha1: checked against this
    table it can only look safer than it is for a version no cluster of ours stores.
    """
    if not chart.at_least(0, 16, 0):
        return CrdVersions(frozenset({"v1alpha1", "v1beta1"}), frozenset({"v1alpha1", "v1beta1"}), "v1beta1")
    if not chart.at_least(0, 17, 0):
        return CrdVersions(frozenset({"v1beta1", "v1"}), frozenset({"v1beta1", "v1"}), "v1")
    return CrdVersions(frozenset({"v1beta1", "v1"}), frozenset({"v1"}), "v1")


@dataclass(frozen=True)
class LiveCrd:
    name: str  # e.g. externalsecrets.external-secrets.io
    served: tuple[str, ...]
    storage: str
    stored: tuple[str, ...]  # status.storedVersions


@dataclass(frozen=True)
class LiveEso:
    """What the cluster shows of ESO: its CRDs (none on a new cluster) and the chart it runs, if known."""

    crds: tuple[LiveCrd, ...]
    chart: ChartVersion | None


@dataclass(frozen=True)
class Problem:
    key: str  # the config key to change, e.g. cluster-secrets:esoChartVersion
    live: str  # what in the cluster blocks the bump
    path: str  # what to do instead

    def __str__(self) -> str:
        return f"{self.key}: {self.live}. {self.path}"


def _age(version: str) -> int:
    return API_ORDER.index(version) if version in API_ORDER else len(API_ORDER)


def live_crd(obj: dict) -> LiveCrd:
    versions = obj.get("spec", {}).get("versions") or []
    return LiveCrd(
        name=str(obj.get("metadata", {}).get("name", "")),
        served=tuple(v["name"] for v in versions if v.get("served")),
        storage=next((v["name"] for v in versions if v.get("storage")), ""),
        stored=tuple((obj.get("status") or {}).get("storedVersions") or ()),
    )


def running_chart(deployment: dict | None) -> ChartVersion | None:
    """The ESO chart a Deployment was rendered from: its `helm.sh/chart` label (external-secrets-X.Y.Z)."""
    label = ((deployment or {}).get("metadata", {}).get("labels") or {}).get("helm.sh/chart", "")
    try:
        return parse_chart_version(label.removeprefix("external-secrets-")) if label else None
    except ValueError:
        return None


def read_live(api: Api, eso_namespace: str) -> LiveEso:
    """The ESO CRDs and the running ESO chart, through the Api protocol (ClusterError if unreadable)."""
    crds = [api.get(object_path(CRD_API, "CustomResourceDefinition", name)) for name in ESO_CRDS]
    deployment = api.get(object_path("apps/v1", "Deployment", RELEASE_DEPLOYMENTS["external-secrets"], eso_namespace))
    return LiveEso(tuple(live_crd(crd) for crd in crds if crd), running_chart(deployment))


def _patch_command(crd: LiveCrd, kept: Sequence[str]) -> str:
    value = "[" + ",".join(f'"{v}"' for v in kept) + "]"
    return (
        f"kubectl patch crd {crd.name} --subresource=status --type=json "
        f'-p \'[{{"op":"replace","path":"/status/storedVersions","value":{value}}}]\''
    )


def stored_version_problems(live: LiveEso, target: str, key: str) -> list[Problem]:
    """Versions in the CRDs' storedVersions that the target chart's CRDs no longer list: the API server
    refuses such a CRD update (Kubernetes validates storedVersions against spec.versions)."""
    wanted = eso_crd_versions(parse_chart_version(target))
    older: dict[str, list[str]] = {}  # CRD name -> its versions to take out (an upgrade's)
    newer: dict[str, list[str]] = {}  # CRD name -> versions the older chart cannot read (a downgrade's)
    commands = []
    for crd in live.crds:
        dropped = [v for v in crd.stored if v not in wanted.listed]
        gone = [v for v in dropped if _age(v) < _age(wanted.storage)]
        if gone:
            older[crd.name] = gone
            commands.append(_patch_command(crd, [v for v in crd.stored if v not in gone] or [crd.storage]))
        if len(gone) < len(dropped):
            newer[crd.name] = [v for v in dropped if v not in gone]
    found = []
    if older:
        versions = ", ".join(sorted({v for vs in older.values() for v in vs}, key=_age))
        found.append(
            Problem(
                key,
                f"the CRDs {', '.join(older)} list {versions} in status.storedVersions, which chart {target} drops "
                "from them (the API server would refuse the new CRDs in the middle of the Helm upgrade)",
                f"First make sure no object is stored as {versions} any more (write each one again through a served "
                "version), then take it out, as ESO's guide to 0.16 (external-secrets#4662) says: "
                f"{'; '.join(commands)}; then run this again",
            )
        )
    if newer:
        versions = ", ".join(sorted({v for vs in newer.values() for v in vs}, key=_age))
        found.append(
            Problem(
                key,
                f"the CRDs {', '.join(newer)} list {versions} in status.storedVersions, which chart {target} does "
                "not know: objects are stored in a version the older chart cannot read",
                "Moving ESO back across 0.16.0 is not a path this program takes: keep it at 0.16.0 or newer",
            )
        )
    return found


def objects_version(live: LiveEso) -> str | None:
    """The external-secrets.io version this stack's ESO objects use now: the program picks v1 for the
    charts that serve it (components/versions.py), so v1 when the live CRD serves v1; None on a new cluster."""
    crd = next((crd for crd in live.crds if crd.name == OBJECTS_CRD), None)
    if crd is None:
        return None
    return next((v.split("/")[1] for v in reversed(ESO_API_VERSIONS) if v.split("/")[1] in crd.served), None)


def bridge_problems(live: LiveEso, target: str, key: str) -> list[Problem]:
    """An upgrade to a chart that no longer serves the version this stack's ESO objects use now: the
    in-place update to v1 needs both served at once (FACTS.md), so it goes through the 0.16 charts."""
    in_use = objects_version(live)
    chart = parse_chart_version(target)
    wanted = eso_api_version(chart).split("/")[1]
    if in_use is None or in_use in eso_crd_versions(chart).served or _age(in_use) > _age(wanted):
        return []  # nothing installed, still served, or a downgrade (stored_version_problems speaks for it)
    return [
        Problem(
            key,
            f"the cluster's ESO serves this stack's ESO objects at {ESO_GROUP}/{in_use}, which chart {target} no "
            f"longer serves; the program moves them to {wanted} in place, which needs both served at once",
            f"Go through {BRIDGE} first (ESO's v0.17.0 notes: move to v1 on 0.16): set {key} to {BRIDGE}, run "
            f"`up`, then set it to {target} and run `up` again",
        )
    ]


def problems(live: LiveEso, target: str, key: str) -> list[Problem]:
    """Everything that stops a bump of the ESO chart to `target` (`key` names its config key)."""
    return stored_version_problems(live, target, key) + bridge_problems(live, target, key)


def _minors_between(start: ChartVersion, end: ChartVersion) -> list[str] | None:
    """The minor series strictly between two versions, oldest first; None past a major whose last minor
    is not known here."""
    between = []
    major, minor = start.major, start.minor + 1
    while (major, minor) < (end.major, end.minor):
        last = LAST_MINOR.get(major)
        if last is None and major < end.major:
            return None
        if last is not None and minor > last:
            major, minor = major + 1, 0
            continue
        between.append(f"{major}.{minor}")
        minor += 1
    return between


def minor_step_warnings(running: ChartVersion | None, target: str, key: str) -> list[str]:
    """ESO's advice to go one minor at a time, as a warning when a bump skips minor releases."""
    chart = parse_chart_version(target)
    if running is None or (running.major, running.minor) >= (chart.major, chart.minor):
        return []
    skipped = _minors_between(running, chart)
    if skipped == []:
        return []
    what = f"{len(skipped)} minor releases ({', '.join(skipped)})" if skipped else "minor releases"
    shown = f"{running.major}.{running.minor}.{running.patch}"
    return [
        f"{key}: ESO {shown} -> {target} skips {what}; ESO recommends one minor version at a time and reading "
        "each release's notes (docs/introduction/stability-support.md); the releases between were not "
        "tried here. The guard stops only where the program cannot go on (storedVersions, and 0.16 between "
        "v1beta1 and v1)."
    ]


def assumed_live(chart: ChartVersion) -> LiveEso:
    """A cluster that ran only this ESO chart, as far as the pinned version tells: what `plan` has."""
    versions = eso_crd_versions(chart)
    served = tuple(sorted(versions.served, key=_age))
    return LiveEso(tuple(LiveCrd(name, served, versions.storage, (versions.storage,)) for name in ESO_CRDS), chart)


def jump_warnings(base: str, head: str, key: str) -> list[str]:
    """`plan --diff`: the ESO chart pinned at REF (`base`) and now (`head`), warned about offline."""
    if not base or not head or base == head:
        return []
    start, end = parse_chart_version(base), parse_chart_version(head)
    warnings = [f"on a cluster running {base}, {problem}" for problem in problems(assumed_live(start), head, key)]
    if not start.at_least(0, 16, 0) and end.at_least(0, 16, 0):
        warnings.append(
            f"{key}: {base} -> {head} crosses 0.16.0, which drops v1alpha1 from ESO's CRDs: a cluster whose CRDs "
            "still list it in status.storedVersions (one that ran ESO before 0.5) must take it out first; "
            "`preview` checks this on the live cluster"
        )
    return warnings + minor_step_warnings(start, head, key)


def stop_message(stack: str, found: Sequence[Problem], followed_from: str = "") -> str:
    """`up` and `preview`: every problem, and for a stack that follows a primary where its version came from."""
    lines = [f"Stack {stack}: the ESO upgrade needs a step this program does not take (nothing was changed):"]
    lines += [f"  {problem}" for problem in found]
    if followed_from:
        lines.append(f"  (this stack follows the ESO version of {followed_from}; pin esoChartVersion here to choose)")
    return "\n".join(lines)

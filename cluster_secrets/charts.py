"""The stack's charts, from their repositories: is each pinned version there, and are the stack's
Helm values keys the chart has?

Both pass silently otherwise: a version the repository lacks fails deep inside `up` (the provider's
`helm pull`), and a misspelt values key (`argocdValues: {sever: ...}`) is merged and ignored by the
chart. So `preview`, `up` and `plan --render` read each http(s) repository's `index.yaml` (once per
run, and only until the pinned version's package is in ~/.cache/cluster-secrets/charts: then the
version exists) and that package, and:
- a version not in the index is an error naming the key (`cluster-secrets:esoChartVersion`);
- a values path the chart's `values.yaml` does not have is a warning naming the key and the path,
  with the closest key the chart has. Maps the chart leaves empty (`{}`, e.g. `podAnnotations`) and
  argo-cd's `configs.params` (free-form keys of argocd-cmd-params-cm) take any key.
OCI repositories have no index and are not checked.
"""

import difflib
import io
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.chart_values import Path as ValuesPath
from components.chart_values import dotted
from components.config import PROJECT, StackConfig, field_name

CACHE_DIR = Path.home() / ".cache" / "cluster-secrets" / "charts"
TIMEOUT = 30
# Maps whose keys are free-form though the chart lists some: configs.params feeds argocd-cmd-params-cm
# (FACTS.md, versions: `server.insecure` is no longer listed there and still honoured).
FREE_FORM: dict[str, set[ValuesPath]] = {"argo-cd": {("configs", "params")}}


class ChartError(Exception):
    """A chart or repository that cannot be read (exit code 1), naming it."""


# Each chart the program installs: the config keys of its version and of the user's values.
KEYS = {
    "connect": ("connectChartVersion", "connectValues"),
    "external-secrets": ("esoChartVersion", "esoValues"),
    "argo-cd": ("argocdChartVersion", "argocdValues"),
}


@dataclass(frozen=True)
class Pinned:
    key: str  # the config key of the version, e.g. esoChartVersion
    values_key: str  # the config key of the user's values, e.g. esoValues
    chart: str
    repository: str
    version: str


def pinned(releases: Iterable[Mapping[str, Any]]) -> list[Pinned]:
    """The charts of the stack's Helm releases (their inputs in the desired state)."""
    found = []
    for release in releases:
        chart = str(release["chart"])
        if chart in KEYS:
            repository = str((release.get("repositoryOpts") or {}).get("repo", ""))
            found.append(Pinned(*KEYS[chart], chart, repository, str(release.get("version", ""))))
    return found


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return bytes(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ChartError(f"cannot read {url}: {error}") from None


class Repositories:
    """Chart indexes and packages: from each chart's repository, or all from one local folder of
    packages with an index.yaml (`plan --render --charts DIR`). Each index is read once."""

    def __init__(self, local: Path | None = None, cache_dir: Path = CACHE_DIR):
        self.local, self.cache_dir = local, cache_dir
        self._indexes: dict[str, dict[str, Any]] = {}

    def index(self, repository: str) -> dict[str, Any]:
        where = str(self.local) if self.local else repository
        if where not in self._indexes:
            text = (
                (self.local / "index.yaml").read_bytes() if self.local else _get(repository.rstrip("/") + "/index.yaml")
            )
            self._indexes[where] = dict(yaml.safe_load(text) or {})
        return self._indexes[where]

    def where(self, chart: Pinned) -> str:
        return str(self.local) if self.local else chart.repository

    def cached(self, chart: Pinned) -> Path | None:
        """The chart's package when a run downloaded it before: its version exists, no index needed."""
        package = self.cache_dir / f"{chart.chart}-{chart.version}.tgz"
        return package if not self.local and package.exists() else None

    def values(self, chart: Pinned) -> dict[str, Any]:
        """The chart's own values.yaml, from its package (downloaded once into the cache)."""
        package = self.cached(chart)
        if package is None:
            entries = (self.index(chart.repository).get("entries") or {})[chart.chart]
            url = str(next(e for e in entries if str(e.get("version")) == chart.version)["urls"][0])
            if self.local:
                package = self.local / Path(url).name
            else:
                package = self.cache_dir / f"{chart.chart}-{chart.version}.tgz"
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                package.write_bytes(_get(urllib.parse.urljoin(chart.repository.rstrip("/") + "/", url)))
        with tarfile.open(fileobj=io.BytesIO(package.read_bytes())) as archive:
            member = archive.extractfile(f"{chart.chart}/values.yaml")
            return dict(yaml.safe_load(member.read()) or {}) if member else {}


def version_problem(chart: Pinned, found: Mapping[str, Any], where: str) -> str | None:
    """Why `chart.version` is not in the index `found` (of `where`), or None."""
    versions = [str(entry.get("version")) for entry in (found.get("entries") or {}).get(chart.chart) or []]
    if chart.version in versions:
        return None
    there = f"its versions there include {', '.join(versions[:5])}" if versions else "it has no such chart"
    return f"{PROJECT}:{chart.key}: {chart.version} is not a version of chart {chart.chart} in {where} ({there})"


def unknown_paths(
    values: Mapping[str, Any], defaults: Mapping[str, Any], free: set[ValuesPath], at: ValuesPath = ()
) -> Iterator[tuple[str, str]]:
    """(path, hint) of each path of `values` that `defaults` (a chart's values.yaml) does not have."""
    if at in free or not defaults:
        return
    for key, value in values.items():
        path = (*at, str(key))
        if key not in defaults:
            close = difflib.get_close_matches(str(key), [str(k) for k in defaults], n=1)
            yield dotted(path), f" (did you mean {dotted((*at, close[0]))}?)" if close else ""
        elif isinstance(value, Mapping) and isinstance(defaults[key], Mapping):
            yield from unknown_paths(value, defaults[key], free, path)


def check(
    releases: Iterable[Mapping[str, Any]], config: StackConfig, repositories: Repositories
) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the charts of the stack's `releases`, as above."""
    errors, warnings = [], []
    for chart in pinned(releases):
        if not repositories.local and not chart.repository.startswith(("http://", "https://")):
            continue
        problem = (
            None
            if repositories.cached(chart)
            else version_problem(chart, repositories.index(chart.repository), repositories.where(chart))
        )
        if problem:
            errors.append(problem)
            continue
        user_values = getattr(config, field_name(chart.values_key))
        if user_values:
            defaults = repositories.values(chart)
            for path, hint in unknown_paths(user_values, defaults, FREE_FORM.get(chart.chart, set())):
                warnings.append(
                    f"{PROJECT}:{chart.values_key}: {path} is not a value of chart {chart.chart} {chart.version}{hint}"
                )
    return errors, warnings

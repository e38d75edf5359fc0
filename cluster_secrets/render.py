"""The manifests a Helm release of the plan renders: `helm template` with the release's chart, version and values.

Input is the inputs of a `kubernetes:helm.sh/v3:Release` in a desired state (desired.py: secrets
already replaced by its marker). Output is stable: documents sorted by apiVersion/kind/namespace/name, keys sorted,
`data`/`stringData` of every Secret masked, and the cluster fixed to KUBE_VERSION. CRD schemas,
nine lines in ten of the ESO and Argo CD charts, are shown as digests unless `full_crds`.
Charts come from a folder of packages with an `index.yaml` (no network), or are pulled once from
the release's repository into a cache; `oci://` charts go to helm as they are.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cluster_secrets.desired import SECRET_MARKER
from cluster_secrets.errors import UsageError

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
KUBE_VERSION = "1.34.10"  # the end-to-end suite's cluster; charts see this, not a live cluster
CACHE_DIR = Path.home() / ".cache" / "cluster-secrets" / "charts"
# libyaml where PyYAML has it: a chart's few MB of YAML in a fraction of a second, not several seconds.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class RenderError(UsageError):
    """A chart that cannot be rendered (exit code 2): no helm, no such chart version, a template error."""


class HelmMissing(RenderError):
    pass


def find_helm(environ: Mapping[str, str] | None = None) -> str:
    """helm on PATH, else the one `e2e/build-tools helm` builds; else HelmMissing saying how to get it."""
    environ = os.environ if environ is None else environ
    found = shutil.which("helm", path=environ.get("PATH"))
    if found:
        return found
    built = Path(environ.get("CLUSTER_SECRETS_E2E_CACHE") or Path.home() / ".cache/cluster-secrets-e2e") / "bin/helm"
    if os.access(built, os.X_OK):
        return str(built)
    raise HelmMissing(
        f"Rendering charts needs the helm CLI, which is neither on PATH nor at {built}. Build it with "
        "`e2e/build-tools helm` (from the Go module, into that path), or install it "
        "(https://helm.sh/docs/intro/install/), then run this again."
    )


def _helm(helm: str, *args: str) -> str:
    result = subprocess.run([helm, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RenderError(f"helm {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def chart_from_index(charts_dir: Path, chart: str, version: str) -> Path:
    """The package that `charts_dir/index.yaml` names for chart+version."""
    if not (charts_dir / "index.yaml").is_file():
        raise RenderError(f"{charts_dir} is not a chart folder: it has no index.yaml")
    index = yaml.safe_load((charts_dir / "index.yaml").read_text())
    for entry in (index.get("entries") or {}).get(chart) or []:
        if str(entry.get("version")) == version and entry.get("urls"):
            package = charts_dir / entry["urls"][0]
            if package.is_file():
                return package
            raise RenderError(f"{charts_dir}/index.yaml names {entry['urls'][0]} for {chart} {version}: no such file")
    raise RenderError(f"No chart {chart} {version} in {charts_dir}/index.yaml")


def chart_from_repository(helm: str, repo: str, chart: str, version: str, cache_dir: Path) -> Path:
    """The package of chart+version from a chart repository, pulled once into `cache_dir`."""
    where = cache_dir / repo.split("://", 1)[-1].strip("/").replace("/", "_")
    package = where / f"{chart}-{version}.tgz"
    if package.is_file():
        return package
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=where) as pulled:
        try:
            _helm(helm, "pull", chart, "--repo", repo, "--version", version, "--destination", pulled)
        except RenderError as error:
            raise RenderError(f"No chart {chart} {version} from {repo}: {error}") from None
        downloaded = next(Path(pulled).glob("*.tgz"))
        downloaded.replace(package)  # whole or not at all, for the next run
    return package


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _masked_secret(manifest: dict[str, Any]) -> dict[str, Any]:
    """A Secret with each value of `data` and `stringData` replaced by the plan's marker (keys kept)."""
    for field in ("data", "stringData"):
        if isinstance(manifest.get(field), dict):
            manifest[field] = {key: SECRET_MARKER for key in manifest[field]}
        elif manifest.get(field) is not None:
            manifest[field] = SECRET_MARKER
    return manifest


def _crd_digested(manifest: dict[str, Any]) -> dict[str, Any]:
    """A CRD with each version's schema replaced by its digest: a changed schema shows as one line."""
    for version in (manifest.get("spec") or {}).get("versions") or []:
        if "schema" in version:
            canonical = json.dumps(version["schema"], sort_keys=True, separators=(",", ":"), default=str)
            version["schema"] = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    return manifest


def _order(manifest: dict[str, Any]) -> tuple[str, ...]:
    metadata = manifest.get("metadata") or {}
    keys = (manifest.get("apiVersion"), manifest.get("kind"), metadata.get("namespace"), metadata.get("name"))
    return tuple(str(key or "") for key in keys)


def render_release(
    release: Mapping[str, Any],
    charts_dir: Path | None = None,
    cache_dir: Path = CACHE_DIR,
    environ: Mapping[str, str] | None = None,
    full_crds: bool = False,
) -> list[dict[str, Any]]:
    """The manifests of one release (its plan inputs), sorted, keys sorted, Secrets masked."""
    helm = find_helm(environ)
    chart, version = str(release["chart"]), str(release.get("version", ""))
    repo = str((release.get("repositoryOpts") or {}).get("repo", ""))
    source: list[str]
    if charts_dir is not None:
        source = [str(chart_from_index(charts_dir, chart, version))]
    elif chart.startswith("oci://") or repo.startswith("oci://"):
        reference = chart if chart.startswith("oci://") else f"{repo.rstrip('/')}/{chart}"
        source = [reference, "--version", version] if version else [reference]
    elif repo:
        source = [str(chart_from_repository(helm, repo, chart, version, cache_dir))]
    else:
        raise RenderError(f"Release {release.get('name')}: chart {chart} has no repository and no --charts")
    name, namespace = str(release.get("name") or chart), str(release.get("namespace") or "default")
    crds = [] if release.get("skipCrds") else ["--include-crds"]
    with tempfile.TemporaryDirectory() as scratch:
        values = Path(scratch) / "values.yaml"
        values.write_text(yaml.safe_dump(release.get("values") or {}))
        options = ["--namespace", namespace, "--values", str(values), "--kube-version", KUBE_VERSION, *crds]
        text = _helm(helm, "template", name, *source, *options)
    manifests = [doc for doc in yaml.load_all(text, Loader=LOADER) if isinstance(doc, dict)]
    manifests = [_masked_secret(m) if m.get("kind") == "Secret" else m for m in manifests]
    if not full_crds:
        manifests = [_crd_digested(m) if m.get("kind") == "CustomResourceDefinition" else m for m in manifests]
    return [_sorted(m) for m in sorted(manifests, key=_order)]


def manifests_text(manifests: list[dict[str, Any]]) -> str:
    """The manifests as YAML documents, each opened by `---`: the same manifests, the same bytes."""
    return "".join("---\n" + yaml.dump(m, Dumper=DUMPER, sort_keys=True, width=1000) for m in manifests)


def with_manifests(state: dict[str, Any], charts_dir: Path | None = None, **options: Any) -> dict[str, Any]:
    """A plan's desired state where every Helm release also carries `manifests`, what its chart renders."""
    resources = [
        {**r, "manifests": render_release(r["inputs"], charts_dir, **options)} if r["type"] == HELM_RELEASE else r
        for r in state["resources"]
    ]
    return {**state, "resources": resources}

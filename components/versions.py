"""Rules that depend on a chart's version. Pure functions, no Pulumi runtime."""

import base64
import re
from typing import NamedTuple

# Helm chart versions are SemVer 2.0.0.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


class ChartVersion(NamedTuple):
    major: int
    minor: int
    patch: int
    prerelease: str

    def at_least(self, major: int, minor: int, patch: int) -> bool:
        """True from `major.minor.patch` on; a pre-release of that version is still below it."""
        core = (self.major, self.minor, self.patch)
        return core > (major, minor, patch) or (core == (major, minor, patch) and not self.prerelease)


def parse_chart_version(text: str) -> ChartVersion:
    """Parse a SemVer chart version; raise ValueError for anything else (ranges included)."""
    match = _SEMVER.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a chart version (expected SemVer such as 1.17.0)")
    major, minor, patch, prerelease = match.groups()
    return ChartVersion(int(major), int(minor), int(patch), prerelease or "")


# Every external-secrets.io API version that serves our objects, oldest first.
ESO_API_VERSIONS = ("external-secrets.io/v1beta1", "external-secrets.io/v1")


def eso_api_version(eso_chart: ChartVersion) -> str:
    """The external-secrets.io API version that the ESO chart serves for our objects.

    FACTS.md (ESO): `v1` is first served in chart 0.16.0 and `v1beta1` is no longer served from
    0.17.0, so v1beta1 below 0.16.0 and v1 from 0.16.0.
    """
    return ESO_API_VERSIONS[1] if eso_chart.at_least(0, 16, 0) else ESO_API_VERSIONS[0]


def connect_credentials_value(connect_chart: ChartVersion, credentials_json: bytes) -> str:
    """The decoded value of the Connect credentials Secret key for this chart version.

    FACTS.md (Connect credentials secret): charts below 2.3.0 pass the key to OP_SESSION as an
    environment variable and Connect expects base64 of the JSON there; from 2.3.0 the key is
    mounted as a file, so the value is the raw JSON.
    """
    if connect_chart.at_least(2, 3, 0):
        return credentials_json.decode("utf-8")
    return base64.b64encode(credentials_json).decode("ascii")

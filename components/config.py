"""Stack config: read once, validated, into typed objects holding plain values only.

Every key is declared in Pulumi.yaml (description, default, type); the Pulumi CLI merges those
defaults with the stack file, so the defaults live in one place and a key the program finds
missing is reported as such. `parse_settings` is pure, so it is tested without the Pulumi runtime.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

import pulumi

from components.errors import ConfigError
from components.versions import ChartVersion, parse_chart_version

PROJECT = "cluster-secrets"

CreateSecretMode = Literal["auto", "true", "false"]
CREATE_SECRET_MODES: tuple[CreateSecretMode, ...] = ("auto", "true", "false")

# bcrypt reads at most 72 bytes; Argo CD's admin password is stored as a bcrypt hash.
MIN_ADMIN_PASSWORD_LENGTH = 16
MAX_ADMIN_PASSWORD_LENGTH = 72

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# No key holds a secret: 1Password credentials come from the provider's own config, and
# the kubeconfig is named by its path, never inlined.
KEYS = (
    "kubeconfigPath",
    "kubeContext",
    "initVault",
    "credentialsItem",
    "tokenItem",
    "workingVault",
    "storeVaults",
    "connectNamespace",
    "connectChartRepo",
    "connectChartVersion",
    "connectCredentialsSecret",
    "connectCredentialsKey",
    "esoNamespace",
    "esoChartRepo",
    "esoChartVersion",
    "esoTokenSecret",
    "esoTokenKey",
    "secretStoreName",
    "argocdNamespace",
    "argocdChartRepo",
    "argocdChartVersion",
    "argocdCreateSecret",
    "argocdSecretItem",
    "argocdAdminItem",
    "argocdAdminPasswordLength",
    "primaryStack",
    "shareArgocdAdmin",
    "storeNamespaces",
    "storeOpenToAllNamespaces",
    "argocdAdminPasswordRotation",
    "argocdServerSecretKeyRotation",
)


@dataclass(frozen=True)
class Chart:
    repository: str
    version: str
    parsed: ChartVersion


@dataclass(frozen=True)
class OnePasswordSettings:
    init_vault: str
    credentials_item: str
    token_item: str
    working_vault: str
    store_vaults: Mapping[str, int]


@dataclass(frozen=True)
class ConnectSettings:
    namespace: str
    chart: Chart
    credentials_secret: str
    credentials_key: str


@dataclass(frozen=True)
class ExternalSecretsSettings:
    namespace: str
    chart: Chart
    token_secret: str
    token_key: str
    store_name: str
    # Namespaces allowed to use the store by name, besides those carrying its label.
    store_namespaces: tuple[str, ...]
    store_open_to_all: bool  # no namespace conditions at all, as in the reference setup


@dataclass(frozen=True)
class ArgoCDSettings:
    namespace: str
    chart: Chart
    create_secret: CreateSecretMode
    secret_item: str
    admin_item: str
    admin_password_length: int
    share_admin: bool  # use the primary stack's admin items instead of owning two
    # Bump to rotate: a new admin password (and hash and mtime), or a new server.secretkey.
    admin_password_rotation: int
    server_secret_key_rotation: int


@dataclass(frozen=True)
class Settings:
    kubeconfig_path: str  # "" means the usual lookup: $KUBECONFIG, then ~/.kube/config
    kube_context: str
    primary_stack: str  # "" for a primary stack
    onepassword: OnePasswordSettings
    connect: ConnectSettings
    external_secrets: ExternalSecretsSettings
    argocd: ArgoCDSettings


T = TypeVar("T")


class _Reader:
    """Reads raw config values and collects every problem, so one run reports them all."""

    def __init__(self, raw: Mapping[str, str], inherited: Mapping[str, str]):
        self.raw = raw
        self.inherited = inherited
        self.problems: list[str] = []

    def _check(self, key: str, parse: Callable[[str], T], fallback: T) -> T:
        value = self.raw.get(key)
        if value is None:
            self.problems.append(f"{PROJECT}:{key}: missing (declare it in Pulumi.yaml or set it in the stack)")
            return fallback
        return self._parse(key, value, parse, fallback)

    def _parse(self, key: str, value: str, parse: Callable[[str], T], fallback: T) -> T:
        try:
            return parse(value)
        except ValueError as error:
            self.problems.append(f"{PROJECT}:{key}: {error}")
            return fallback

    def text(self, key: str) -> str:
        return self._check(key, _non_empty, "")

    def optional_text(self, key: str) -> str:
        return self._check(key, str, "")

    def namespace(self, key: str) -> str:
        return self._check(key, _dns1123_label, "")

    def chart(self, repo_key: str, version_key: str) -> Chart:
        """A pinned chart; an empty version follows the primary stack's (`inherited`)."""
        text = self.raw.get(version_key) or self.inherited.get(version_key, "")
        unknown = ChartVersion(0, 0, 0, "")
        if text:
            version = self._parse(version_key, text, parse_chart_version, unknown)
        else:
            self.problems.append(
                f"{PROJECT}:{version_key}: must be set (a stack pins its chart versions, or follows "
                "a primary stack's with primaryStack)"
            )
            version = unknown
        return Chart(self.text(repo_key), text, version)

    def flag(self, key: str) -> bool:
        return self._check(key, _boolean, False)

    def vaults(self, key: str) -> Mapping[str, int]:
        return self._check(key, _vault_priorities, {})

    def create_secret(self, key: str) -> CreateSecretMode:
        return self._check(key, _create_secret_mode, "auto")

    def password_length(self, key: str) -> int:
        return self._check(key, _password_length, MIN_ADMIN_PASSWORD_LENGTH)

    def counter(self, key: str) -> int:
        return self._check(key, _counter, 0)

    def namespaces(self, key: str) -> tuple[str, ...]:
        return self._check(key, _namespace_list, ())


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _dns1123_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid namespace (expected a DNS-1123 label: at most 63 lowercase "
            "letters, digits or '-', starting and ending with a letter or digit)"
        )
    return value


def _vault_priorities(value: str) -> dict[str, int]:
    expected = "expected a map of 1Password vault name to a unique integer priority, e.g. {HomeLab: 1}"
    try:
        vaults = json.loads(value)
    except json.JSONDecodeError:
        raise ValueError(f"is not a map ({expected})") from None
    if not isinstance(vaults, dict) or not vaults:
        raise ValueError(f"is empty or not a map ({expected})")
    seen: dict[int, str] = {}
    for name, priority in vaults.items():
        # bool is an int in Python, and JSON true must not pass as priority 1.
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ValueError(f"vault {name!r} has priority {priority!r}, which is not an integer ({expected})")
        if priority in seen:
            raise ValueError(f"vaults {seen[priority]!r} and {name!r} share priority {priority} ({expected})")
        seen[priority] = name
    return vaults


def _counter(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an integer (bump it by one to rotate)") from None
    if number < 0:
        raise ValueError(f"{number} is negative (bump it by one to rotate)")
    return number


def _namespace_list(value: str) -> tuple[str, ...]:
    try:
        names = json.loads(value)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{value!r} is not a list of namespace names")
    return tuple(_dns1123_label(name) for name in names)


def _boolean(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError(f"{value!r} is not true or false")
    return value == "true"


def _create_secret_mode(value: str) -> CreateSecretMode:
    if value not in CREATE_SECRET_MODES:
        raise ValueError(f"{value!r} is not one of {', '.join(CREATE_SECRET_MODES)}")
    return cast(CreateSecretMode, value)


def _password_length(value: str) -> int:
    try:
        length = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an integer") from None
    if not MIN_ADMIN_PASSWORD_LENGTH <= length <= MAX_ADMIN_PASSWORD_LENGTH:
        raise ValueError(
            f"{length} is out of range (expected {MIN_ADMIN_PASSWORD_LENGTH} to {MAX_ADMIN_PASSWORD_LENGTH} "
            "bytes: shorter is weak, and bcrypt ignores everything past 72 bytes)"
        )
    return length


def parse_settings(raw: Mapping[str, str], inherited: Mapping[str, str] | None = None) -> Settings:
    """Validate raw config values (as strings, objects as JSON) into Settings, or raise ConfigError.

    `inherited` holds the chart versions of the primary stack, by config key, for the versions
    this stack leaves empty.
    """
    read = _Reader(raw, inherited or {})
    settings = Settings(
        kubeconfig_path=read.optional_text("kubeconfigPath"),
        kube_context=read.text("kubeContext"),
        primary_stack=read.optional_text("primaryStack"),
        onepassword=OnePasswordSettings(
            init_vault=read.text("initVault"),
            credentials_item=read.text("credentialsItem"),
            token_item=read.text("tokenItem"),
            working_vault=read.text("workingVault"),
            store_vaults=read.vaults("storeVaults"),
        ),
        connect=ConnectSettings(
            namespace=read.namespace("connectNamespace"),
            chart=read.chart("connectChartRepo", "connectChartVersion"),
            credentials_secret=read.text("connectCredentialsSecret"),
            credentials_key=read.text("connectCredentialsKey"),
        ),
        external_secrets=ExternalSecretsSettings(
            namespace=read.namespace("esoNamespace"),
            chart=read.chart("esoChartRepo", "esoChartVersion"),
            token_secret=read.text("esoTokenSecret"),
            token_key=read.text("esoTokenKey"),
            store_name=read.text("secretStoreName"),
            store_namespaces=read.namespaces("storeNamespaces"),
            store_open_to_all=read.flag("storeOpenToAllNamespaces"),
        ),
        argocd=ArgoCDSettings(
            namespace=read.namespace("argocdNamespace"),
            chart=read.chart("argocdChartRepo", "argocdChartVersion"),
            create_secret=read.create_secret("argocdCreateSecret"),
            secret_item=read.text("argocdSecretItem"),
            admin_item=read.text("argocdAdminItem"),
            admin_password_length=read.password_length("argocdAdminPasswordLength"),
            share_admin=read.flag("shareArgocdAdmin"),
            admin_password_rotation=read.counter("argocdAdminPasswordRotation"),
            server_secret_key_rotation=read.counter("argocdServerSecretKeyRotation"),
        ),
    )
    if settings.argocd.share_admin and not settings.primary_stack:
        read.problems.append(f"{PROJECT}:shareArgocdAdmin: needs primaryStack (whose admin items it shares)")
    vaults = settings.onepassword.store_vaults
    if vaults and not settings.argocd.share_admin and settings.onepassword.working_vault not in vaults:
        read.problems.append(
            f"{PROJECT}:storeVaults: must include the workingVault {settings.onepassword.working_vault!r}, "
            "where the argocd-secret item is created, or the ExternalSecret cannot find it"
        )
    if read.problems:
        raise ConfigError("Invalid stack config:\n  " + "\n  ".join(read.problems))
    return settings


def read_raw_config() -> dict[str, str]:
    """This stack's config as the CLI hands it over (Pulumi.yaml defaults merged with the stack file)."""
    config = pulumi.Config()
    return {key: value for key in KEYS if (value := config.get(key)) is not None}

"""Stack config: one typed model, `StackConfig`, is the source of truth for every key.

A key is a field of the model: its type and constraints, its default and its description. The
declarations in Pulumi.yaml and the README's config table are held to the model by the tests
(tests/test_config.py), so a new key is one field here plus its line in those two files.

The CLI hands config over as strings (objects and lists as JSON). `load_config` decodes them by
the field's type, validates every key at once, and raises one ConfigError that names each bad
key and what is expected, with any echoed value cut short. Unknown keys are errors, with the
closest known key named. The model holds plain values only, never an Output.
"""

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from components.chart_values import OWNED_VALUES, owned_conflicts
from components.errors import ConfigError
from components.versions import ChartVersion, parse_chart_version

PROJECT = "cluster-secrets"

CreateSecretMode = Literal["auto", "true", "false"]
# How the cluster's ESO reaches 1Password (FACTS.md, 1Password access modes).
OnePasswordAccess = Literal["connect", "external-connect", "service-account"]
# ESO's onepasswordSDK provider (service accounts) arrived in ESO v0.17.0.
SDK_PROVIDER_SINCE = (0, 17, 0)

# bcrypt reads at most 72 bytes; Argo CD's admin password is stored as a bcrypt hash.
MIN_ADMIN_PASSWORD_LENGTH = 16
MAX_ADMIN_PASSWORD_LENGTH = 72

# An echoed value is cut to this many characters: a pasted blob must not flood the terminal.
SHOWN_VALUE_LENGTH = 60

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def shown(value: Any) -> str:
    """A value as an error message shows it, in YAML's words (null, true; not Python's None, True):
    a string quoted, anything else as JSON; cut to SHOWN_VALUE_LENGTH characters."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= SHOWN_VALUE_LENGTH:
        return text
    return f"{text[:SHOWN_VALUE_LENGTH]}... ({len(text)} characters)"


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _matching(pattern: re.Pattern[str], max_length: int, what: str) -> Callable[[str], str]:
    """A validator: the value matches `pattern` and is at most `max_length` long, or it is not `what`."""

    def check(value: str) -> str:
        if len(value) > max_length or not pattern.match(value):
            raise ValueError(f"{shown(value)} is not {what}")
        return value

    return check


_dns1123_label = _matching(
    _DNS1123_LABEL,
    63,
    "a valid namespace (expected a DNS-1123 label: at most 63 lowercase letters, digits or '-', "
    "starting and ending with a letter or digit)",
)
_dns1123_subdomain = _matching(
    _DNS1123_SUBDOMAIN,
    253,
    "a valid Kubernetes name (expected a DNS-1123 subdomain: at most 253 lowercase letters, digits, '-' "
    "or '.', starting and ending with a letter or digit)",
)
_secret_data_key = _matching(_SECRET_DATA_KEY, 253, "a valid Secret key (expected letters, digits, '-', '_' or '.')")


def _chart_repo(value: str) -> str:
    url = urlsplit(value)
    if url.scheme not in ("http", "https", "oci") or not url.netloc or any(c.isspace() for c in value):
        raise ValueError(f"{shown(value)} is not a chart repository (expected an http(s):// or oci:// URL)")
    return value


# scp-like Git addresses (`git@github.com:me/repo.git`), which Argo CD reads as SSH.
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\s].*$")
GitRepositoryKind = Literal["https", "ssh"]
# The 1Password field labels read for each kind of URL (FACTS.md, ESO: fields are found by exact
# label; a Login item's own username and password fields come through under those labels).
CREDENTIAL_FIELDS: dict[GitRepositoryKind, tuple[str, ...]] = {
    "https": ("username", "password"),
    "ssh": ("sshPrivateKey",),
}


def repository_kind(url: str) -> GitRepositoryKind:
    """How Argo CD authenticates to a Git URL: `https` (username and password) for http(s)://,
    `ssh` (a private key) for ssh:// and `user@host:path`. ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return "https"
    if (parts.scheme == "ssh" and parts.netloc) or ("://" not in url and _SCP_LIKE.match(url)):
        return "ssh"
    raise ValueError("is not a Git repository URL (expected https://host/path, ssh://git@host/path or git@host:path)")


def _shown_url(url: str) -> str:
    """A URL as a message shows it: whatever precedes an '@' may be a credential and is left out."""
    return shown(url if "@" not in url else "...@" + url.rsplit("@", 1)[1])


def _git_url(value: str) -> str:
    """Empty (no GitOps), or a Git URL without a password: credentials come from 1Password only."""
    if not value:
        return value
    if any(c.isspace() or c in "{}" for c in value):
        raise ValueError(f"{_shown_url(value)} is not a Git repository URL (no spaces or braces)")
    if "://" in value and urlsplit(value).password is not None:
        raise ValueError("carries a password; put the repository's credentials in gitopsCredentialsItem instead")
    try:
        repository_kind(value)
    except ValueError as error:
        raise ValueError(f"{_shown_url(value)} {error}") from None
    return value


def _git_path(value: str) -> str:
    parts = value.split("/")
    if not value or value.startswith("/") or ".." in parts or any(c.isspace() for c in value):
        raise ValueError(f"{shown(value)} is not a path inside the repository (expected e.g. . or clusters/homelab)")
    return value


def _git_revision(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{shown(value)} is not a Git revision (expected a branch, tag, commit or HEAD)")
    return value


def _chart_version(value: str) -> str:
    """SemVer, or empty to follow the primary stack's version."""
    if value:
        try:
            parse_chart_version(value)
        except ValueError:
            raise ValueError(f"{shown(value)} is not a chart version (expected SemVer such as 1.17.0)") from None
    return value


NonEmpty = Annotated[str, AfterValidator(_non_empty)]
Namespace = Annotated[str, AfterValidator(_dns1123_label)]
KubeName = Annotated[str, AfterValidator(_dns1123_subdomain)]
SecretDataKey = Annotated[str, AfterValidator(_secret_data_key)]
ChartRepo = Annotated[str, AfterValidator(_chart_repo)]
ChartVersionText = Annotated[str, AfterValidator(_chart_version)]
GitURL = Annotated[str, AfterValidator(_git_url)]
GitPath = Annotated[str, AfterValidator(_git_path)]
GitRevision = Annotated[str, AfterValidator(_git_revision)]


def _counter(value: int) -> int:
    if value < 0:
        raise ValueError(f"{value} is negative (bump it by one to rotate)")
    return value


def _password_length(value: int) -> int:
    if not MIN_ADMIN_PASSWORD_LENGTH <= value <= MAX_ADMIN_PASSWORD_LENGTH:
        raise ValueError(
            f"{value} is out of range (expected {MIN_ADMIN_PASSWORD_LENGTH} to {MAX_ADMIN_PASSWORD_LENGTH} "
            "bytes: shorter is weak, and bcrypt ignores everything past 72 bytes)"
        )
    return value


Counter = Annotated[StrictInt, AfterValidator(_counter)]
PasswordLength = Annotated[StrictInt, AfterValidator(_password_length)]


@dataclass(frozen=True)
class Chart:
    repository: str
    version: str
    parsed: ChartVersion


class StackConfig(BaseModel):
    """Every `cluster-secrets:` key. No key holds a secret: 1Password credentials come from the
    provider's own config, and the kubeconfig is named by its path, never inlined."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, validate_default=False)

    # Kubernetes: always an explicit provider on a named context.
    kubeconfig_path: str = Field(
        "", description="Path of the kubeconfig file; empty means $KUBECONFIG, then ~/.kube/config."
    )
    kube_context: NonEmpty = Field(
        description="The kubeconfig context of the cluster this stack manages "
        "(required, so no stack lands on the wrong cluster)."
    )
    # A second cluster follows a primary stack.
    primary_stack: str = Field(
        "",
        description="<org>/cluster-secrets/<stack> of the primary stack this one follows "
        "(on file or S3 backends the org is `organization`); empty for a primary. "
        "Chart versions left empty here follow the primary's.",
    )
    share_argocd_admin: StrictBool = Field(
        False,
        description="With primaryStack, use the primary's Argo CD admin items (read, never written) "
        "instead of owning new ones.",
    )
    # 1Password.
    init_vault: NonEmpty = Field("InitHomeLab", description="Vault holding the Connect credentials file and token.")
    credentials_item: NonEmpty = Field(
        "1password-credentials",
        description="Item in the init vault with 1password-credentials.json attached as a file.",
    )
    token_item: NonEmpty = Field(
        "onepassword-connect-token",
        description="Item in the init vault holding the Connect token: its password, "
        "or the credential of an API Credential item.",
    )
    working_vault: NonEmpty = Field(
        "HomeLab", description="Vault where this stack creates the Argo CD items (argocd-secret, argo-admin)."
    )
    onepassword_access: OnePasswordAccess = Field(
        "connect",
        description="How ESO reaches 1Password: connect (the stack installs 1Password Connect), external-connect "
        "(a Connect server that runs already, at connectHost) or service-account (ESO's onepasswordSDK provider "
        "with a service account token; ESO 0.17.0 or newer, one vault).",
    )
    connect_host: str = Field(
        "",
        description="With onepasswordAccess external-connect: the URL of that Connect server (http:// or https://).",
    )
    service_account_token_item: str = Field(
        "",
        description="With onepasswordAccess service-account: the item in the init vault holding the service "
        "account token (the credential of an API Credential item, or a password).",
    )
    store_vaults: dict[NonEmpty, StrictInt] = Field(
        default_factory=lambda: {"HomeLab": 1},
        description="Vaults the ClusterSecretStore searches, vault name to a unique integer priority (lower first).",
    )
    # 1Password Connect.
    connect_namespace: Namespace = Field("onepassword", description="Namespace of 1Password Connect.")
    connect_chart_repo: ChartRepo = Field(
        "https://1password.github.io/connect-helm-charts", description="Helm repository of the connect chart."
    )
    connect_chart_version: ChartVersionText = Field(
        "",
        description="Version of the connect chart, pinned in the stack file; empty follows the primary stack. "
        "Below 2.3.0 the credentials are stored base64-encoded, from 2.3.0 as raw JSON.",
    )
    connect_credentials_secret: KubeName = Field(
        "op-credentials", description="Name of the Secret holding the Connect credentials."
    )
    connect_credentials_key: SecretDataKey = Field(
        "1password-credentials.json", description="Key of the credentials file in that Secret."
    )
    # External Secrets Operator.
    eso_namespace: Namespace = Field("eso", description="Namespace of the External Secrets Operator.")
    eso_chart_repo: ChartRepo = Field(
        "https://charts.external-secrets.io", description="Helm repository of the external-secrets chart."
    )
    eso_chart_version: ChartVersionText = Field(
        "",
        description="Version of the external-secrets chart, pinned in the stack file; empty follows the primary stack. "
        "Below 0.16.0 objects use external-secrets.io/v1beta1, from 0.16.0 v1.",
    )
    eso_token_secret: KubeName = Field(
        "onepassword-connect-token", description="Name of the Secret holding the Connect token for the store."
    )
    eso_token_key: SecretDataKey = Field("token", description="Key of the token in that Secret.")
    secret_store_name: KubeName = Field("one-secretstore", description="Name of the ClusterSecretStore.")
    store_namespaces: list[Namespace] = Field(
        default_factory=list,
        description="Namespaces allowed to use the store by name. Besides these, only namespaces labelled "
        "cluster-secrets.io/secret-store: <secretStoreName> can (the program labels Argo CD's).",
    )
    store_open_to_all_namespaces: StrictBool = Field(
        False,
        description="Let every namespace use the store, as the reference setup does (warned about at preview).",
    )
    # Argo CD.
    argocd_namespace: Namespace = Field("argocd", description="Namespace of Argo CD.")
    argocd_chart_repo: ChartRepo = Field(
        "https://argoproj.github.io/argo-helm", description="Helm repository of the argo-cd chart."
    )
    argocd_chart_version: ChartVersionText = Field(
        "",
        description="Version of the argo-cd chart, pinned in the stack file; empty follows the primary stack.",
    )
    argocd_create_secret: CreateSecretMode = Field(
        "auto",
        description="auto (default): the chart creates argocd-secret until ESO has synced it, then stops; true: the "
        "chart keeps creating it; false: ESO creates it before Argo CD is installed.",
    )
    argocd_secret_item: NonEmpty = Field(
        "argocd-secret", description="Title of the 1Password item (in workingVault) behind argocd-secret."
    )
    argocd_admin_item: NonEmpty = Field(
        "argo-admin",
        description="Title of the 1Password login item (in workingVault) holding the admin password in clear.",
    )
    argocd_admin_password_rotation: Counter = Field(
        0,
        description="Bump by one to rotate the Argo CD admin password "
        "(new password, hash and mtime; logs every session out).",
    )
    argocd_server_secret_key_rotation: Counter = Field(
        0, description="Bump by one to rotate server.secretkey (invalidates every session and token)."
    )
    argocd_admin_password_length: PasswordLength = Field(
        32,
        description="Length of the generated Argo CD admin password, 16 to 72 (bcrypt reads 72 bytes at most).",
    )
    adopted_argocd_items: StrictBool = Field(
        False,
        description="Set by `adopt`: the argocd-secret and argo-admin items were made outside this stack and are "
        "the source of truth. Their password, hash and mtime are kept until the first password rotation, the "
        "secret key until the first secret key rotation; each evaluation reads both items.",
    )
    # Chart values users add: deep-merged over the program's (components/chart_values.py).
    connect_values: dict[str, Any] = Field(
        default_factory=dict,
        description="Helm values for the connect chart, deep-merged over the program's; the paths it owns are "
        "refused. Helm keeps values in clear in its release records: never a credential.",
    )
    eso_values: dict[str, Any] = Field(
        default_factory=dict,
        description="Helm values for the external-secrets chart, deep-merged over the program's; the paths it owns "
        "are refused. Helm keeps values in clear in its release records: never a credential.",
    )
    argocd_values: dict[str, Any] = Field(
        default_factory=dict,
        description="Helm values for the argo-cd chart, deep-merged over the program's; the paths it owns are "
        "refused. Helm keeps values in clear in its release records: never a credential.",
    )
    # GitOps: the root Application Argo CD takes the cluster over with.
    gitops_repo_url: GitURL = Field(
        "",
        alias="gitopsRepoURL",
        description="Git repository of the root Application: https://..., ssh://... or git@host:path. "
        "Empty: no root Application, nothing of GitOps is created.",
    )
    gitops_path: GitPath = Field(
        ".", description="Directory in that repository the root Application syncs (e.g. clusters/homelab)."
    )
    gitops_revision: GitRevision = Field("HEAD", description="Branch, tag or commit the root Application follows.")
    gitops_credentials_item: str = Field(
        "",
        description="1Password item with the repository's credentials, read by ESO only: fields username and "
        "password for an https:// URL, sshPrivateKey for an SSH URL. Empty for a public https:// repository.",
    )
    gitops_credentials_vault: str = Field(
        "", description="Vault of gitopsCredentialsItem (the store must search it); empty means workingVault."
    )

    @field_validator("store_vaults")
    @classmethod
    def _unique_priorities(cls, vaults: dict[str, int]) -> dict[str, int]:
        if not vaults:
            raise ValueError("must name at least one vault, e.g. {HomeLab: 1}")
        seen: dict[int, str] = {}
        for name, priority in vaults.items():
            if priority in seen:
                raise ValueError(f"vaults {shown(seen[priority])} and {shown(name)} share priority {priority}")
            seen[priority] = name
        return vaults

    @field_validator("store_namespaces")
    @classmethod
    def _no_duplicate_namespaces(cls, names: list[str]) -> list[str]:
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(map(shown, twice))} more than once")
        return names

    @field_validator("primary_stack")
    @classmethod
    def _a_stack_of_this_project(cls, name: str, info: ValidationInfo) -> str:
        if not name:
            return name
        expected = f"expected <org>/{PROJECT}/<stack>; on file or S3 backends the org is `organization`"
        parts = name.split("/")
        if len(parts) != 3 or not all(_STACK_NAME.match(part) for part in parts):
            raise ValueError(f"{shown(name)} is not a stack name ({expected})")
        if parts[1] != PROJECT:
            raise ValueError(
                f"{shown(name)} is a stack of project {shown(parts[1])}; a stack can only follow another "
                f"{PROJECT} stack ({expected})"
            )
        if info.context and parts[2] == info.context.get("stack"):
            raise ValueError(f"{shown(name)} is this stack itself; name the primary stack it follows")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> "StackConfig":
        problems: list[str] = []
        if self.share_argocd_admin and not self.primary_stack:
            problems.append(f"{PROJECT}:shareArgocdAdmin: needs primaryStack (whose admin items it shares)")
        if self.share_argocd_admin and self.adopted_argocd_items:
            problems.append(
                f"{PROJECT}:adoptedArgocdItems: a stack that shares its primary's admin items owns none to adopt"
            )
        if not self.share_argocd_admin and self.working_vault not in self.store_vaults:
            problems.append(
                f"{PROJECT}:storeVaults: must include the workingVault {shown(self.working_vault)}, where the "
                "argocd-secret item is created, or the ExternalSecret cannot find it"
            )
        if self.argocd_secret_item == self.argocd_admin_item:
            problems.append(
                f"{PROJECT}:argocdAdminItem: {shown(self.argocd_admin_item)} is also argocdSecretItem; the two "
                "items need different titles"
            )
        namespaces = {"connectNamespace": self.connect_namespace, "esoNamespace": self.eso_namespace}
        for key, namespace in namespaces.items():
            if namespace == self.argocd_namespace:
                problems.append(
                    f"{PROJECT}:{key}: {shown(namespace)} is also argocdNamespace; each component needs its own"
                )
        if self.connect_namespace == self.eso_namespace:
            problems.append(
                f"{PROJECT}:esoNamespace: {shown(self.eso_namespace)} is also connectNamespace; "
                "each component needs its own"
            )
        if not self.primary_stack:
            for component, key in CHART_VERSION_KEYS.items():
                if component == "connect" and self.onepassword_access != "connect":
                    continue  # no Connect to install
                if not getattr(self, field_name(key)):
                    problems.append(
                        f"{PROJECT}:{key}: must be set (a stack pins its chart versions, or follows a primary "
                        "stack's with primaryStack)"
                    )
        problems += self._gitops_problems()
        problems += self._access_problems()
        for key, owned in OWNED_VALUES.items():
            problems += [f"{PROJECT}:{key}: {line}" for line in owned_conflicts(getattr(self, field_name(key)), owned)]
        if problems:
            # Raised as a plain ValueError, pydantic would prefix it; ConfigError carries the lines as they are.
            raise ConfigError(_INVALID + "\n  ".join(problems))
        return self

    def _access_problems(self) -> list[str]:
        """onepasswordAccess against the keys each mode needs and the ones it cannot use."""
        problems: list[str] = []
        mode = self.onepassword_access
        url = urlsplit(self.connect_host)
        if mode == "external-connect" and (url.scheme not in ("http", "https") or not url.netloc):
            problems.append(
                f"{PROJECT}:connectHost: {shown(self.connect_host)} is not a Connect URL (expected http:// or "
                "https://host:port), and onepasswordAccess external-connect needs one"
            )
        if mode != "external-connect" and self.connect_host:
            problems.append(f"{PROJECT}:connectHost: is only for onepasswordAccess external-connect")
        if mode != "service-account" and self.service_account_token_item:
            problems.append(f"{PROJECT}:serviceAccountTokenItem: is only for onepasswordAccess service-account")
        if mode != "service-account":
            return problems
        if not self.service_account_token_item.strip():
            problems.append(
                f"{PROJECT}:serviceAccountTokenItem: must name the item of the init vault that holds the service "
                "account token, with onepasswordAccess service-account"
            )
        if self.eso_chart_version and not parse_chart_version(self.eso_chart_version).at_least(*SDK_PROVIDER_SINCE):
            problems.append(
                f"{PROJECT}:esoChartVersion: {self.eso_chart_version} has no onepasswordSDK provider; "
                f"onepasswordAccess service-account needs ESO 0.17.0 or newer"
            )
        if list(self.store_vaults) != [self.working_vault]:
            problems.append(
                f"{PROJECT}:storeVaults: must be just the workingVault {shown(self.working_vault)} with "
                "onepasswordAccess service-account (ESO's onepasswordSDK provider reads one vault per store)"
            )
        return problems

    def _gitops_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.gitops_repo_url:
            if self.gitops_credentials_item:
                problems.append(f"{PROJECT}:gitopsCredentialsItem: needs gitopsRepoURL (the repository it opens)")
            return problems
        if self.gitops_credentials_vault and not self.gitops_credentials_item:
            problems.append(f"{PROJECT}:gitopsCredentialsVault: needs gitopsCredentialsItem (the item in that vault)")
        if not self.gitops_credentials_item:
            if self.gitops_repository_kind == "ssh":
                problems.append(
                    f"{PROJECT}:gitopsCredentialsItem: must be set for an SSH repository URL (an item with an "
                    "sshPrivateKey field); a public repository is read over https://"
                )
        elif self.gitops_credentials_vault_name not in self.store_vaults:
            problems.append(
                f"{PROJECT}:storeVaults: must include {shown(self.gitops_credentials_vault_name)}, the vault of "
                "gitopsCredentialsItem, or the ExternalSecret cannot find it"
            )
        return problems

    @property
    def gitops_repository_kind(self) -> GitRepositoryKind:
        return repository_kind(self.gitops_repo_url)

    @property
    def gitops_credentials_vault_name(self) -> str:
        return self.gitops_credentials_vault or self.working_vault

    def following(self, inherited: Mapping[str, str]) -> "StackConfig":
        """This config with its empty chart versions taken from the primary stack's (by config key)."""
        update = {
            field_name(key): inherited.get(key, "")
            for key in CHART_VERSION_KEYS.values()
            if not getattr(self, field_name(key))
        }
        missing = [key for key, version in update.items() if not version]
        if missing:
            raise ConfigError(
                _INVALID
                + "\n  ".join(
                    f"{PROJECT}:{to_camel(key)}: must be set (the primary stack does not say)" for key in missing
                )
            )
        return self.model_copy(update=update)

    def _chart(self, repo: str, version: str) -> Chart:
        return Chart(repo, version, parse_chart_version(version))

    @property
    def connect_chart(self) -> Chart:
        return self._chart(self.connect_chart_repo, self.connect_chart_version)

    @property
    def eso_chart(self) -> Chart:
        return self._chart(self.eso_chart_repo, self.eso_chart_version)

    @property
    def argocd_chart(self) -> Chart:
        return self._chart(self.argocd_chart_repo, self.argocd_chart_version)


_INVALID = "Invalid stack config:\n  "

# The chart of each component (as the `chartVersions` output names it) and the key that pins its version.
CHART_VERSION_KEYS = {
    "connect": "connectChartVersion",
    "externalSecrets": "esoChartVersion",
    "argocd": "argocdChartVersion",
}

FIELDS: dict[str, FieldInfo] = {info.alias or to_camel(name): info for name, info in StackConfig.model_fields.items()}
KEYS = tuple(FIELDS)


def field_name(key: str) -> str:
    """The model's field of a config key (esoValues -> eso_values)."""
    return next(name for name, info in StackConfig.model_fields.items() if info.alias == key)


def pulumi_type(info: FieldInfo) -> str:
    """The `type` of a key in Pulumi.yaml, which the CLI checks stack values against."""
    annotation = info.annotation
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation) or annotation
    if origin is bool:
        return "boolean"
    if origin is int:
        return "integer"
    if origin is list:
        return "array"
    if origin is dict:
        return "object"
    return "string"  # str and Literal


def declarations() -> dict[str, dict[str, Any]]:
    """What Pulumi.yaml must declare for each key: type, description, and default where there is one."""
    declared: dict[str, dict[str, Any]] = {}
    for key, info in FIELDS.items():
        spec: dict[str, Any] = {"type": pulumi_type(info), "description": info.description}
        if spec["type"] == "array":
            spec["items"] = {"type": "string"}
        if not info.is_required():
            spec["default"] = info.get_default(call_default_factory=True)
        declared[key] = spec
    return declared


def _decoded(key: str, text: str) -> Any:
    """A value as the CLI passes it (a string) back to what the stack file said: objects, lists,
    numbers and booleans arrive as JSON. Text that is not JSON stays text, for the model to refuse."""
    if key not in FIELDS or pulumi_type(FIELDS[key]) == "string":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _problem(error: Any) -> str:
    key, *inner = error["loc"] or ("config",)
    where = "".join(f"[{part!r}]" for part in inner if part != "[key]")
    if "[key]" in inner:
        where = f": the name {where[1:-1]}"
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f"; did you mean {close[0]}?" if close else "; the keys are listed in Pulumi.yaml"
        return f"{PROJECT}:{key}: is not a key of {PROJECT}{hint}"
    if error["type"] == "missing":
        return f"{PROJECT}:{key}{where}: missing (set it in the stack file)"
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif error["type"] == "literal_error":
        message = f"{shown(error['input'])} is not one of {error['ctx']['expected']}"
    else:
        # pydantic's own wording ("Input should be a valid integer"), with the value it got.
        message = f"{shown(error['input'])}: {error['msg'][0].lower()}{error['msg'][1:]}"
    return f"{PROJECT}:{key}{where}: {message}"


def load_config(raw: Mapping[str, str], stack: str) -> StackConfig:
    """Validate this stack's `cluster-secrets:` values (keys without the prefix, values as the CLI
    passes them) into a StackConfig, or raise one ConfigError listing every problem."""
    try:
        return StackConfig.model_validate(
            {key: _decoded(key, text) for key, text in raw.items()}, context={"stack": stack}
        )
    except ValidationError as error:
        raise ConfigError(_INVALID + "\n  ".join(_problem(e) for e in error.errors())) from None


def read_raw_config() -> dict[str, str]:
    """Every `cluster-secrets:` value the CLI handed over (Pulumi.yaml defaults merged with the
    stack file), unknown keys included so that a typo is reported, not ignored."""
    handed_over = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{PROJECT}:"
    return {key.removeprefix(prefix): str(value) for key, value in handed_over.items() if key.startswith(prefix)}

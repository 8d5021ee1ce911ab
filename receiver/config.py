"""The one settings object: loaded from a TOML file and the environment, validated once.

Precedence, highest first: environment (``RECEIVER_<SECTION>__<KEY>``), the TOML file
(``--config FILE`` or ``RECEIVER_CONFIG``), the embedded defaults. Secrets may also come
from files (``*_file`` keys), as Kubernetes mounts them.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from receiver.conditions import compile_condition
from receiver.console.settings import AdminSettings
from receiver.file_access import AccessError, require_readable
from receiver.reconcile.settings import ReconcileSettings
from receiver.secretfiles import read_secret
from receiver.section import Section, TextList, list_from_text
from receiver.sink_settings import SinkSettings

CONFIG_ENV = "RECEIVER_CONFIG"


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad key."""


class AuthType(StrEnum):
    """How MetaStudio proves a callback is genuine (``LiveEventCallBackConfig.auth_type``)."""

    NONE = "NONE"
    MSS_A = "MSS_A"
    MSS_A_HEAD = "MSS_A_HEAD"


class SigningRule(StrEnum):
    """What ``URI(callback_url)`` means in the signed message."""

    HOST_PATH_QUERY = "host_path_query"
    FULL_URL = "full_url"
    PATH_QUERY = "path_query"


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    path: str = "/callbacks/metastudio"
    public_url: str = ""
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    trusted_proxies: TextList = Field(default_factory=lambda: ["127.0.0.1"])
    max_body_bytes: int = Field(64 * 1024, ge=256, le=16 * 1024 * 1024)
    max_url_bytes: int = Field(8 * 1024, ge=256, le=1024 * 1024)
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    header_timeout_seconds: float = Field(10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(10.0, gt=0)
    limit_concurrency: int = Field(2048, ge=0)  # 0: no limit
    graceful_shutdown_seconds: float = Field(20.0, ge=0)
    access_log: bool = True

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value:
            raise ValueError("must start with '/' and carry no query")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL, as registered at MetaStudio")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        return self

    @property
    def callback_url(self) -> str:
        """The URL as registered at MetaStudio (required for signed auth; without it, this
        server's own address)."""
        if self.public_url:
            return self.public_url
        scheme = "https" if self.tls_certfile else "http"
        return f"{scheme}://{self.host}:{self.port}{self.path}"


class AuthSettings(Section):
    type: Annotated[list[AuthType], NoDecode, BeforeValidator(list_from_text)] = Field(
        default_factory=lambda: [AuthType.MSS_A_HEAD]
    )
    keys: Annotated[list[SecretStr], NoDecode, BeforeValidator(list_from_text)] = Field(
        default_factory=list
    )
    keys_file: Path | None = None
    tolerance_seconds: int = Field(120, ge=1, le=3600)
    rules: Annotated[list[SigningRule], NoDecode, BeforeValidator(list_from_text)] = Field(
        default_factory=lambda: [SigningRule.HOST_PATH_QUERY]
    )
    url_token_param: str | None = None
    allow_unauthenticated: bool = False

    @field_validator("keys")
    @classmethod
    def _key_length(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            if len(key.get_secret_value()) > 32:
                raise ValueError("a MetaStudio callback key has at most 32 characters")
        return value

    @model_validator(mode="after")
    def _proof_required(self) -> AuthSettings:
        if not self.type:
            raise ValueError("type: name at least one of NONE, MSS_A, MSS_A_HEAD")
        signed = any(t is not AuthType.NONE for t in self.type)
        has_keys = bool(self.keys) or self.keys_file is not None
        if signed and not has_keys:
            raise ValueError("keys (or keys_file) is required for MSS_A and MSS_A_HEAD")
        if AuthType.NONE in self.type and not self.allow_unauthenticated:
            if not self.url_token_param:
                raise ValueError(
                    "NONE needs url_token_param (tokens in keys) or allow_unauthenticated = true"
                )
            if not has_keys:
                raise ValueError("url_token_param needs the accepted tokens in keys or keys_file")
        return self


class IntakeSettings(Section):
    backend: Literal["sqlite", "nats", "redis"] = "sqlite"
    path: Path = Path("data/intake.db")
    max_pending: int = Field(100_000, ge=1)
    fsync: bool = True
    batch_max: int = Field(256, ge=1, le=10_000)
    url: str = Field("", repr=False)  # may carry a broker password
    url_file: Path | None = None
    stream: str = "METASTUDIO_INTAKE"
    replicas: int = Field(1, ge=1, le=5)
    partitions: int = Field(16, ge=1, le=1024)
    replica_id: str = Field("", pattern=r"^[A-Za-z0-9_-]*$")
    lease_ttl_seconds: float = Field(10.0, ge=0.3, le=600)
    ack_wait_seconds: float = Field(30.0, ge=0.5, le=3600)
    dedup_window_seconds: float = Field(0.0, ge=0, le=86_400)
    max_ack_pending: int = Field(1000, ge=1, le=100_000)
    timeout_seconds: float = Field(5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _url_from_file(self) -> IntakeSettings:
        if self.url_file is not None:
            object.__setattr__(self, "url", read_secret(self.url_file))
        return self


class RetrySettings(Section):
    max_attempts: int = Field(30, ge=1)
    max_age_seconds: float = Field(3600.0, gt=0)
    initial_backoff_seconds: float = Field(0.2, gt=0)
    max_backoff_seconds: float = Field(30.0, gt=0)


class PipelineSettings(Section):
    lanes: int = Field(64, ge=1, le=1024)
    max_in_flight: int = Field(1000, ge=1)
    retry: RetrySettings = RetrySettings()


class RouteSettings(Section):
    event_types: list[str] = Field(default_factory=lambda: ["*"])
    room_ids: list[str] = Field(default_factory=lambda: ["*"])
    room_names: list[str] = Field(default_factory=lambda: ["*"])
    enrichment_status: list[str] = Field(default_factory=lambda: ["*"])
    # A CEL expression over the envelope (receiver/conditions.py); empty: no condition.
    condition: str = ""
    sinks: list[str] = Field(min_length=1)


class MetaStudioSettings(Section):
    endpoint: str = ""
    region: str = "cn-north-4"
    project_id: str = ""
    auth: Literal["aksk", "token"] = "aksk"
    ak: SecretStr | None = None
    sk: SecretStr | None = None
    ak_file: Path | None = None
    sk_file: Path | None = None
    iam_endpoint: str = ""
    iam_user: str = ""
    iam_password: SecretStr | None = None
    iam_password_file: Path | None = None
    iam_domain: str = ""
    app_user_id: str = ""
    rate_limit_per_second: float = Field(10.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0)
    max_retries: int = Field(4, ge=0)

    @property
    def base_url(self) -> str:
        return self.endpoint or f"https://metastudio.{self.region}.myhuaweicloud.com"


class EnrichmentSettings(Section):
    enabled: bool = False
    ttl_seconds: float = Field(60.0, gt=0)
    negative_ttl_seconds: float = Field(5.0, gt=0)
    deadline_seconds: float = Field(30.0, ge=0)
    cache_size: int = Field(10_000, ge=1)
    sweep_interval_seconds: float = Field(30.0, gt=0)
    on_not_found: Literal["forward", "dead_letter"] = "forward"
    on_mismatch: Literal["forward", "dead_letter"] = "forward"


class DeadLetterSettings(Section):
    path: Path = Path("data/dead-letters.db")


class TracingSettings(Section):
    enabled: bool = False
    exporter: Literal["otlp", "console"] = "otlp"
    endpoint: str = ""
    service_name: str = "metastudio-receiver"


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


def _default_sinks() -> list[SinkSettings]:
    from receiver.sink_settings import JsonlSinkSettings

    return [JsonlSinkSettings(name="jsonl", type="jsonl", path=Path("data/events.jsonl"))]


def _default_routes() -> list[RouteSettings]:
    return [RouteSettings(sinks=["jsonl"])]


class Settings(BaseSettings):
    """Everything the receiver reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="RECEIVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings(allow_unauthenticated=True, type=[AuthType.NONE])
    intake: IntakeSettings = IntakeSettings()
    pipeline: PipelineSettings = PipelineSettings()
    sinks: list[Annotated[SinkSettings, Field(discriminator="type")]] = Field(
        default_factory=_default_sinks
    )
    routes: list[RouteSettings] = Field(default_factory=_default_routes)
    metastudio: MetaStudioSettings = MetaStudioSettings()
    enrichment: EnrichmentSettings = EnrichmentSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()
    logging: LoggingSettings = LoggingSettings()
    tracing: TracingSettings = TracingSettings()
    admin: AdminSettings = AdminSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @model_validator(mode="after")
    def _routes_name_known_sinks(self) -> Settings:
        names = [sink.name for sink in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError("sinks: every sink needs a unique name")
        for index, route in enumerate(self.routes):
            unknown = sorted(set(route.sinks) - set(names))
            if unknown:
                raise ValueError(f"routes[{index}].sinks: unknown sink(s) {unknown}")
            if route.condition:
                try:
                    compile_condition(route.condition)
                except ValueError as error:
                    raise ValueError(f"routes[{index}].condition: {error}") from None
        if self.intake.backend == "sqlite" and self.intake.url:
            raise ValueError("intake.url is for the nats and redis backends")
        if self.admin.enabled and self.admin.port == self.server.port:
            raise ValueError("admin.port must differ from server.port: never the callback port")
        if self.intake.backend != "sqlite" and not self.intake.url:
            raise ValueError(f"intake.url is required for the {self.intake.backend} backend")
        for section in ("enrichment", "reconcile"):
            if getattr(self, section).enabled and not self.metastudio.project_id:
                raise ValueError(f"metastudio.project_id is required when {section}.enabled")
        signed = sorted(t.value for t in self.auth.type if t is not AuthType.NONE)
        if signed and not self.server.public_url:
            # Signatures cover the URL as registered at MetaStudio; our own bind address
            # (0.0.0.0 in a container) would make every one of them fail, silently.
            raise ValueError(
                f"server.public_url is required with auth.type {signed}: "
                "the callback URL exactly as registered at MetaStudio"
            )
        return self


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{key}: {item['msg']}")
    return "; ".join(lines)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the settings, raising ConfigError that names each bad key."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV) or None
    if chosen is not None:
        _require_config_file(Path(chosen))

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=chosen)

    try:
        return _FromFile(**overrides)
    except ValidationError as error:
        raise ConfigError(_format_errors(error)) from None
    except ValueError as error:  # a malformed TOML file or environment value
        raise ConfigError(str(error)) from None
    except OSError as error:  # the file changed under us between the check and the read
        raise ConfigError(f"cannot read config file {chosen}: {error.strerror}") from None


def _require_config_file(path: Path) -> None:
    try:
        missing = not path.exists()
    except PermissionError:  # a directory above it cannot be searched: said below
        missing = False
    if missing:
        raise ConfigError(f"config file not found: {path}")
    try:
        require_readable(path, "config file")
    except AccessError as error:
        raise ConfigError(str(error)) from None
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} is not a file")

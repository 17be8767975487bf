"""Deployment settings: one TOML file plus ``EVERYTHING_*`` environment overrides.

The file is found at ``--config``, else ``$EVERYTHING_CONFIG``, else
``./everything.toml`` when it exists. Environment variables override single
keys; a double underscore descends into a table
(``EVERYTHING_DATABASE__URL``, ``EVERYTHING_PLUGINS__ENABLED=calls,feed``).
``DATABASE_URL`` is honoured too, because every platform that hands out a
database sets it.

Unknown and invalid keys are errors: :class:`SettingsError` carries one line
that names the key, and the CLI prints exactly that line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "EVERYTHING_"
# Variables with the prefix that are not settings keys.
ENV_NOT_SETTINGS = {"EVERYTHING_CONFIG"}
ENV_NOT_SETTINGS_PREFIXES = ("EVERYTHING_TEST_",)


PLAN_NAME = re.compile(r"[a-z][a-z0-9_]{1,31}")


class SettingsError(Exception):
    """A setting is unknown or invalid; the message is one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Public address of the deployment, used in links such as upgrade URLs.
    base_url: str | None = None
    # Behind a TLS-terminating proxy the app sees http; this forces Secure cookies.
    https: bool = False
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)


class DatabaseSettings(_Section):
    # None means the embedded default: SQLite in the data folder.
    url: str | None = None
    echo: bool = False
    # Upgrade the schema at start-up; None means only for the embedded SQLite.
    auto_migrate: bool | None = None
    # PostgreSQL connections each process keeps, and may open beyond them when busy; each process
    # also holds one for its periodic jobs' locks (docs/scale-out.md: pool sizing).
    pool_size: int = Field(default=5, ge=1, le=1000)
    max_overflow: int = Field(default=5, ge=0, le=1000)

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            backend = make_url(normalise_database_url(value)).get_backend_name()
        except ArgumentError:
            raise ValueError("not a database URL") from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value


class AuthSettings(_Section):
    session_days: int = Field(default=30, ge=1)
    min_password_length: int = Field(default=8, ge=8, le=1024)
    login_failures_per_username: int = Field(default=10, ge=1)
    login_failures_per_client: int = Field(default=30, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    # Accounts made from one client address in an hour through the sign-up form or API; 0: no limit.
    signups_per_client_per_hour: int = Field(default=50, ge=0)
    reserved_usernames: list[str] = Field(default_factory=list)


class LogSettings(_Section):
    level: str = "INFO"
    requests: bool = True

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value


class PlanSettings(_Section):
    """``[plans.<name>]``: one plan, its price and what it unlocks.

    ``features`` moves features into this plan, whatever plan their plugin
    proposed; ``includes`` names plans whose features this one unlocks too.
    """

    title: str | None = None
    description: str = ""
    # In minor units (cents) per interval; 0 is free of charge.
    price: int = Field(default=0, ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    interval: Literal["month", "year"] = "month"
    includes: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)


class EntitlementsSettings(_Section):
    # Where a refused check sends people; plans and prices are listed there.
    upgrade_url: str = "/premium"
    # How often each process re-reads the operator's switches, and how long it
    # trusts cached plans: changes made by another process show within this.
    refresh_seconds: float = Field(default=2.0, gt=0, le=60)


class RealtimeSettings(_Section):
    heartbeat_seconds: float = Field(default=25.0, gt=0)
    max_message_bytes: int = Field(default=64 * 1024, ge=256)
    # Per connection: a token bucket of this rate and burst.
    messages_per_second: float = Field(default=20.0, gt=0)
    burst: int = Field(default=60, ge=1)
    # Messages waiting for a slow client before it is disconnected.
    send_queue: int = Field(default=256, ge=1)
    # Bad messages tolerated per minute before the socket is closed.
    max_bad_messages: int = Field(default=30, ge=1)

    @property
    def max_frame_bytes(self) -> int:
        """The largest websocket frame the server reads at all (uvicorn's ``ws_max_size``).

        Far over ``max_message_bytes``, so that a message a little too large is
        read and refused with ``message_too_large``, while a huge frame is cut
        off by the server itself before it is buffered whole.
        """
        return max(16 * self.max_message_bytes, 1 << 20)


class BusSettings(_Section):
    # None: the in-process bus, for one server process. redis://… for many.
    url: str | None = None
    # Channels are prefixed so that deployments can share one Redis; the default
    # names the deployment by the id stored in its database (whatever URL reaches it).
    channel_prefix: str | None = None
    # How long Redis may stay unreachable before /readyz answers 503 (local delivery goes on meanwhile).
    down_after_seconds: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class S3Settings(_Section):
    """``[media.s3]``: the bucket of ``storage = "s3"``. Credentials left out come from boto3's chain (AWS_* variables, a profile, an instance role)."""

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    # None: AWS itself; else any S3-compatible server (http://127.0.0.1:9000 for MinIO ...).
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    # Objects are named <prefix><plugin>/<key>: several deployments can share a bucket.
    prefix: str = Field(default="", max_length=200, pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*/)*$")


class MediaSettings(_Section):
    """``[media]``: where feed media and Spaces recordings live (docs/media-storage.md)."""

    # local: this host's disk (one host only); database: the deployment's database; s3: a bucket.
    storage: Literal["local", "database", "s3"] = "local"
    s3: S3Settings = Field(default_factory=S3Settings)

    @model_validator(mode="after")
    def _s3_usable(self) -> MediaSettings:
        if self.storage == "s3":
            if not self.s3.bucket:
                raise ValueError('storage "s3" needs media.s3.bucket')
            if importlib.util.find_spec("boto3") is None:
                raise ValueError("storage \"s3\" needs boto3: pip install 'everything-kernel[s3]'")
        return self


class PluginsSettings(BaseModel):
    """``[plugins]``: which plugins run, and one sub-table of settings per plugin.

    ``enabled`` of None means every bundled plugin. Sub-tables are checked
    against each plugin's own settings model once the plugins are discovered.
    """

    model_config = ConfigDict(extra="allow")

    enabled: list[str] | None = None

    def plugin_section(self, name: str) -> Any:
        """The raw ``[plugins.<name>]`` value; the plugin's settings model checks it."""
        return (self.model_extra or {}).get(name, {})

    def section_names(self) -> list[str]:
        return list((self.model_extra or {}).keys())


class Settings(_Section):
    data_dir: Path = Path("everything-data")
    secret_key: SecretStr | None = None
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    plugins: PluginsSettings = Field(default_factory=PluginsSettings)
    plans: dict[str, PlanSettings] = Field(default_factory=dict)
    entitlements: EntitlementsSettings = Field(default_factory=EntitlementsSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)

    @field_validator("plans")
    @classmethod
    def _plan_names(cls, value: dict[str, PlanSettings]) -> dict[str, PlanSettings]:
        for name in value:
            if not PLAN_NAME.fullmatch(name):
                raise ValueError(f"plan name '{name}' must be 2-32 lowercase letters, digits or underscores")
        return value

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, the embedded SQLite file unless one is set."""
        if self.database.url:
            return normalise_database_url(self.database.url)
        return f"sqlite:///{(self.data_dir / 'everything.db').resolve()}"

    @property
    def is_embedded_database(self) -> bool:
        return not self.database.url

    @property
    def migrates_by_itself(self) -> bool:
        """Whether the kernel upgrades the schema before use: as ``database.auto_migrate`` says, else only the embedded SQLite."""
        auto = self.database.auto_migrate
        return auto if auto is not None else self.is_embedded_database

    def secret(self) -> str:
        assert self.secret_key is not None, "ensure_secret_key() runs at boot"
        return self.secret_key.get_secret_value()

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by ``***``."""
        data = self.model_dump(mode="json")
        if data.get("secret_key"):
            data["secret_key"] = "***"
        for section in ("database", "bus"):
            if data[section].get("url"):
                data[section]["url"] = _redact_url(data[section]["url"])
        return data


def throwaway(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings of a deployment of its own in ``data_dir``: the embedded SQLite database, migrated by
    itself, the in-process bus and media on its own disk; whatever a settings file or the environment say of them. Used as
    overrides or as the start of a settings dict (the sandbox, ``plugins check``, the test kit)."""
    return {"data_dir": str(data_dir), "database": {"url": None, "auto_migrate": True}, "bus": {"url": None}, "media": {"storage": "local"}}


def normalise_database_url(url: str) -> str:
    # Platforms hand out postgres:// URLs; SQLAlchemy wants a driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _env_value(raw: str) -> Any:
    """An environment value: JSON for a list or table, else the text for the settings model to coerce.

    Plain text stays text, so a numeric secret key remains a string while
    ``"9000"`` still becomes a port number.
    """
    if raw.lstrip().startswith(("[", "{")):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in sorted(environ.items()):
        if name == "DATABASE_URL":
            data.setdefault("database", {})["url"] = raw
            continue
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        if name.startswith(ENV_NOT_SETTINGS_PREFIXES):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise SettingsError(f"{name}: {'.'.join(path[:-1])} is not a table")
        value = _env_value(raw)
        if path[-1] == "enabled" and isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        target[path[-1]] = value


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown setting '{key}'"
    message = first["msg"].removeprefix("Value error, ")
    return f"{source}: invalid setting '{key}': {message}"


def config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    """The settings file to read: explicit, then $EVERYTHING_CONFIG, then ./everything.toml."""
    if explicit:
        return Path(explicit)
    if environ.get("EVERYTHING_CONFIG"):
        return Path(environ["EVERYTHING_CONFIG"])
    default = Path("everything.toml")
    return default if default.exists() else None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the file, apply the environment, then ``overrides``; validate the result.

    :raises SettingsError: with one line naming the offending key.
    """
    environ = os.environ if environ is None else environ
    file = config_path(path, environ)
    data: dict[str, Any] = {}
    source = "settings"
    if file is not None:
        source = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"{file}: settings file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise SettingsError(f"{file}: cannot read the settings file: {exc.strerror}") from None
    _apply_env(data, environ)
    for key, value in (overrides or {}).items():
        data[key] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, source)) from None


def check_shared_settings(settings: Settings, workers: int = 1) -> None:
    """Refuse, before anything starts, settings that break a deployment of several processes.

    Every process must sign sessions and CSRF tokens with one ``secret_key``:
    the one each data folder would generate for itself differs from host to
    host, and cookies made by one process are refused (403 ``csrf_failed``) by
    the others. A Redis bus means several processes, so it needs the key set;
    and ``workers`` over 1 need the bus.

    :raises SettingsError: with one line naming the setting.
    """
    if workers > 1 and not settings.bus.url:
        raise SettingsError(
            f"bus.url: serve --workers {workers} needs a Redis bus shared by the workers "
            "(set bus.url or EVERYTHING_BUS__URL to redis://...)"
        )
    if settings.bus.url and (settings.secret_key is None or not settings.secret_key.get_secret_value().strip()):
        raise SettingsError(
            "secret_key: must be set when bus.url is set, the same on every process of the deployment "
            "(set secret_key or EVERYTHING_SECRET_KEY; make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )


def ensure_data_dir(settings: Settings) -> None:
    """Create the data folder and, once, the secret key kept in it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.secret_key is not None:
        return
    key_file = settings.data_dir / "secret_key"
    if not key_file.exists():
        # O_EXCL: two processes starting at once must not write different keys.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    settings.secret_key = SecretStr(key_file.read_text().strip())


def validate_plugin_settings(model: type[BaseModel] | None, data: Mapping[str, Any], plugin: str) -> BaseModel | None:
    """Validate one plugin's ``[plugins.<name>]`` table; raise ValueError naming the key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"invalid setting 'plugins.{plugin}': must be a table")
    if model is None:
        if data:
            raise ValueError(f"unknown setting 'plugins.{plugin}.{next(iter(data))}' (the plugin has no settings)")
        return None
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"invalid setting 'plugins.{plugin}.{key}': {first['msg']}") from None

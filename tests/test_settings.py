"""Settings: the TOML file, environment overrides, and one-line errors that name the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.settings import SettingsError, ensure_data_dir, load_settings


def everything(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("EVERYTHING_") and key != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "kernel.cli", *args], capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}, cwd=cwd
    )


def test_file_and_environment_combine_with_environment_winning(tmp_path: Path) -> None:
    config = tmp_path / "everything.toml"
    config.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[plugins]\nenabled = ["feed"]\n')
    settings = load_settings(config, environ={"EVERYTHING_SERVER__PORT": "9100", "EVERYTHING_PLUGINS__ENABLED": "feed,calls"})
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.plugins.enabled == ["feed", "calls"]


def test_config_path_comes_from_everything_config(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text("[server]\nport = 9200\n")
    assert load_settings(environ={"EVERYTHING_CONFIG": str(config)}).server.port == 9200


def test_database_url_is_honoured_and_gets_a_driver(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "none.toml" if False else None, environ={"DATABASE_URL": "postgres://u:pw@db/app"})
    assert settings.database_url == "postgresql+psycopg://u:pw@db/app"


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "everything.toml"
    config.write_text("[server]\nprot = 9000\n")
    with pytest.raises(SettingsError, match=r"unknown setting 'server.prot'"):
        load_settings(config, environ={})


def test_unknown_environment_variable_is_named() -> None:
    with pytest.raises(SettingsError, match=r"unknown setting 'colour'"):
        load_settings(environ={"EVERYTHING_COLOUR": "blue"})


def test_invalid_value_is_named() -> None:
    with pytest.raises(SettingsError, match=r"invalid setting 'server.port'"):
        load_settings(environ={"EVERYTHING_SERVER__PORT": "ninety"})


def test_test_variables_are_not_settings() -> None:
    load_settings(environ={"EVERYTHING_TEST_DATABASE_URL": "postgresql://x/y", "EVERYTHING_TEST_REDIS_URL": "redis://"})


def test_cli_stops_with_one_line_naming_the_key_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "everything.toml"
    config.write_text("[auth]\nsession_days = -3\n")
    result = everything("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "auth.session_days" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_an_unknown_key_stops_before_starting(tmp_path: Path) -> None:
    result = everything("serve", "--data-dir", str(tmp_path / "data"), env={"EVERYTHING_SERVR__PORT": "1"})
    assert result.returncode == 2
    assert "unknown setting 'servr'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_plugin_section_is_named(tmp_path: Path) -> None:
    config = tmp_path / "everything.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[plugins.nonesuch]\nx = 1\n')
    result = everything("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert "plugins.nonesuch" in result.stderr


def test_config_check_prints_effective_settings_with_secrets_redacted(tmp_path: Path) -> None:
    config = tmp_path / "everything.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nsecret_key = "hunter2-hunter2"\n'
        '[database]\nurl = "postgresql://admin:s3cret@db.internal/everything"\n'
    )
    result = everything("config", "check", "--config", str(config), env={"EVERYTHING_SERVER__PORT": "8123"})
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["server"]["port"] == 8123
    assert printed["secret_key"] == "***"
    assert printed["database"]["url"] == "postgresql://admin:***@db.internal/everything"
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings(environ={"EVERYTHING_DATA_DIR": str(tmp_path / "data")})
    ensure_data_dir(first)
    second = load_settings(environ={"EVERYTHING_DATA_DIR": str(tmp_path / "data")})
    ensure_data_dir(second)
    assert first.secret() == second.secret()
    assert len(first.secret()) >= 32
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("url", "message"), [("foo://bar", "must be a sqlite:// or postgresql:// URL"), ("not a url", "not a database URL")])
def test_unusable_database_url_is_named(url: str, message: str) -> None:
    result = everything("config", "check", env={"DATABASE_URL": url})
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: settings: invalid setting 'database.url': {message}"


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = everything("db", "upgrade", "--data-dir", str(tmp_path / "data"), env={"DATABASE_URL": "postgres://u:p@127.0.0.1:1/x"})
    assert result.returncode == 1
    assert result.stderr.startswith("error: database:") and result.stderr.strip().count("\n") == 0


def test_unreadable_settings_file_is_one_line(tmp_path: Path) -> None:
    result = everything("config", "check", "--config", str(tmp_path))
    assert result.returncode == 2
    assert "cannot read the settings file" in result.stderr and "Traceback" not in result.stderr


def test_out_of_range_port_is_refused(tmp_path: Path) -> None:
    result = everything("serve", "--port", "99999", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "'99999' is not a port number" in result.stderr


def test_numeric_looking_environment_values_stay_text_where_text_is_wanted() -> None:
    settings = load_settings(environ={"EVERYTHING_SECRET_KEY": "12345678901234567890", "EVERYTHING_SERVER__HTTPS": "true"})
    assert settings.secret() == "12345678901234567890"
    assert settings.server.https is True


def test_config_check_and_plugins_create_nothing(tmp_path: Path) -> None:
    assert everything("config", "check", cwd=tmp_path).returncode == 0
    assert everything("plugins", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "everything-data").exists()


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_a_redis_bus_without_a_secret_key_is_refused_in_one_line(tmp_path: Path, command: list[str]) -> None:
    result = everything(*command, "--data-dir", str(tmp_path / "data"), env={"EVERYTHING_BUS__URL": "redis://127.0.0.1:6379/0"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: secret_key: must be set when bus.url is set")
    assert "EVERYTHING_SECRET_KEY" in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_redis_bus_with_a_secret_key_passes_config_check(tmp_path: Path) -> None:
    env = {"EVERYTHING_BUS__URL": "redis://127.0.0.1:6379/0", "EVERYTHING_SECRET_KEY": "one-key-for-every-process-of-it"}
    result = everything("config", "check", "--data-dir", str(tmp_path / "data"), env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["secret_key"] == "***"


def test_the_database_pool_size_is_a_setting_with_defaults_that_fit_many_processes() -> None:
    defaults = load_settings(environ={})
    assert (defaults.database.pool_size, defaults.database.max_overflow) == (5, 5)
    sized = load_settings(environ={"EVERYTHING_DATABASE__POOL_SIZE": "3", "EVERYTHING_DATABASE__MAX_OVERFLOW": "0"})
    assert (sized.database.pool_size, sized.database.max_overflow) == (3, 0)
    with pytest.raises(SettingsError, match="database.pool_size"):
        load_settings(environ={"EVERYTHING_DATABASE__POOL_SIZE": "0"})


def test_the_postgresql_pool_takes_its_size_from_the_settings(tmp_path: Path, database_url: str | None) -> None:
    if database_url is None:
        pytest.skip("the pool size is PostgreSQL's; SQLite's follows the worker threads")
    from kernel import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(tmp_path / "data", None, database={"url": database_url, "pool_size": 3, "max_overflow": 2}))
    pool = app.state.kernel.db.engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 2)
    app.state.kernel.db.dispose()

"""Migrations: the kernel's branch builds the schema the models describe; plugin branches add theirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import kernel.storage.models  # noqa: F401 - registers the kernel's tables on SQLModel.metadata
from kernel import create_app
from kernel.app import Kernel
from kernel.plugin.manager import BUNDLED_PLUGINS
from kernel.storage import migrate
from plugins.calls import models as calls_models
from plugins.feed import models as feed_models
from plugins.payments import models as payments_models
from plugins.spaces import models as spaces_models
from plugins.trading import models as trading_models
from tests.conftest import make_settings, running, sign_up


def test_migrations_build_exactly_the_models_schema(tmp_path: Path, database_url: str | None) -> None:
    """The kernel's and the bundled plugins' migrations make the tables their models describe."""
    kernel = Kernel(make_settings(tmp_path / "data", database_url))
    kernel.upgrade_database()
    kernel_tables = sqlalchemy.MetaData()
    plugin_tables = [
        *feed_models.metadata.tables.values(),
        *calls_models.metadata.tables.values(),
        *payments_models.metadata.tables.values(),
        *spaces_models.metadata.tables.values(),
        *trading_models.metadata.tables.values(),
    ]
    for table in [*SQLModel.metadata.tables.values(), *plugin_tables]:
        if table.name.startswith(("kernel_", "feed_", "calls_", "payments_", "spaces_", "trading_")):
            table.to_metadata(kernel_tables)
    with kernel.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [diff for diff in compare_metadata(context, kernel_tables) if diff[0] != "remove_table" or diff[1].name.startswith("kernel_")]
    kernel.db.dispose()
    assert differences == []


def test_upgrade_twice_changes_nothing(tmp_path: Path, database_url: str | None) -> None:
    kernel = Kernel(make_settings(tmp_path / "data", database_url))
    kernel.upgrade_database()
    kernel.upgrade_database()
    with kernel.db.engine.connect() as connection:
        versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    kernel.db.dispose()
    assert sorted(versions) == ["calls_0002", "feed_0004", "kernel_0004", "payments_0003", "spaces_0002", "trading_0002"]


def test_a_plugin_branch_adds_its_tables(tmp_path: Path, database_url: str | None) -> None:
    settings = make_settings(tmp_path / "data", database_url, plugins={"enabled": [*BUNDLED_PLUGINS, "with_table"]})
    kernel = Kernel(settings, plugins={"with_table": "tests.plugin_fixtures.with_table"})
    kernel.upgrade_database()
    kernel.upgrade_database()
    tables = set(sqlalchemy.inspect(kernel.db.engine).get_table_names())
    kernel.db.dispose()
    assert {"kernel_users", "with_table_notes"} <= tables


def test_db_upgrade_command_migrates_the_configured_database(tmp_path: Path, database_url: str | None) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVERYTHING_")}
    env["EVERYTHING_DATA_DIR"] = str(tmp_path / "data")
    if database_url:
        env["EVERYTHING_DATABASE__URL"] = database_url
    result = subprocess.run([sys.executable, "-m", "kernel.cli", "db", "upgrade"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    engine = sqlalchemy.create_engine(Kernel(make_settings(tmp_path / "data", database_url)).settings.database_url)
    assert "kernel_users" in sqlalchemy.inspect(engine).get_table_names()
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    kernel = Kernel(make_settings(tmp_path / "data"))
    with kernel.db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    kernel.db.dispose()


def test_switching_off_a_plugin_that_owns_tables_still_migrates(tmp_path: Path, database_url: str | None) -> None:
    with_it = make_settings(tmp_path / "data", database_url, plugins={"enabled": [*BUNDLED_PLUGINS, "with_table"]})
    Kernel(with_it, plugins={"with_table": "tests.plugin_fixtures.with_table"}).upgrade_database()
    without = Kernel(make_settings(tmp_path / "data", database_url), plugins={"with_table": "tests.plugin_fixtures.with_table"})
    assert without.upgrade_database() == []
    assert without.plugins.records["with_table"].state == "disabled"
    without.db.dispose()


def test_a_failing_plugin_migration_disables_only_that_plugin(tmp_path: Path, database_url: str | None) -> None:
    settings = make_settings(tmp_path / "data", database_url, plugins={"enabled": [*BUNDLED_PLUGINS, "bad_migration"]})
    kernel = Kernel(settings, plugins={"bad_migration": "tests.plugin_fixtures.bad_migration"})
    failures = kernel.upgrade_database()
    record = kernel.plugins.records["bad_migration"]
    assert record.state == "failed" and record.reason.startswith("migration failed:")
    assert failures == [f"plugin bad_migration: {record.reason}"]
    assert "kernel_users" in sqlalchemy.inspect(kernel.db.engine).get_table_names()
    kernel.db.dispose()


def test_the_cashtag_index_is_filled_from_the_posts_written_before_it(tmp_path: Path, database_url: str | None) -> None:
    settings = make_settings(tmp_path / "data", database_url)
    app = create_app(settings)
    with running(app):
        alice = sign_up(app, "alice")
        old = alice.post("/api/feed/posts", json={"text": "old news on $TSLA and $tsla"}).json()["id"]
        alice.post("/api/feed/posts", json={"text": "no cashtag, only $5"})
    kernel = Kernel(settings)
    config = migrate.alembic_config(kernel.db, kernel.migration_folders())
    with kernel.db.engine.connect() as connection:
        connection.info["write"] = True
        config.attributes["connection"] = connection
        command.downgrade(config, "feed_0003")  # as a deployment was before the index
        connection.commit()
    kernel.upgrade_database()
    kernel.db.dispose()
    app = create_app(settings)
    with running(app):
        reader = sign_up(app, "reader")
        assert [post["id"] for post in reader.get("/api/feed/cashtags/TSLA").json()["results"]] == [old]

"""Schema migrations: Alembic, with one branch for the kernel and one per plugin that owns tables.

Each branch is labelled with its owner's name (``kernel``, ``polls``); its
revisions live in the owner's ``migrations`` folder. Upgrading runs every
branch to its head, so enabling a plugin later simply adds its branch.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from kernel.storage.database import Database

KERNEL_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database: Database, plugin_folders: list[Path]) -> Config:
    """An Alembic configuration over the kernel's and the given plugins' revisions."""
    config = Config()
    config.set_main_option("script_location", str(KERNEL_MIGRATIONS))
    locations = [KERNEL_MIGRATIONS / "versions", *plugin_folders]
    config.set_main_option("version_locations", " ".join(str(path) for path in locations))
    config.set_main_option("path_separator", "space")
    config.attributes["database"] = database
    return config


def upgrade(database: Database, plugin_folders: list[Path], branches: list[str] | None = None) -> None:
    """Bring branches to their heads (all of them when ``branches`` is None).

    ``plugin_folders`` should name every plugin folder the deployment knows,
    running or not: Alembic must find each revision the database already
    records, even one of a plugin that is switched off.
    """
    config = alembic_config(database, plugin_folders)
    with database.engine.connect() as connection:
        connection.info["write"] = True
        config.attributes["connection"] = connection
        for target in [f"{branch}@head" for branch in branches] if branches is not None else ["heads"]:
            command.upgrade(config, target)
            connection.commit()


def heads(database: Database, plugin_folders: list[Path]) -> set[str]:
    """The head revision of every branch known to the given folders."""
    return set(ScriptDirectory.from_config(alembic_config(database, plugin_folders)).get_heads())

"""A plugin whose migration fails."""

from pathlib import Path

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="bad_migration",
        title="Bad migration",
        version="1.0",
        description="Its migration raises.",
        migrations=Path(__file__).parent / "bad_migration_migrations",
    )

"""A plugin that owns a table, created by its own migration branch."""

from pathlib import Path

from kernel import Manifest, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(
        name="with_table",
        title="With table",
        version="1.0",
        description="Keeps notes.",
        migrations=Path(__file__).parent / "with_table_migrations",
    )

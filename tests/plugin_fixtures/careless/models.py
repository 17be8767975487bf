"""A table with no migration behind it."""

from sqlalchemy import Column, Integer, MetaData, Table

metadata = MetaData()

notes = Table("careless_notes", metadata, Column("id", Integer, primary_key=True))

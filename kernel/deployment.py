"""The deployment's identity: one id stored in the database, the same for every process and host that reaches it.

Hosts may reach one database by different URLs (a private address, a DNS
name, a proxy), so nothing derived from the URL names a deployment; this
id does. The Redis bus names its channels after it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from kernel.storage.database import Database
from kernel.storage.models import DeploymentRow, core_table, utcnow

_deployment = core_table(DeploymentRow)


def deployment_id(db: Database) -> str:
    """The id of the deployment ``db`` belongs to, made (once, by whichever process comes first) if the row is missing.

    Blocking; the migration ``kernel_0004`` creates the table and its row.
    """

    def read(connection: Connection) -> str | None:
        return connection.execute(select(_deployment.c.deployment_id).where(_deployment.c.id == 1)).scalar()

    found = db.read(read)
    if found is not None:
        return found
    try:
        db.write(
            lambda connection: connection.execute(
                _deployment.insert().values(id=1, deployment_id=uuid.uuid4().hex, created_at=utcnow())
            )
        )
    except IntegrityError:
        pass  # another process made it first: read theirs
    made = db.read(read)
    assert made is not None
    return made

"""Watchlists: the symbols each user follows, in the order they were added."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from kernel import ApiError, Kernel, User, utcnow
from plugins.trading.models import watchlist

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as Db


class Watchlists:
    """Every user's watchlist, in the database."""

    def __init__(self, kernel: Kernel, limit: int) -> None:
        self.kernel = kernel
        self.limit = limit

    def symbols(self, user: User) -> list[str]:
        """The user's symbols, oldest first."""
        query = select(watchlist.c.symbol).where(watchlist.c.user_id == user.id).order_by(watchlist.c.id)
        return self.kernel.db.read(lambda conn: list(conn.execute(query).scalars()))

    def add(self, user: User, symbol: str) -> bool:
        """Watch ``symbol``; False when it was already watched. 409 ``watchlist_full`` past the limit."""

        def work(conn: Db) -> bool:
            mine = watchlist.c.user_id == user.id
            if conn.execute(select(watchlist.c.id).where(mine, watchlist.c.symbol == symbol)).first() is not None:
                return False
            if conn.execute(select(func.count()).select_from(watchlist).where(mine)).scalar_one() >= self.limit:
                raise ApiError(409, "watchlist_full", f"A watchlist holds at most {self.limit} symbols.")
            conn.execute(watchlist.insert().values(user_id=user.id, symbol=symbol, added_at=utcnow()))
            return True

        try:
            return self.kernel.db.write(work)
        except IntegrityError:
            return False  # the same symbol added at the same moment from another tab

    def remove(self, user: User, symbol: str) -> bool:
        """Stop watching ``symbol``; False when it was not watched."""

        def work(conn: Db) -> bool:
            done = conn.execute(delete(watchlist).where(watchlist.c.user_id == user.id, watchlist.c.symbol == symbol))
            return done.rowcount > 0

        return self.kernel.db.write(work)

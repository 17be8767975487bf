"""The ``trading.*`` realtime messages, checked at the edge and handed to the ticker (docs/trading.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kernel import ApiError, Connection
from plugins.trading.ticker import Ticker

Symbol = Annotated[str, StringConstraints(min_length=1, max_length=16)]


class Subscribe(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=1000)]


class Unsubscribe(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    # Absent: every symbol.
    symbols: Annotated[list[Symbol], Field(max_length=1000)] | None = None


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], message: dict[str, Any]) -> M:
    try:
        return model.model_validate(message)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "message"
        raise ApiError(422, "validation_error", f"{field}: {first['msg']}", field=field) from None


Handler = Callable[[Connection, dict[str, Any]], Awaitable[dict[str, Any]]]


def handlers(ticker: Ticker, limit: int) -> dict[str, Handler]:
    """The plugin's realtime handlers, bound to one ticker."""

    async def subscribe(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        return await ticker.subscribe(connection, _parse(Subscribe, message).symbols, limit)

    async def unsubscribe(connection: Connection, message: dict[str, Any]) -> dict[str, Any]:
        return ticker.unsubscribe(connection, _parse(Unsubscribe, message).symbols)

    return {"trading.subscribe": subscribe, "trading.unsubscribe": unsubscribe}

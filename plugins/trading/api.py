"""The trading JSON API under ``/api/trading`` (docs/trading.md lists it)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, get_kernel, query_limit, read_json, require_user
from plugins.trading.paper import OrderRequest
from plugins.trading.service import TRADING, Trading


class OrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    side: Literal["buy", "sell"]
    # A number or a decimal string; fractions down to a millionth.
    qty: Decimal = Field(allow_inf_nan=False)
    type: Literal["market", "limit", "stop"]
    limit_price: Decimal | None = Field(default=None, allow_inf_nan=False)
    stop_price: Decimal | None = Field(default=None, allow_inf_nan=False)
    time_in_force: Literal["day", "gtc"] = "day"
    client_order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


def trading_of(request: Request) -> Trading:
    return TRADING.of(get_kernel(request))


async def symbols(request: Request) -> Response:
    require_user(request)
    query = request.query_params.get("q", "")
    if len(query) > 64:
        raise ApiError(422, "validation_error", "q: at most 64 characters.", field="q")
    return JSONResponse({"results": trading_of(request).quotes.search(query, query_limit(request))})


async def quote(request: Request) -> Response:
    user = require_user(request)
    trading = trading_of(request)

    def work() -> dict[str, Any]:
        return trading.quotes.quote(request.path_params["symbol"], trading.quotes.tier(user))

    return JSONResponse(await anyio.to_thread.run_sync(work))


async def bars(request: Request) -> Response:
    user = require_user(request)
    trading = trading_of(request)
    range_ = request.query_params.get("range", "1D")

    def work() -> dict[str, Any]:
        return trading.quotes.bars(request.path_params["symbol"], range_, trading.quotes.tier(user))

    return JSONResponse(await anyio.to_thread.run_sync(work))


async def watchlist(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse({"results": await anyio.to_thread.run_sync(trading_of(request).watchlist_quotes, user)})


async def watch(request: Request) -> Response:
    user = require_user(request)
    added, item = await anyio.to_thread.run_sync(trading_of(request).watch, user, request.path_params["symbol"])
    return JSONResponse(item, status_code=201 if added else 200)


async def unwatch(request: Request) -> Response:
    user = require_user(request)
    await anyio.to_thread.run_sync(trading_of(request).unwatch, user, request.path_params["symbol"])
    return Response(status_code=204)


async def account(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await anyio.to_thread.run_sync(trading_of(request).broker.account, user))


async def place_order(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, OrderBody)
    order = OrderRequest(**body.model_dump())
    created, placed = await anyio.to_thread.run_sync(trading_of(request).broker.place, user, order)
    return JSONResponse(placed, status_code=201 if created else 200)


async def list_orders(request: Request) -> Response:
    user = require_user(request)
    status = request.query_params.get("status", "all")
    if status not in ("open", "closed", "all"):
        raise ApiError(422, "validation_error", "status: open, closed or all.", field="status")
    found = await anyio.to_thread.run_sync(trading_of(request).broker.orders, user, status, query_limit(request))
    return JSONResponse({"results": found})


def order_id(request: Request) -> int:
    raw = request.path_params["order_id"]
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not re.fullmatch(r"[0-9]{1,15}", raw):
        raise ApiError(404, "unknown_order", "You have no such order.")
    return int(raw)


async def one_order(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await anyio.to_thread.run_sync(trading_of(request).broker.order, user, order_id(request)))


async def cancel_order(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await anyio.to_thread.run_sync(trading_of(request).broker.cancel, user, order_id(request)))


async def list_positions(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse({"results": await anyio.to_thread.run_sync(trading_of(request).broker.positions, user)})


routes = [
    Route("/api/trading/account", account, methods=["GET"]),
    Route("/api/trading/orders", place_order, methods=["POST"]),
    Route("/api/trading/orders", list_orders, methods=["GET"]),
    Route("/api/trading/orders/{order_id}", one_order, methods=["GET"]),
    Route("/api/trading/orders/{order_id}", cancel_order, methods=["DELETE"]),
    Route("/api/trading/positions", list_positions, methods=["GET"]),
    Route("/api/trading/symbols", symbols, methods=["GET"]),
    Route("/api/trading/quotes/{symbol}", quote, methods=["GET"]),
    Route("/api/trading/bars/{symbol}", bars, methods=["GET"]),
    Route("/api/trading/watchlist", watchlist, methods=["GET"]),
    Route("/api/trading/watchlist/{symbol}", watch, methods=["PUT"]),
    Route("/api/trading/watchlist/{symbol}", unwatch, methods=["DELETE"]),
]

"""The payments JSON API under ``/api/payments/``: the wallet, its transactions, transfers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import JSONResponse, get_kernel, query_limit, read_json, require_user
from plugins.payments.service import Payments


class TransferBody(BaseModel):
    # Strict: "500" is not 500, and 5.0 is not an amount.
    model_config = ConfigDict(extra="forbid", strict=True)

    to: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    amount: int
    note: Annotated[str, StringConstraints(max_length=280)] = ""
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(None)


def payments_of(request: Request) -> Payments:
    return get_kernel(request).plugin_state["payments"]


async def wallet(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await payments_of(request).wallet(user))


async def transactions(request: Request) -> Response:
    user = require_user(request)
    page = await payments_of(request).history(user, request.query_params.get("cursor"), query_limit(request))
    return JSONResponse({"results": page.results, "next_cursor": page.next_cursor})


async def transfer(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, TransferBody)
    done, replayed = await payments_of(request).transfer(user, body.to, body.amount, body.note, body.idempotency_key)
    return JSONResponse(done, status_code=200 if replayed else 201)


routes = [
    Route("/api/payments/wallet", wallet, methods=["GET"]),
    Route("/api/payments/transactions", transactions, methods=["GET"]),
    Route("/api/payments/transfers", transfer, methods=["POST"]),
]

"""The payments JSON API under ``/api/payments/``: the wallet, its transactions, transfers, requests, savings."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel import ApiError, JSONResponse, get_kernel, query_limit, read_json, require_user
from plugins.payments.payment_requests import DIRECTIONS, STATUSES
from plugins.payments.service import PAYMENTS, Payments


class TransferBody(BaseModel):
    # Strict: "500" is not 500, and 5.0 is not an amount.
    model_config = ConfigDict(extra="forbid", strict=True)

    to: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    amount: int
    note: Annotated[str, StringConstraints(max_length=280)] = ""
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


def payments_of(request: Request) -> Payments:
    return PAYMENTS.of(get_kernel(request))


async def wallet(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await payments_of(request).wallet(user))


async def transactions(request: Request) -> Response:
    user = require_user(request)
    page = await payments_of(request).history(user, request.query_params.get("cursor"), query_limit(request))
    return JSONResponse(page.as_json())


async def transfer(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, TransferBody)
    done, replayed = await payments_of(request).transfer(user, body.to, body.amount, body.note, body.idempotency_key)
    return JSONResponse(done, status_code=200 if replayed else 201)


# Payment requests ---------------------------------------------------------------------------


class RequestBody(BaseModel):
    # Strict like a transfer; "from" is a Python keyword, hence the alias.
    model_config = ConfigDict(extra="forbid", strict=True)

    payer: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(alias="from")
    amount: int
    note: Annotated[str, StringConstraints(max_length=280)] = ""


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    """An optional query parameter that must be one of ``allowed``; 422 naming it otherwise."""
    value = request.query_params.get(name) or None
    if value is not None and value not in allowed:
        raise ApiError(422, "validation_error", f"{name}: one of {', '.join(allowed)}", field=name)
    return value


async def create_request(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, RequestBody)
    return JSONResponse(await payments_of(request).requests.create(user, body.payer, body.amount, body.note), status_code=201)


async def list_requests(request: Request) -> Response:
    user = require_user(request)
    direction, status = _choice(request, "direction", DIRECTIONS), _choice(request, "status", STATUSES)
    page = await payments_of(request).requests.page(user, direction, status, request.query_params.get("cursor"), query_limit(request))
    return JSONResponse(page.as_json())


async def accept_request(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await payments_of(request).requests.accept(user, request.path_params["id"]))


async def decline_request(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await payments_of(request).requests.decline(user, request.path_params["id"]))


async def cancel_request(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await payments_of(request).requests.cancel(user, request.path_params["id"]))


# Savings ------------------------------------------------------------------------------------


class SavingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: int
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


async def savings(request: Request) -> Response:
    user = require_user(request)
    return JSONResponse(await payments_of(request).savings.overview(user))


async def savings_deposit(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, SavingsBody)
    done, replayed = await payments_of(request).savings.deposit(user, body.amount, body.idempotency_key)
    return JSONResponse(done, status_code=200 if replayed else 201)


async def savings_withdraw(request: Request) -> Response:
    user = require_user(request)
    body = await read_json(request, SavingsBody)
    done, replayed = await payments_of(request).savings.withdraw(user, body.amount, body.idempotency_key)
    return JSONResponse(done, status_code=200 if replayed else 201)


routes = [
    Route("/api/payments/wallet", wallet, methods=["GET"]),
    Route("/api/payments/transactions", transactions, methods=["GET"]),
    Route("/api/payments/transfers", transfer, methods=["POST"]),
    Route("/api/payments/requests", create_request, methods=["POST"]),
    Route("/api/payments/requests", list_requests, methods=["GET"]),
    Route("/api/payments/requests/{id:int}/accept", accept_request, methods=["POST"]),
    Route("/api/payments/requests/{id:int}/decline", decline_request, methods=["POST"]),
    Route("/api/payments/requests/{id:int}/cancel", cancel_request, methods=["POST"]),
    Route("/api/payments/savings", savings, methods=["GET"]),
    Route("/api/payments/savings/deposit", savings_deposit, methods=["POST"]),
    Route("/api/payments/savings/withdraw", savings_withdraw, methods=["POST"]),
]

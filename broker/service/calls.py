"""What every handler shares: error mapping at the call boundary, and request-level checks."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sized
from typing import Any, TypeVar

import grpc

from broker.errors import describe, is_expected, mapping_for
from logstore.errors import InvalidRequestError

log = logging.getLogger("broker.service")

MAX_PARTITIONS_PER_REQUEST = 10_000
"""Bounds the per-partition fields of an answer, so it always fits in the broker's send limit."""

Request = TypeVar("Request")
Response = TypeVar("Response")


async def abort(context: grpc.aio.ServicerContext, error: Exception, call: str) -> None:
    """End the call with the status the error table gives `error` (raises grpc's AbortError)."""
    if is_expected(error):
        log.debug("%s refused: %s", call, error)
    else:
        log.error("%s failed unexpectedly", call, exc_info=error)
    await context.abort(mapping_for(error).status, describe(error))


def unary(
    handler: Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]],
) -> Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]:
    """Map any exception of a unary handler to its gRPC status."""

    @functools.wraps(handler)
    async def call(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort(context, error, handler.__name__)
            raise AssertionError("unreachable: abort raises") from error

    return call


def streaming(
    handler: Callable[[Any, Request, grpc.aio.ServicerContext], AsyncIterator[Response]],
) -> Callable[[Any, Request, grpc.aio.ServicerContext], AsyncIterator[Response]]:
    """Map any exception of a server-streaming handler to its gRPC status."""

    @functools.wraps(handler)
    async def call(self: Any, request: Request, context: grpc.aio.ServicerContext) -> AsyncIterator[Response]:
        try:
            async for message in handler(self, request, context):
                yield message
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort(context, error, handler.__name__)

    return call


def require(condition: bool, message: str) -> None:
    """Fail the whole request with INVALID_ARGUMENT unless `condition` holds."""
    if not condition:
        raise InvalidRequestError(message)


def check_partition_count(partitions: Sized, what: str) -> None:
    require(len(partitions) > 0, f"the {what} request names no partitions; list at least one")
    require(
        len(partitions) <= MAX_PARTITIONS_PER_REQUEST,
        f"the {what} request names {len(partitions)} partitions; the limit is {MAX_PARTITIONS_PER_REQUEST} "
        "per request, so split it",
    )


def check_not_negative(value: int, name: str) -> None:
    require(value >= 0, f"{name} must not be negative, not {value}")

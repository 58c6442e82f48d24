"""What every handler shares: request decoding, error mapping and logging at the call boundary, and
request-level checks.

Requests are decoded here, not inside grpc: grpc answers bytes that do not parse with UNKNOWN and logs a
traceback per call, so any client could flood the log. Here a malformed request is INVALID_ARGUMENT with
the parser's reason, and the log gets at most one line per call and kind of error every
`LOG_INTERVAL_S` (with a count of the lines left out), also for bugs (whose line keeps its traceback).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sized
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from logstore.broker.errors import describe, error_code_trailer, is_expected, mapping_for
from logstore.broker.observability import DISABLED, BrokerMetrics

from logstore.errors import InvalidRequestError

log = logging.getLogger("logstore.broker.service")

MAX_PARTITIONS_PER_REQUEST = 10_000
"""Bounds the per-partition fields of an answer, so it always fits in the broker's send limit."""
LOG_INTERVAL_S = 10.0
"""At most one log line per call and kind of error in this many seconds."""

Request = TypeVar("Request")
Response = TypeVar("Response")


class MalformedRequestError(InvalidRequestError):
    """The request's bytes are not a valid message of the call's request type."""


class MalformedRequest:
    """Handed to a handler instead of a request whose bytes did not decode; the handler's wrapper
    (`unary`, `streaming`) refuses it before the handler runs (a bidirectional handler, when it reads it)."""

    __slots__ = ("reason", "type_name")

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name = type_name
        self.reason = reason

    def error(self) -> MalformedRequestError:
        return MalformedRequestError(f"the request is not a valid {self.type_name} message: {self.reason}")


def tolerant_deserializer(message_class: type[Message]) -> Callable[[bytes], Message | MalformedRequest]:
    """`message_class.FromString`, answering a MalformedRequest where it would raise."""
    parse = message_class.FromString
    type_name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | MalformedRequest:
        try:
            return parse(data)
        except DecodeError as exc:
            reason = str(exc).removeprefix(f"Error parsing message with type '{type_name}': ")
            return MalformedRequest(type_name, reason or "it does not parse")

    return deserialize


def passing_bytes(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """A response serializer that also takes an answer already serialized by its handler: a large answer
    (fetch) is then held by gRPC as one copy, not as the message and its serialized copy beside it."""

    def serializer(message: Any) -> bytes:
        return message if isinstance(message, bytes) else serialize(message)

    return serializer


def counted(
    method: Callable[..., Any], name: str, server_streaming: bool, metrics: BrokerMetrics
) -> Callable[..., Any]:
    """`method` with each call counted in `metrics` (per API name), and a unary call's time observed."""
    if server_streaming:

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            metrics.request_started("grpc", name)
            async for message in method(request, context):
                yield message

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        metrics.request_started("grpc", name)
        started = time.perf_counter()
        try:
            return await method(request, context)
        finally:
            metrics.request_done("grpc", name, time.perf_counter() - started)

    return call


class Wrapper(Protocol):
    """Puts a check in front of a handler (`guard.Guard`): (service, method, handler, streaming) -> handler."""

    def wrap(self, service: str, method: str, behavior: Any, streaming: bool) -> Any: ...


def add_servicer(
    server: grpc.aio.Server,
    servicer: object,
    service: ServiceDescriptor,
    metrics: BrokerMetrics = DISABLED,
    guard: Wrapper | None = None,
) -> None:
    """Register `servicer`'s methods for `service` as the generated `add_*_to_server` would, but with
    requests decoded by `tolerant_deserializer`, each handler behind `guard` (when given), and each call
    counted in `metrics` when it is enabled (refused ones too: the count wraps the guard)."""
    handlers = {}
    for method in service.methods:
        if method.client_streaming and not method.server_streaming:
            raise ValueError(f"{method.full_name}: client-streaming calls are not supported here")
        make = (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming
            else grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        behaviour = getattr(servicer, method.name)
        if guard is not None:
            behaviour = guard.wrap(service.full_name, method.name, behaviour, method.server_streaming)
        if metrics.enabled:
            behaviour = counted(behaviour, method.name, method.server_streaming, metrics)
        handlers[method.name] = make(
            behaviour,
            request_deserializer=tolerant_deserializer(message_factory.GetMessageClass(method.input_type)),
            response_serializer=passing_bytes(
                message_factory.GetMessageClass(method.output_type).SerializeToString
            ),
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


class RateLimitedLog:
    """At most one line per key every `interval_s`; the next line says how many were left out.

    Keys are (call, error class) pairs, so the table stays as small as the API.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._state: dict[Hashable, list[float | int]] = {}
        """key -> [time the next line may be written, lines left out since the last one]"""

    def log(
        self, level: int, key: Hashable, message: Callable[[], str], *, exc_info: BaseException | None = None
    ) -> None:
        """Log `message()` unless a line with `key` went out less than `interval_s` ago (the message is
        only built when it is written: a flood costs a dictionary look-up per line left out)."""
        if not self._logger.isEnabledFor(level):
            return
        now = self._clock()
        state = self._state.get(key)
        if state is not None and now < state[0]:
            state[1] += 1
            return
        left_out = int(state[1]) if state is not None else 0
        text = message()
        if left_out:
            text += f" ({left_out} more like this since the previous line were not logged)"
        self._state[key] = [now + self._interval_s, 0]
        self._logger.log(level, "%s", text, exc_info=exc_info)


limited_log = RateLimitedLog(log)


async def abort(context: grpc.aio.ServicerContext, error: Exception, call: str) -> None:
    """End the call with the status the error table gives `error` (raises grpc's AbortError)."""
    key = (call, type(error))
    if isinstance(error, MalformedRequestError):
        limited_log.log(
            logging.WARNING, key, lambda: f"{call} refused a malformed request from {context.peer()}: {error}"
        )
    elif is_expected(error):
        limited_log.log(logging.DEBUG, key, lambda: f"{call} refused: {error}")
    else:
        limited_log.log(logging.ERROR, key, lambda: f"{call} failed unexpectedly: {error!r}", exc_info=error)
    mapping = mapping_for(error)
    await context.abort(mapping.status, describe(error), trailing_metadata=error_code_trailer(mapping.code))


def unary(
    handler: Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]],
) -> Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]:
    """Map any exception of a unary handler to its gRPC status."""

    @functools.wraps(handler)
    async def call(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            if isinstance(request, MalformedRequest):
                raise request.error()
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
    """Map any exception of a streaming handler to its gRPC status. A server-streaming handler's malformed
    request is refused here; a bidirectional handler's `request` is the iterator of its messages, which
    yields a `MalformedRequest` where one did not parse, for the handler to refuse when it reads it."""

    @functools.wraps(handler)
    async def call(self: Any, request: Request, context: grpc.aio.ServicerContext) -> AsyncIterator[Response]:
        try:
            if isinstance(request, MalformedRequest):
                raise request.error()
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

"""One error vocabulary, end to end: every wire `ErrorCode` has exactly one client class and a broker
mapping, and a whole call that fails names its code in the `logstore-error-code` trailer, which is what
the client classifies by (never the words of the message)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from logstore.broker import errors as broker_errors
from logstore.broker.embedded import EmbeddedBroker
from logstore.client.admin.api import Admin
from logstore.client.shared import errors as client_errors
from logstore.client.shared.errors import ClientError
from logstore.wire.logstore.v1 import admin_pb2, common_pb2

CODES = set(common_pb2.ErrorCode.values()) - {common_pb2.ERROR_CODE_NONE}


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_wire_code_has_exactly_one_client_class() -> None:
    registry = client_errors.registry()
    missing = sorted(common_pb2.ErrorCode.Name(c) for c in CODES - set(registry))
    assert not missing, f"give these codes a class in client/shared/errors.py (@wire_code): {missing}"
    assert set(registry) == CODES
    assert all(cls.code == code for code, cls in registry.items())
    declaring = {cls for cls in _subclasses(ClientError) if "code" in vars(cls)}
    assert declaring == set(registry.values()), "a class declares a code without being its registered class"
    for code, cls in registry.items():
        assert client_errors.for_code(code) is cls


def test_a_second_class_for_a_code_is_refused() -> None:
    with pytest.raises(TypeError, match="UnknownTopicError already"):

        @client_errors.wire_code(common_pb2.ERROR_CODE_UNKNOWN_TOPIC)
        class AnotherUnknownTopicError(ClientError):
            pass

    assert client_errors.for_code(common_pb2.ERROR_CODE_UNKNOWN_TOPIC) is client_errors.UnknownTopicError


def test_every_wire_code_has_a_broker_mapping() -> None:
    mapped = {mapping.code for mapping in broker_errors.TABLE.values()} | {broker_errors.UNEXPECTED.code}
    missing = sorted(common_pb2.ErrorCode.Name(c) for c in CODES - mapped)
    assert not missing, f"no broker error class maps to {missing}: map one in broker/errors.py"
    assert common_pb2.ERROR_CODE_NONE not in mapped, "ERROR_CODE_NONE means success, never an error"


def test_a_code_unknown_to_the_client_is_an_unknown_broker_error() -> None:
    error = client_errors.error_from_code(999, "", where="t-0")
    assert type(error) is client_errors.UnknownBrokerError and "999" in str(error)


# --- whole-call failures, over a real broker -------------------------------------------------------------


def test_a_whole_call_failure_carries_its_code_in_the_trailer(broker: EmbeddedBroker, stubs) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stubs.admin.CreateTopic(admin_pb2.CreateTopicRequest(name="no/slashes", partitions=1))
    assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    metadata: Any = failed.value.trailing_metadata()  # (key, value) tuples; the stub calls them _Metadatum
    trailer = [tuple(entry) for entry in metadata]
    assert (broker_errors.ERROR_CODE_KEY, str(common_pb2.ERROR_CODE_INVALID_TOPIC)) in trailer
    assert client_errors.ERROR_CODE_KEY == broker_errors.ERROR_CODE_KEY


CASES: dict[str, tuple[Callable[[Admin], object], type[ClientError]]] = {
    # Each of these shares its gRPC status with other codes: only the trailer tells them apart.
    "invalid topic name": (lambda a: a.create_topic("no/slashes", 1), client_errors.InvalidTopicError),
    "unknown config key": (
        lambda a: a.alter_configs({"t": {"no.such.setting": "1"}}),
        client_errors.InvalidConfigError,
    ),
    "shrinking a topic": (lambda a: a.create_partitions({"t": 1}), client_errors.InvalidPartitionsError),
    "existing topic": (lambda a: a.create_topic("t", 2), client_errors.TopicExistsError),
    "unknown topic": (lambda a: a.describe_topics(["nope"]), client_errors.UnknownTopicError),
    "unknown group": (lambda a: a.describe_group("nobody"), client_errors.GroupIdNotFoundError),
    # The broker's message here says "name the topics": the old client searched the text for "topic"
    # and answered UnknownTopicError.
    "reset of an unknown group": (
        lambda a: a.reset_offsets("nobody", to="earliest"),
        client_errors.GroupIdNotFoundError,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_client_raises_the_class_of_the_trailer_code(broker: EmbeddedBroker, case: str) -> None:
    action, expected = CASES[case]
    with Admin(broker.address) as admin:
        admin.create_topic("t", 2)
        with pytest.raises(ClientError) as raised:
            action(admin)
    assert type(raised.value) is expected, f"{case}: {raised.value!r}"
    assert raised.value.code == expected.code


class _FailedCall(grpc.RpcError):
    """A failed call as grpc hands it to the client: status, details and trailing metadata."""

    def __init__(self, status: grpc.StatusCode, details: str, trailer: tuple[tuple[str, str], ...]) -> None:
        self._status, self._details, self._trailer = status, details, trailer

    def code(self) -> grpc.StatusCode:
        return self._status

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]  # as grpc returns it
        return self._trailer


def test_the_class_never_depends_on_the_message_text() -> None:
    misleading = "group 'g': topic 'orders' has no partition 9"
    for code, cls in client_errors.registry().items():
        if code == common_pb2.ERROR_CODE_UNKNOWN:
            continue  # a broker bug: the status (INTERNAL) says more than the code
        status = grpc.StatusCode.FAILED_PRECONDITION
        error = client_errors.error_from_rpc(
            _FailedCall(status, misleading, broker_errors.error_code_trailer(code)), "Call"
        )
        assert type(error) is cls, (common_pb2.ErrorCode.Name(code), error)


def test_without_a_trailer_the_status_decides() -> None:
    unreachable = client_errors.error_from_rpc(_FailedCall(grpc.StatusCode.UNAVAILABLE, "", ()), "Produce")
    assert type(unreachable) is client_errors.BrokerUnavailableError and "is the broker running" in str(
        unreachable
    )
    bug = client_errors.error_from_rpc(
        _FailedCall(
            grpc.StatusCode.INTERNAL,
            "internal error",
            broker_errors.error_code_trailer(common_pb2.ERROR_CODE_UNKNOWN),
        ),
        "Produce",
    )
    assert type(bug) is client_errors.BrokerInternalError and not bug.retriable

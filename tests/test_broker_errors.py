"""The error table: every error class is mapped on purpose, and every wire error code is reachable."""

from __future__ import annotations

import inspect

import grpc
from logstore.broker import errors
from logstore.broker.domain import errors as broker_errors
from logstore.broker.group_machine import errors as group_errors
from logstore.wire.logstore.v1 import common_pb2 as common

from logstore import errors as engine


def _classes(module, base: type) -> list[type]:
    return [
        c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, base) and c is not base
    ]


def test_the_broker_has_one_root_for_expected_errors() -> None:
    roots = {broker_errors.BrokerError, group_errors.GroupCoordinatorError, engine.LogStoreError}
    assert all(issubclass(root, engine.LogStoreError) for root in roots)
    assert issubclass(group_errors.GroupCoordinatorError, broker_errors.BrokerError)


def test_every_engine_and_broker_error_class_has_its_own_entry() -> None:
    wanted = [
        cls
        for module in (engine, broker_errors, group_errors)
        for cls in _classes(module, engine.LogStoreError)
        if cls.__module__ == module.__name__
        and cls not in (broker_errors.BrokerError, group_errors.GroupCoordinatorError)
    ]
    missing = [cls.__name__ for cls in wanted if cls not in errors.TABLE]
    assert not missing, f"map these in broker/errors.py: {missing}"


def test_every_wire_error_code_is_used() -> None:
    used = {mapping.code for mapping in errors.TABLE.values()} | {
        errors.UNEXPECTED.code,
        common.ERROR_CODE_NONE,
    }
    assert used == set(common.ErrorCode.values())


def test_the_most_specific_class_decides() -> None:
    sequence_error = engine.OutOfOrderSequenceError("gap")  # also an InvalidRequestError
    assert errors.partition_error(sequence_error) == (common.ERROR_CODE_OUT_OF_ORDER_SEQUENCE, "gap")
    assert errors.mapping_for(sequence_error).status == grpc.StatusCode.FAILED_PRECONDITION

    class NewKindOfBadInput(engine.InvalidRequestError):
        pass

    assert errors.mapping_for(NewKindOfBadInput("x")).code == common.ERROR_CODE_INVALID_REQUEST


def test_unexpected_errors_are_internal_and_point_to_the_log() -> None:
    assert errors.mapping_for(KeyError("k")) == errors.UNEXPECTED
    assert errors.UNEXPECTED.status == grpc.StatusCode.INTERNAL
    code, message = errors.partition_error(ZeroDivisionError("division by zero"))
    assert code == common.ERROR_CODE_UNKNOWN
    assert "log" in message and "ZeroDivisionError" in message


def test_no_error_is_code_none_with_no_message() -> None:
    assert errors.partition_error(None) == (common.ERROR_CODE_NONE, "")


def test_every_code_read_back_is_a_class_that_maps_to_that_code_again() -> None:
    """What another broker answered (a forwarded share call) is raised here as a class of the same code,
    so this broker answers its own client with the code the coordinator gave."""
    codes = {mapping.code for mapping in errors.TABLE.values()}
    assert set(errors.CLASS_BY_CODE) == codes
    for code in codes:
        error = errors.error_from_code(code, "from the coordinator")
        assert errors.mapping_for(error).code == code
        assert str(error) == "from the coordinator"
    # where several classes share a code, the general one: the others' base, else the engine's
    assert errors.CLASS_BY_CODE[common.ERROR_CODE_STORAGE_ERROR] is engine.StorageError
    assert errors.CLASS_BY_CODE[common.ERROR_CODE_INVALID_TOPIC] is engine.InvalidTopicError
    assert errors.CLASS_BY_CODE[common.ERROR_CODE_NOT_COORDINATOR] is broker_errors.NotCoordinatorError
    unknown = errors.error_from_code(common.ERROR_CODE_UNKNOWN, "a bug over there")
    assert errors.mapping_for(unknown) is errors.UNEXPECTED

"""The Kafka error table: every error class the gRPC table maps has its own Kafka code too."""

from __future__ import annotations

from kio.schema.errors import ErrorCode
from logstore.broker import errors as grpc_errors
from logstore.broker.kafka import errors

from logstore import errors as engine


def test_every_error_class_the_grpc_table_maps_has_a_kafka_code() -> None:
    missing = [cls.__name__ for cls in grpc_errors.TABLE if cls not in errors.TABLE]
    assert not missing, f"map these in broker/kafka/errors.py too: {missing}"


def test_the_most_specific_class_decides_and_bugs_are_unknown_server_error() -> None:
    assert errors.error_code(engine.OutOfOrderSequenceError("x")) is ErrorCode.out_of_order_sequence_number
    assert errors.error_code(engine.PartitionOfflineError("x")) is ErrorCode.kafka_storage_error
    assert errors.error_code(engine.InvalidTopicError("x")) is ErrorCode.invalid_topic_exception
    assert errors.error_code(None) is ErrorCode.none
    assert errors.error_code(KeyError("bug")) is ErrorCode.unknown_server_error
    assert "the broker's log has the details" in (errors.error_message(KeyError("bug")) or "")

from logstore.wire.logstore.v1 import common_pb2 as _common_pb2
from logstore.wire.logstore.v1 import group_pb2 as _group_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AcknowledgeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACKNOWLEDGE_TYPE_UNSPECIFIED: _ClassVar[AcknowledgeType]
    ACKNOWLEDGE_TYPE_ACCEPT: _ClassVar[AcknowledgeType]
    ACKNOWLEDGE_TYPE_RELEASE: _ClassVar[AcknowledgeType]
    ACKNOWLEDGE_TYPE_REJECT: _ClassVar[AcknowledgeType]
    ACKNOWLEDGE_TYPE_RENEW: _ClassVar[AcknowledgeType]

class ShareAcquireMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHARE_ACQUIRE_MODE_BATCH_OPTIMIZED: _ClassVar[ShareAcquireMode]
    SHARE_ACQUIRE_MODE_RECORD_LIMIT: _ClassVar[ShareAcquireMode]
ACKNOWLEDGE_TYPE_UNSPECIFIED: AcknowledgeType
ACKNOWLEDGE_TYPE_ACCEPT: AcknowledgeType
ACKNOWLEDGE_TYPE_RELEASE: AcknowledgeType
ACKNOWLEDGE_TYPE_REJECT: AcknowledgeType
ACKNOWLEDGE_TYPE_RENEW: AcknowledgeType
SHARE_ACQUIRE_MODE_BATCH_OPTIMIZED: ShareAcquireMode
SHARE_ACQUIRE_MODE_RECORD_LIMIT: ShareAcquireMode

class ShareHeartbeatRequest(_message.Message):
    __slots__ = ("group_id", "member_id", "member_epoch", "topic_names", "client_id", "client_host")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    TOPIC_NAMES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    member_id: str
    member_epoch: int
    topic_names: _containers.RepeatedScalarFieldContainer[str]
    client_id: str
    client_host: str
    def __init__(self, group_id: _Optional[str] = ..., member_id: _Optional[str] = ..., member_epoch: _Optional[int] = ..., topic_names: _Optional[_Iterable[str]] = ..., client_id: _Optional[str] = ..., client_host: _Optional[str] = ...) -> None: ...

class ShareHeartbeatResponse(_message.Message):
    __slots__ = ("error_code", "error_message", "member_id", "member_epoch", "heartbeat_interval_ms", "session_timeout_ms", "assignment")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SESSION_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    error_code: _common_pb2.ErrorCode
    error_message: str
    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    session_timeout_ms: int
    assignment: _containers.RepeatedCompositeFieldContainer[_group_pb2.TopicPartitions]
    def __init__(self, error_code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., member_id: _Optional[str] = ..., member_epoch: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ..., session_timeout_ms: _Optional[int] = ..., assignment: _Optional[_Iterable[_Union[_group_pb2.TopicPartitions, _Mapping]]] = ...) -> None: ...

class ShareAcknowledgement(_message.Message):
    __slots__ = ("first_offset", "last_offset", "type", "delay_ms", "not_an_attempt")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    NOT_AN_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    last_offset: int
    type: AcknowledgeType
    delay_ms: int
    not_an_attempt: bool
    def __init__(self, first_offset: _Optional[int] = ..., last_offset: _Optional[int] = ..., type: _Optional[_Union[AcknowledgeType, str]] = ..., delay_ms: _Optional[int] = ..., not_an_attempt: _Optional[bool] = ...) -> None: ...

class PartitionAcknowledgements(_message.Message):
    __slots__ = ("topic", "partition", "ranges")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    ranges: _containers.RepeatedCompositeFieldContainer[ShareAcknowledgement]
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., ranges: _Optional[_Iterable[_Union[ShareAcknowledgement, _Mapping]]] = ...) -> None: ...

class AcknowledgementResult(_message.Message):
    __slots__ = ("first_offset", "last_offset", "error_code", "error_message")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    last_offset: int
    error_code: _common_pb2.ErrorCode
    error_message: str
    def __init__(self, first_offset: _Optional[int] = ..., last_offset: _Optional[int] = ..., error_code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ...) -> None: ...

class PartitionAcknowledgementResults(_message.Message):
    __slots__ = ("topic", "partition", "error_code", "error_message", "results")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    error_code: _common_pb2.ErrorCode
    error_message: str
    results: _containers.RepeatedCompositeFieldContainer[AcknowledgementResult]
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., error_code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., results: _Optional[_Iterable[_Union[AcknowledgementResult, _Mapping]]] = ...) -> None: ...

class ShareFetchRequest(_message.Message):
    __slots__ = ("group_id", "member_id", "acknowledgements", "max_wait_ms", "max_records", "max_bytes", "priority", "acknowledge_only", "acquire_mode", "partitions")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGEMENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_ONLY_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_MODE_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    member_id: str
    acknowledgements: _containers.RepeatedCompositeFieldContainer[PartitionAcknowledgements]
    max_wait_ms: int
    max_records: int
    max_bytes: int
    priority: bool
    acknowledge_only: bool
    acquire_mode: ShareAcquireMode
    partitions: _group_pb2.PartitionSet
    def __init__(self, group_id: _Optional[str] = ..., member_id: _Optional[str] = ..., acknowledgements: _Optional[_Iterable[_Union[PartitionAcknowledgements, _Mapping]]] = ..., max_wait_ms: _Optional[int] = ..., max_records: _Optional[int] = ..., max_bytes: _Optional[int] = ..., priority: _Optional[bool] = ..., acknowledge_only: _Optional[bool] = ..., acquire_mode: _Optional[_Union[ShareAcquireMode, str]] = ..., partitions: _Optional[_Union[_group_pb2.PartitionSet, _Mapping]] = ...) -> None: ...

class AcquiredRange(_message.Message):
    __slots__ = ("first_offset", "last_offset", "delivery_count")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    last_offset: int
    delivery_count: int
    def __init__(self, first_offset: _Optional[int] = ..., last_offset: _Optional[int] = ..., delivery_count: _Optional[int] = ...) -> None: ...

class SharePartitionRecords(_message.Message):
    __slots__ = ("topic", "partition", "error_code", "error_message", "records", "acquired_ranges")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_RANGES_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    error_code: _common_pb2.ErrorCode
    error_message: str
    records: bytes
    acquired_ranges: _containers.RepeatedCompositeFieldContainer[AcquiredRange]
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., error_code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., records: _Optional[bytes] = ..., acquired_ranges: _Optional[_Iterable[_Union[AcquiredRange, _Mapping]]] = ...) -> None: ...

class ShareFetchResponse(_message.Message):
    __slots__ = ("error_code", "error_message", "partitions", "acknowledgement_results", "lock_duration_ms")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGEMENT_RESULTS_FIELD_NUMBER: _ClassVar[int]
    LOCK_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    error_code: _common_pb2.ErrorCode
    error_message: str
    partitions: _containers.RepeatedCompositeFieldContainer[SharePartitionRecords]
    acknowledgement_results: _containers.RepeatedCompositeFieldContainer[PartitionAcknowledgementResults]
    lock_duration_ms: int
    def __init__(self, error_code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., partitions: _Optional[_Iterable[_Union[SharePartitionRecords, _Mapping]]] = ..., acknowledgement_results: _Optional[_Iterable[_Union[PartitionAcknowledgementResults, _Mapping]]] = ..., lock_duration_ms: _Optional[int] = ...) -> None: ...

class ShareAcknowledgeRequest(_message.Message):
    __slots__ = ("group_id", "member_id", "acknowledgements")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGEMENTS_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    member_id: str
    acknowledgements: _containers.RepeatedCompositeFieldContainer[PartitionAcknowledgements]
    def __init__(self, group_id: _Optional[str] = ..., member_id: _Optional[str] = ..., acknowledgements: _Optional[_Iterable[_Union[PartitionAcknowledgements, _Mapping]]] = ...) -> None: ...

class ShareAcknowledgeResponse(_message.Message):
    __slots__ = ("error_code", "error_message", "results")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    error_code: _common_pb2.ErrorCode
    error_message: str
    results: _containers.RepeatedCompositeFieldContainer[PartitionAcknowledgementResults]
    def __init__(self, error_code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., results: _Optional[_Iterable[_Union[PartitionAcknowledgementResults, _Mapping]]] = ...) -> None: ...

class DescribeShareGroupRequest(_message.Message):
    __slots__ = ("group_id",)
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    def __init__(self, group_id: _Optional[str] = ...) -> None: ...

class ShareMemberDescription(_message.Message):
    __slots__ = ("member_id", "member_epoch", "client_id", "client_host", "topic_names", "acquired_records")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    TOPIC_NAMES_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    topic_names: _containers.RepeatedScalarFieldContainer[str]
    acquired_records: int
    def __init__(self, member_id: _Optional[str] = ..., member_epoch: _Optional[int] = ..., client_id: _Optional[str] = ..., client_host: _Optional[str] = ..., topic_names: _Optional[_Iterable[str]] = ..., acquired_records: _Optional[int] = ...) -> None: ...

class SharePartitionDescription(_message.Message):
    __slots__ = ("topic", "partition", "start_offset", "end_offset", "log_end_offset", "in_flight_records", "acquired_records", "archived_records", "lag")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LOG_END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_RECORDS_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    log_end_offset: int
    in_flight_records: int
    acquired_records: int
    archived_records: int
    lag: int
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., start_offset: _Optional[int] = ..., end_offset: _Optional[int] = ..., log_end_offset: _Optional[int] = ..., in_flight_records: _Optional[int] = ..., acquired_records: _Optional[int] = ..., archived_records: _Optional[int] = ..., lag: _Optional[int] = ...) -> None: ...

class ShareGroupDescription(_message.Message):
    __slots__ = ("group_id", "state", "group_epoch", "members", "partitions", "dead_letter_topic")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GROUP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_TOPIC_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    state: _group_pb2.GroupState
    group_epoch: int
    members: _containers.RepeatedCompositeFieldContainer[ShareMemberDescription]
    partitions: _containers.RepeatedCompositeFieldContainer[SharePartitionDescription]
    dead_letter_topic: str
    def __init__(self, group_id: _Optional[str] = ..., state: _Optional[_Union[_group_pb2.GroupState, str]] = ..., group_epoch: _Optional[int] = ..., members: _Optional[_Iterable[_Union[ShareMemberDescription, _Mapping]]] = ..., partitions: _Optional[_Iterable[_Union[SharePartitionDescription, _Mapping]]] = ..., dead_letter_topic: _Optional[str] = ...) -> None: ...

class DescribeShareGroupResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: ShareGroupDescription
    def __init__(self, group: _Optional[_Union[ShareGroupDescription, _Mapping]] = ...) -> None: ...

class AlterGroupConfigRequest(_message.Message):
    __slots__ = ("group_id", "set", "delete")
    class SetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    set: _containers.ScalarMap[str, str]
    delete: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group_id: _Optional[str] = ..., set: _Optional[_Mapping[str, str]] = ..., delete: _Optional[_Iterable[str]] = ...) -> None: ...

class AlterGroupConfigResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeGroupConfigRequest(_message.Message):
    __slots__ = ("group_id",)
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    def __init__(self, group_id: _Optional[str] = ...) -> None: ...

class GroupConfigEntry(_message.Message):
    __slots__ = ("name", "value", "is_group_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    IS_GROUP_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    is_group_value: bool
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., is_group_value: _Optional[bool] = ...) -> None: ...

class DescribeGroupConfigResponse(_message.Message):
    __slots__ = ("configs",)
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[GroupConfigEntry]
    def __init__(self, configs: _Optional[_Iterable[_Union[GroupConfigEntry, _Mapping]]] = ...) -> None: ...

class DeleteShareGroupRequest(_message.Message):
    __slots__ = ("group_id",)
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    def __init__(self, group_id: _Optional[str] = ...) -> None: ...

class DeleteShareGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and describing the broker).

Topics are read and changed through the domain's topic registry; the broker's settings are fixed when it
starts, so altering them is refused. AlterConfigs replaces a topic's whole config (what it leaves out
goes back to the broker's default, as in Kafka); IncrementalAlterConfigs changes only what it names.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import CLUSTER_NAME, Operation, ResourceType
from logstore.broker.domain.configs import ConfigEntry, ConfigSource, broker_configs, topic_configs
from logstore.broker.kafka import sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code, error_message
from logstore.broker.kafka.versions import ALTER_CONFIGS, DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS

from logstore.errors import InvalidConfigError, InvalidRequestError, LogStoreError

TOPIC, BROKER = 2, 4
"""Kafka's config resource types served here (BROKER_LOGGER, CLIENT_METRICS and GROUP are not)."""

SOURCE_CODES = {ConfigSource.TOPIC: 1, ConfigSource.BROKER: 4, ConfigSource.DEFAULT: 5}
"""Kafka's config_source numbers: DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG."""

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
"""IncrementalAlterConfigs' operations."""

LIST_CONFIGS = frozenset({"cleanup.policy"})
"""The topic settings Kafka types as lists, which APPEND and SUBTRACT work on."""


def _entries(resource: Any, ctx: RequestContext) -> list[ConfigEntry]:
    if resource.resource_type == TOPIC:
        sasl.require(ctx.auth, Operation.DESCRIBE_CONFIGS, ResourceType.TOPIC, resource.resource_name)
        return topic_configs(ctx.core.admin, resource.resource_name)
    if resource.resource_type == BROKER:
        sasl.require(ctx.auth, Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME)
        _check_broker(resource.resource_name, ctx.core.cluster.broker_id)
        return broker_configs(ctx.core.admin, ctx.core.cluster.broker_id)
    raise _unserved_type(resource.resource_type)


def _unserved_type(resource_type: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"config resource type {resource_type} is not served here; only topics ({TOPIC}) and the broker ({BROKER})"
    )


def _check_broker(name: str, broker_id: int) -> None:
    """A broker resource names this broker's id (or is empty: the cluster-wide defaults, the same here)."""
    if name not in ("", str(broker_id)):
        raise InvalidRequestError(f"broker {name!r} is not this broker; its id is {broker_id}")


def describe_configs(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DESCRIBE_CONFIGS, version)
    result_cls = element(cls, "results")
    config_cls = element(result_cls, "configs")
    synonym_cls = element(config_cls, "synonyms")
    include_synonyms = getattr(request, "include_synonyms", False)
    results = []
    for resource in request.resources:
        wanted = resource.configuration_keys
        try:
            entries = [e for e in _entries(resource, ctx) if wanted is None or e.name in wanted]
            code, message = ErrorCode.none, None
        except LogStoreError as exc:
            entries, code, message = [], error_code(exc), error_message(exc)
        configs = tuple(
            build(
                config_cls,
                name=e.name,
                value=e.value,
                read_only=e.read_only,
                is_default=e.source is ConfigSource.DEFAULT,
                config_source=SOURCE_CODES[e.source],
                is_sensitive=False,
                synonyms=tuple(
                    build(synonym_cls, name=s.name, value=s.value, source=SOURCE_CODES[s.source])
                    for s in (e.synonyms if include_synonyms else ())
                ),
            )
            for e in entries
        )
        results.append(
            build(
                result_cls,
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return build(cls, throttle_time=NO_THROTTLE, results=tuple(results))


def _alter_resource(resource: Any, incremental: bool, validate_only: bool, ctx: RequestContext) -> None:
    if resource.resource_type == TOPIC:
        sasl.require(ctx.auth, Operation.ALTER_CONFIGS, ResourceType.TOPIC, resource.resource_name)
    if resource.resource_type == BROKER:
        sasl.require(ctx.auth, Operation.ALTER_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME)
        _check_broker(resource.resource_name, ctx.core.cluster.broker_id)
        raise InvalidRequestError(
            "this broker's settings are fixed when it starts; change them in its config file or flags "
            "and restart it"
        )
    if resource.resource_type != TOPIC:
        raise _unserved_type(resource.resource_type)
    names = [config.name for config in resource.configs]
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"a config is named twice for topic {resource.resource_name!r}: {names}")
    if incremental:
        updates, reset = _incremental_changes(resource, ctx)
    else:
        current = topic_configs(ctx.core.admin, resource.resource_name)  # unknown topic: raises
        updates = {c.name: c.value for c in resource.configs if c.value is not None}
        given = {c.name for c in resource.configs if c.value is not None}
        reset = [e.name for e in current if e.name not in given]
        reset += [c.name for c in resource.configs if c.value is None]
    ctx.core.admin.alter_config(resource.resource_name, updates, reset, validate_only=validate_only)


def _incremental_changes(resource: Any, ctx: RequestContext) -> tuple[dict[str, str], list[str]]:
    updates: dict[str, str] = {}
    reset: list[str] = []
    current: dict[str, str] | None = None
    for config in resource.configs:
        op = config.config_operation
        if op == SET:
            if config.value is None:
                raise InvalidConfigError(f"SET of topic config {config.name!r} has no value")
            updates[config.name] = config.value
        elif op == DELETE:
            reset.append(config.name)
        elif op in (APPEND, SUBTRACT):
            if config.name not in LIST_CONFIGS:
                raise InvalidConfigError(
                    f"topic config {config.name!r} is not a list: APPEND and SUBTRACT only apply to "
                    f"{', '.join(sorted(LIST_CONFIGS))}; use SET"
                )
            if current is None:
                current = {e.name: e.value for e in topic_configs(ctx.core.admin, resource.resource_name)}
            items = [v for v in current[config.name].split(",") if v]
            given = [v.strip() for v in (config.value or "").split(",") if v.strip()]
            if op == APPEND:
                items += [v for v in given if v not in items]
            else:
                items = [v for v in items if v not in given]
            updates[config.name] = ",".join(sorted(items))
        else:
            raise InvalidRequestError(f"unknown config operation {op} for topic config {config.name!r}")
    return updates, reset


def _alter(request: Any, version: int, ctx: RequestContext, api_key: int, incremental: bool) -> Any:
    cls = response_type(api_key, version)
    result_cls = element(cls, "responses")
    results = []
    for resource in request.resources:
        try:
            _alter_resource(resource, incremental, request.validate_only, ctx)
            code, message = ErrorCode.none, None
        except LogStoreError as exc:
            code, message = error_code(exc), error_message(exc)
        results.append(
            build(
                result_cls,
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
        )
    return build(cls, throttle_time=NO_THROTTLE, responses=tuple(results))


def alter_configs(request: Any, version: int, ctx: RequestContext) -> Any:
    return _alter(request, version, ctx, ALTER_CONFIGS, incremental=False)


def incremental_alter_configs(request: Any, version: int, ctx: RequestContext) -> Any:
    return _alter(request, version, ctx, INCREMENTAL_ALTER_CONFIGS, incremental=True)

"""The admin client against a real broker: every topic call, and the errors a person gets."""

from __future__ import annotations

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, NewTopic, PartitionInfo, Producer
from logstore.client.shared.errors import (
    ClosedError,
    InvalidRequestError,
    TopicExistsError,
    UnknownTopicError,
)


def test_create_list_describe_grow_alter_delete(broker: EmbeddedBroker) -> None:
    with Admin(broker.address) as admin:
        created = admin.create_topics([NewTopic("orders", 3, {"retention.ms": 3_600_000}), "plain"])
        assert [t.name for t in created] == ["orders", "plain"]
        assert created[0].config["retention.ms"] == "3600000"
        assert admin.list_topics() == {"orders": 3, "plain": 1}
        with Producer(broker.address) as producer:
            producer.send("orders", b"x", partition=1).get(10)
        [orders] = admin.describe_topics(["orders"])
        assert orders.partitions == [PartitionInfo(0, 0, 0), PartitionInfo(1, 0, 1), PartitionInfo(2, 0, 0)]
        assert {t.name for t in admin.describe_topics()} == {"orders", "plain"}
        [grown] = admin.create_partitions({"orders": 5})
        assert len(grown.partitions) == 5
        [altered] = admin.alter_configs({"orders": {"cleanup.policy": "compact"}})
        assert altered.config["cleanup.policy"] == "compact" and altered.config["retention.ms"] == "3600000"
        [reset] = admin.alter_configs({}, reset={"orders": ["retention.ms"]})
        assert reset.config["retention.ms"] != "3600000"
        admin.delete_topics(["plain"])
        assert admin.list_topics() == {"orders": 5}


def test_errors_name_the_problem(broker: EmbeddedBroker) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic("a", 1)
        with pytest.raises(TopicExistsError, match="'a'"):
            admin.create_topic("a", 1)
        with pytest.raises(InvalidRequestError, match="bad/name"):
            admin.create_topic("bad/name", 1)
        with pytest.raises(InvalidRequestError, match=r"retention\.ms"):
            admin.create_topic("b", 1, {"retention.ms": "soon"})
        with pytest.raises(UnknownTopicError, match="missing"):
            admin.describe_topics(["missing"])
        with pytest.raises(InvalidRequestError, match="shrink"):
            admin.create_partitions({"a": 0})


def test_several_topics_all_tried_then_the_first_error_names_the_rest(broker: EmbeddedBroker) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic("x", 1)
        with pytest.raises(TopicExistsError, match=r"and 1 more: .*'y'") as raised:
            admin.create_topics(["x", "fine", "y", "y"])
        assert "x" in str(raised.value)
        assert set(admin.list_topics()) == {"x", "fine", "y"}


def test_closed_admin_refuses_calls(broker: EmbeddedBroker) -> None:
    admin = Admin(broker.address)
    admin.close()
    admin.close()
    with pytest.raises(ClosedError):
        admin.list_topics()

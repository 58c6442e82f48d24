"""The console's JSON endpoints against a real broker: each endpoint's answer, bad input, unknown
things, actions refused by the permission check or the anti-CSRF check, and the error table."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from logstore.broker.console import errors as console_errors
from logstore.broker.console.permissions import Principal, Resource, may
from logstore.broker.console.records import render_bytes
from logstore.broker.console.samples import Sample, Samples
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.errors import TABLE as GRPC_TABLE
from logstore.client import Consumer

from logstore.records import Record, build_batch
from tests.auth_helpers import USERS, acl, basic, make_users
from tests.conftest import StartBroker, Stubs
from tests.console_http import call, poll_records

JSON_VALUE = {"order": 17, "items": ["a", "b"]}
BINARY_VALUE = bytes([0, 159, 255, 16])
SCRIPT_VALUE = b"<script>alert(1)</script>"


def fill(stubs: Stubs, topic: str = "orders") -> None:
    """Three records on partition 0: a JSON value with a header, a binary value, a `<script>` value."""
    stubs.create_topic(topic, partitions=2, **{"retention.ms": "3600000"})
    records = [
        Record(0, 1_700_000_000_000, key=b"k1", value=json.dumps(JSON_VALUE).encode(), headers=[("h", b"v")]),
        Record(1, 1_700_000_001_000, key=None, value=BINARY_VALUE),
        Record(2, 1_700_000_002_000, key=b"k3", value=SCRIPT_VALUE),
    ]
    assert stubs.produce_one(topic, 0, build_batch(records)).error_code == 0


def wait_for(condition, what: str):
    deadline = time.monotonic() + 60
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_overview_session_and_security_headers(broker: EmbeddedBroker, stubs: Stubs) -> None:
    fill(stubs)
    status, overview, headers = call(broker.http_url, "GET", "/api/overview")
    assert status == 200
    assert overview["topics"] == 1 and overview["partitions"] == 2
    assert {"grpc", "kafka", "http"} == {listener["name"] for listener in overview["listeners"]}
    assert overview["data_dir_bytes"] > 0 and overview["disk_free_bytes"] > 0
    assert overview["version"] and overview["uptime_s"] >= 0
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, session, _ = call(broker.http_url, "GET", "/api/session")
    assert status == 200 and session["address"] == "127.0.0.1"
    assert all(session["may"].values()), "with auth off, loopback may act"


def test_the_page_and_its_files_are_served_with_a_strict_policy(broker: EmbeddedBroker) -> None:
    with urllib.request.urlopen(broker.http_url + "/", timeout=10) as answer:
        assert answer.url.endswith("/console/")
        page = answer.read().decode()
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert '<script src="/console/static/console.js" defer></script>' in page
    assert "<script>" not in page, "no inline script"
    for name in ("console.js", "console.css"):
        with urllib.request.urlopen(f"{broker.http_url}/console/static/{name}", timeout=10) as answer:
            assert answer.status == 200
    js = urllib.request.urlopen(broker.http_url + "/console/static/console.js", timeout=10).read().decode()
    assert "innerHTML" not in js


def test_topics_list_and_describe(broker: EmbeddedBroker, stubs: Stubs) -> None:
    fill(stubs)
    status, listed, _ = call(broker.http_url, "GET", "/api/topics")
    assert status == 200
    (orders,) = listed["topics"]
    assert orders["name"] == "orders" and orders["partitions"] == 2 and orders["records"] == 3
    assert orders["retention.ms"] == "3600000" and orders["cleanup.policy"] == "delete"
    assert orders["size_bytes"] > 0
    status, topic, _ = call(broker.http_url, "GET", "/api/topics/orders")
    assert status == 200
    assert [
        (p["partition"], p["log_start_offset"], p["log_end_offset"], p["segments"])
        for p in topic["partitions"]
    ] == [
        (0, 0, 3, 1),
        (1, 0, 0, 1),
    ]
    configs = {c["name"]: (c["value"], c["source"]) for c in topic["configs"]}
    assert configs["retention.ms"] == ("3600000", "topic")
    status, problem, _ = call(broker.http_url, "GET", "/api/topics/nope")
    assert (status, problem["error"]) == (404, "UNKNOWN_TOPIC") and "nope" in problem["message"]
    status, problem, _ = call(broker.http_url, "GET", "/api/topics/bad%20name")
    assert status == 400 and problem["error"] == "INVALID_TOPIC"


def test_records_render_json_hex_and_text_and_page(broker: EmbeddedBroker, stubs: Stubs) -> None:
    fill(stubs)
    status, page, _ = call(broker.http_url, "GET", "/api/topics/orders/partitions/0/records?offset=0&limit=2")
    assert status == 200
    assert [r["offset"] for r in page["records"]] == [0, 1] and page["next_offset"] == 2
    first, second = page["records"]
    assert first["value"] == {
        "kind": "json",
        "text": json.dumps(JSON_VALUE, indent=2),
        "size": len(json.dumps(JSON_VALUE)),
        "truncated": False,
    }
    assert first["key"]["text"] == "k1" and first["headers"] == [
        {"key": "h", "value": {"kind": "text", "text": "v", "size": 1, "truncated": False}}
    ]
    assert first["timestamp_ms"] == 1_700_000_000_000
    assert second["value"]["kind"] == "hex" and second["value"]["text"] == "00 9f ff 10"
    assert second["key"]["kind"] == "null"
    status, rest, _ = call(broker.http_url, "GET", "/api/topics/orders/partitions/0/records?offset=2")
    assert [r["value"] for r in rest["records"]] == [
        {"kind": "text", "text": SCRIPT_VALUE.decode(), "size": len(SCRIPT_VALUE), "truncated": False}
    ]
    assert rest["next_offset"] == 3 and rest["log_end_offset"] == 3
    status, by_time, _ = call(
        broker.http_url, "GET", "/api/topics/orders/partitions/0/records?timestamp_ms=1700000000500"
    )
    assert status == 200 and [r["offset"] for r in by_time["records"]] == [1, 2]
    status, tail, _ = call(broker.http_url, "GET", "/api/topics/orders/partitions/0/records?tail=1&limit=2")
    assert status == 200 and [r["offset"] for r in tail["records"]] == [1, 2]
    status, at_end, _ = call(broker.http_url, "GET", "/api/topics/orders/partitions/0/records?offset=3")
    assert status == 200 and at_end["records"] == []


@pytest.mark.parametrize(
    ("query", "status", "error", "words"),
    [
        ("/0/records?offset=99", 416, "OFFSET_OUT_OF_RANGE", "pick one from 0 to 3"),
        ("/0/records?offset=-1", 400, "INVALID_REQUEST", "offset must be at least 0"),
        ("/0/records?offset=abc", 400, "INVALID_REQUEST", "offset must be a whole number"),
        ("/0/records?limit=100000", 400, "INVALID_REQUEST", "limit must be at most 500"),
        ("/7/records", 404, "UNKNOWN_PARTITION", "7"),
        ("/x/records", 400, "INVALID_REQUEST", "partition must be a whole number"),
    ],
)
def test_bad_browser_input_gets_a_status_and_words_to_act_on(
    broker: EmbeddedBroker, stubs: Stubs, query: str, status: int, error: str, words: str
) -> None:
    fill(stubs)
    got, problem, _ = call(broker.http_url, "GET", "/api/topics/orders/partitions" + query)
    assert (got, problem["error"]) == (status, error)
    assert words in problem["message"]


def test_create_alter_produce_and_delete_a_topic(broker: EmbeddedBroker, stubs: Stubs) -> None:
    base = broker.http_url
    status, created, _ = call(
        base, "POST", "/api/topics", {"name": "made", "partitions": 3, "config": {"retention.ms": "60000"}}
    )
    assert (status, created) == (201, {"name": "made", "partitions": 3})
    assert call(base, "POST", "/api/topics", {"name": "made"})[:2][0] == 409
    status, altered, _ = call(base, "POST", "/api/topics/made/config", {"set": {"retention.ms": "120000"}})
    assert status == 200 and altered["config"]["retention.ms"] == "120000"
    status, problem, _ = call(base, "POST", "/api/topics/made/config", {"set": {"retention.ms": "soon"}})
    assert status == 400 and problem["error"] == "INVALID_CONFIG"
    status, produced, _ = call(
        base,
        "POST",
        "/api/topics/made/records",
        {"partition": 2, "key": "k", "value": "hello", "headers": {"a": "b"}},
    )
    assert (status, produced) == (201, {"topic": "made", "partition": 2, "offset": 0})
    metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    assert 'logstore_topic_records_in_total{topic="made"} 1.0' in metrics, "counted like any produce"
    (record,) = call(base, "GET", "/api/topics/made/partitions/2/records")[1]["records"]
    assert (record["key"]["text"], record["value"]["text"], record["headers"][0]["key"]) == (
        "k",
        "hello",
        "a",
    )
    assert stubs.values("made", 2) == [b"hello"]
    assert call(base, "DELETE", "/api/topics/made")[:2] == (200, {"deleted": "made"})
    assert call(base, "DELETE", "/api/topics/made")[0] == 404
    assert call(base, "GET", "/api/topics")[1]["topics"] == []


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/api/topics", {"partitions": 1}, "name must be a non-empty string"),
        ("/api/topics", {"name": "t", "partitions": "many"}, "partitions must be a whole number"),
        ("/api/topics", {"name": "t", "config": {"retention.ms": 5}}, "config must be an object"),
        ("/api/topics", [1, 2], "the body must be a JSON object"),
        ("/api/topics/orders/records", {"value": 5}, "key and value must be text"),
        ("/api/groups/g/reset-offsets", {"mode": "sideways"}, "mode must be one of earliest"),
        (
            "/api/groups/g/reset-offsets",
            {"mode": "earliest", "dry_run": "yes"},
            "dry_run must be true or false",
        ),
    ],
)
def test_bad_action_bodies_are_refused_with_400(
    broker: EmbeddedBroker, stubs: Stubs, path: str, body: object, words: str
) -> None:
    fill(stubs)
    status, problem, _ = call(broker.http_url, "POST", path, body)
    assert (status, problem["error"]) == (400, "INVALID_REQUEST")
    assert words in problem["message"]


def test_a_body_that_is_not_json_is_refused(broker: EmbeddedBroker) -> None:
    request = urllib.request.Request(
        broker.http_url + "/api/topics",
        data=b"name=x",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Logstore-Console": "1"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "Content-Type: application/json" in json.loads(refused.value.read())["message"]
    refused.value.close()


def test_actions_without_the_csrf_header_or_from_another_origin_are_forbidden(
    broker: EmbeddedBroker, stubs: Stubs
) -> None:
    base = broker.http_url
    status, problem, _ = call(base, "POST", "/api/topics", {"name": "x"}, headers={"X-Logstore-Console": ""})
    assert (status, problem["error"]) == (403, "FORBIDDEN") and "X-Logstore-Console" in problem["message"]
    status, problem, _ = call(
        base, "POST", "/api/topics", {"name": "x"}, headers={"Origin": "http://evil.example"}
    )
    assert (status, problem["error"]) == (403, "FORBIDDEN") and "another origin" in problem["message"]
    assert call(base, "GET", "/api/topics")[1]["topics"] == [], "nothing was created"
    same = base.replace("http://", "")
    assert call(base, "POST", "/api/topics", {"name": "x"}, headers={"Origin": f"http://{same}"})[0] == 201


def test_actions_the_permission_check_refuses_are_forbidden_and_change_nothing(
    broker: EmbeddedBroker, stubs: Stubs
) -> None:
    fill(stubs)
    asked: list[tuple[str, str, str]] = []

    def refuse(principal: Principal, operation: str, resource: Resource) -> bool:
        asked.append((operation, resource.kind, resource.name))
        return operation in ("Describe", "Read")

    console = broker.server.console
    assert console is not None
    console.may = refuse
    base = broker.http_url
    for method, path, body in [
        ("POST", "/api/topics", {"name": "new"}),
        ("DELETE", "/api/topics/orders", None),
        ("POST", "/api/topics/orders/config", {"set": {"retention.ms": "1"}}),
        ("POST", "/api/topics/orders/records", {"value": "x"}),
        ("POST", "/api/groups/g/reset-offsets", {"mode": "earliest", "topic": "orders", "dry_run": False}),
    ]:
        status, problem, _ = call(base, method, path, body)
        assert (status, problem["error"]) == (403, "FORBIDDEN"), path
        assert "may not" in problem["message"]
    assert asked == [
        ("Create", "topic", "new"),
        ("Delete", "topic", "orders"),
        ("AlterConfigs", "topic", "orders"),
        ("Write", "topic", "orders"),
        ("Alter", "group", "g"),
    ]
    assert [t["name"] for t in call(base, "GET", "/api/topics")[1]["topics"]] == ["orders"]
    assert stubs.values("orders", 0)[-1] == SCRIPT_VALUE, "nothing produced"
    assert not any(call(base, "GET", "/api/session")[1]["may"].values())


def test_may_allows_actions_only_from_loopback_while_auth_is_off() -> None:
    topic = Resource("topic", "orders")
    for address in ("127.0.0.1", "127.5.0.1", "::1"):
        assert may(Principal("User:ANONYMOUS", address), "Create", topic)
    for address in ("10.1.2.3", "192.168.0.9", "2001:db8::1", ""):
        assert not may(Principal("User:ANONYMOUS", address), "Delete", topic)
        assert may(Principal("User:ANONYMOUS", address), "Describe", topic)


def test_groups_lag_and_reset_offsets_with_a_dry_run_first(broker: EmbeddedBroker, stubs: Stubs) -> None:
    fill(stubs)
    base = broker.http_url
    with Consumer(
        "orders",
        bootstrap=broker.address,
        group_id="readers",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    ) as consumer:
        poll_records(consumer, 3)
        consumer.commit()
    stubs.produce_one("orders", 0, build_batch([b"more", b"more"]))
    status, listed, _ = call(base, "GET", "/api/groups")
    assert (
        status == 200
        and {"group_id": "readers", "type": "consumer", "state": "EMPTY", "members": 0} in listed["groups"]
    )
    status, group, _ = call(base, "GET", "/api/groups/readers")
    assert status == 200 and group["state"] == "EMPTY"
    lags = {
        (p["topic"], p["partition"]): (p["committed_offset"], p["log_end_offset"], p["lag"])
        for p in group["partitions"]
    }
    assert lags[("orders", 0)] == (3, 5, 2)
    status, plan, _ = call(
        base, "POST", "/api/groups/readers/reset-offsets", {"mode": "earliest", "topic": "orders"}
    )
    assert status == 200 and plan["dry_run"] is True
    assert {(r["partition"], r["previous_offset"], r["new_offset"]) for r in plan["results"]} >= {(0, 3, 0)}
    assert call(base, "GET", "/api/groups/readers")[1]["partitions"][0]["committed_offset"] == 3, "dry run"
    status, done, _ = call(
        base,
        "POST",
        "/api/groups/readers/reset-offsets",
        {"mode": "earliest", "topic": "orders", "dry_run": False},
    )
    assert status == 200 and done["dry_run"] is False
    after = {
        (p["topic"], p["partition"]): p["lag"]
        for p in call(base, "GET", "/api/groups/readers")[1]["partitions"]
    }
    assert after[("orders", 0)] == 5
    status, problem, _ = call(base, "GET", "/api/groups/nobody")
    assert (status, problem["error"]) == (404, "GROUP_ID_NOT_FOUND")
    status, problem, _ = call(
        base, "POST", "/api/groups/readers/reset-offsets", {"mode": "earliest", "topic": "gone"}
    )
    assert (status, problem["error"]) == (404, "UNKNOWN_TOPIC")


def test_share_groups_show_in_flight_archived_and_their_dlq(broker: EmbeddedBroker, stubs: Stubs) -> None:
    from tests.test_broker_metrics import share_records

    share_records(broker, stubs)
    base = broker.http_url
    listed = call(base, "GET", "/api/groups")[1]["groups"]
    assert {"group_id": "workers", "type": "share", "state": "EMPTY", "members": 0} in listed
    status, group, _ = call(base, "GET", "/api/share-groups/workers")
    assert status == 200
    (partition,) = group["partitions"]
    assert (partition["topic"], partition["archived"]) == ("tasks", 2)
    assert partition["delivery_counts"] == {
        "0": 1
    }  # the one held at close, given back: a release does not count
    assert {c["name"] for c in group["configs"]} >= {"share.delivery.count.limit"}
    assert call(base, "GET", "/api/share-groups/nobody")[0] == 404


def test_rates_write_rates_and_lag_history_come_from_samples(broker: EmbeddedBroker, stubs: Stubs) -> None:
    """The sampler's ring buffer fills on its own (every few seconds); two samples make a rate."""
    fill(stubs)
    base = broker.http_url
    rates = wait_for(lambda: call(base, "GET", "/api/rates")[1]["rates"], "two samples")
    assert set(rates[0]) == {"t", "records_in", "records_out", "bytes_in", "bytes_out"}
    write = call(base, "GET", "/api/topics/orders")[1]["write_rates"]
    assert write and set(write[0]["partitions"]) == {"0", "1"}


def test_sample_rates_lag_history_and_ring_bound() -> None:
    samples = Samples(interval_s=5, window_s=20)
    for i in range(10):
        samples.add(Sample(100.0 + 5 * i, 10.0 * i, 0, 100.0 * i, 0, {("t", 0): 3 * i}, {"g": {("t", 0): i}}))
    assert len(samples) == 5, "only the window is kept"
    assert samples.broker_rates()[-1] == {
        "t": 145.0,
        "records_in": 2.0,
        "records_out": 0.0,
        "bytes_in": 20.0,
        "bytes_out": 0.0,
    }
    assert samples.write_rates("t")[-1] == {"t": 145.0, "partitions": {"0": 0.6}}
    assert samples.lag_history("g")[-1] == {"t": 145.0, "lag": 9.0}
    samples.add(Sample(150.0, 1.0, 0, 0, 0))
    assert samples.broker_rates()[-1]["records_in"] == 0.2, "a counter that restarted counts from zero"


def test_bytes_are_shown_as_json_text_or_hex() -> None:
    assert render_bytes(None)["kind"] == "null"
    assert render_bytes(b'{"a":1}')["text"] == '{\n  "a": 1\n}'
    assert render_bytes(b"{not json")["kind"] == "text"
    assert render_bytes("é".encode())["text"] == "é"
    assert render_bytes(b"\xff\x00") == {"kind": "hex", "text": "ff 00", "size": 2, "truncated": False}
    long = render_bytes(b"x" * 70_000)
    assert long["truncated"] and len(long["text"]) == 64 * 1024


def test_the_error_table_names_every_class_the_grpc_table_names() -> None:
    assert set(GRPC_TABLE) | {console_errors.ForbiddenError} == set(console_errors.TABLE)
    assert console_errors.status_for(KeyError("bug")) == 500
    assert console_errors.body_for(KeyError("secret"))["message"].startswith("internal error (KeyError)")


def test_a_kafka_clients_group_shows_its_members_and_lag(broker: EmbeddedBroker, stubs: Stubs) -> None:
    """A kafka-python consumer (the classic JoinGroup protocol) while it is in the group, then after."""
    from kafka import KafkaConsumer

    fill(stubs)
    base = broker.http_url
    consumer = KafkaConsumer(
        "orders",
        bootstrap_servers=broker.kafka_address,
        group_id="kafka-readers",
        client_id="kp",
        # kafka-python can join before its metadata has the topic ("No partition metadata"), assign
        # itself nothing, and wait for the next metadata refresh (5 minutes by default) to rejoin.
        metadata_max_age_ms=500,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        poll_records(consumer, 3)
        consumer.commit()
        listed = {g["group_id"]: g for g in call(base, "GET", "/api/groups")[1]["groups"]}
        assert listed["kafka-readers"] == {
            "group_id": "kafka-readers",
            "type": "consumer",
            "state": "STABLE",
            "members": 1,
        }
        status, group, _ = call(base, "GET", "/api/groups/kafka-readers")
        assert status == 200 and (group["protocol"], group["state"]) == ("classic", "STABLE")
        assert [m["client_id"] for m in group["members"]] == ["kp"]
        lags = {(p["topic"], p["partition"]): (p["committed_offset"], p["lag"]) for p in group["partitions"]}
        assert lags[("orders", 0)] == (3, 0)
    finally:
        consumer.close()
    assert call(base, "GET", "/api/groups/kafka-readers")[1]["members"] == []


def test_with_auth_on_the_console_logs_in_and_shows_each_user_what_its_acls_allow(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    """--require-auth: no or wrong credentials get 401 and the browser's password prompt; a user sees
    only the topics and groups its ACLs let it Describe, reads and acts only where they allow, and is
    refused (403, naming the operation) elsewhere; a super-user sees and acts on everything."""
    make_users(
        tmp_path / "data",
        [
            acl("User:alice", "Describe", "pay", pattern="prefixed"),
            acl("User:alice", "Read", "payments"),
            acl("User:alice", "Describe", "pay", resource="group", pattern="prefixed"),
            acl("User:alice", "Describe", "payments-audit", permission="deny"),
        ],
    )
    broker = start_broker(require_auth=True, super_users="User:admin")

    def login(user: str, password: str) -> dict[str, str]:
        return {"Authorization": basic(user, password)[0][1]}

    status, body, headers = call(broker.http_url, "GET", "/api/overview")
    assert status == 401 and body["error"] == "SASL_AUTHENTICATION_FAILED", body
    assert headers["WWW-Authenticate"].startswith('Basic realm="logstore console"')
    assert call(broker.http_url, "GET", "/api/topics", headers=login("admin", "guess"))[0] == 401
    alice = login("alice", USERS["alice"])
    status, body, _ = call(broker.http_url, "GET", "/api/topics", headers=alice)
    assert status == 200 and body["topics"] == [], body  # nothing to see yet
    page = urllib.request.Request(broker.http_url + "/console/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(page, timeout=10)
    assert refused.value.code == 401
    refused.value.close()  # the error holds the response and its socket
    admin = login("admin", USERS["admin"])
    status, session, _ = call(broker.http_url, "GET", "/api/session", headers=admin)
    assert status == 200 and session["principal"] == "User:admin" and session["may"]["create_topic"]
    status, created, _ = call(
        broker.http_url, "POST", "/api/topics", {"name": "made-by-admin", "partitions": 1}, headers=admin
    )
    assert status in (200, 201), created
    assert call(broker.http_url, "GET", "/api/topics/made-by-admin", headers=admin)[0] == 200
    for name in ("payments", "payments-audit", "orders"):
        call(broker.http_url, "POST", "/api/topics", {"name": name, "partitions": 1}, headers=admin)
        call(broker.http_url, "POST", f"/api/topics/{name}/records", {"value": f"in {name}"}, headers=admin)
    assert {t["name"] for t in call(broker.http_url, "GET", "/api/topics", headers=admin)[1]["topics"]} >= {
        "payments",
        "payments-audit",
        "orders",
        "made-by-admin",
    }
    listed = call(broker.http_url, "GET", "/api/topics", headers=alice)[1]["topics"]
    assert [t["name"] for t in listed] == ["payments"]  # prefixed allow, the deny wins for -audit
    assert call(broker.http_url, "GET", "/api/overview", headers=alice)[1]["topics"] == 1
    status, page, _ = call(broker.http_url, "GET", "/api/topics/payments/partitions/0/records", headers=alice)
    assert status == 200 and [r["value"]["text"] for r in page["records"]] == ["in payments"], page
    status, body, _ = call(broker.http_url, "GET", "/api/topics/orders", headers=alice)
    assert status == 403 and "User:alice is not authorized to Describe topic 'orders'" in body["message"]
    status, body, _ = call(broker.http_url, "GET", "/api/topics/orders/partitions/0/records", headers=alice)
    assert status == 403 and "Read topic 'orders'" in body["message"], body
    status, body, _ = call(
        broker.http_url, "POST", "/api/topics/payments/records", {"value": "from alice"}, headers=alice
    )
    assert status == 403 and "Write topic 'payments'" in body["message"], body
    status, session, _ = call(broker.http_url, "GET", "/api/session", headers=alice)
    assert session["principal"] == "User:alice" and not any(session["may"].values()), session
    assert urllib.request.urlopen(broker.http_url + "/metrics", timeout=10).status == 200  # scrapes stay open

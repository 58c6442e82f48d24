"""`logstore users` and `logstore acls`, offline on a stopped broker's directory and online through the
admin calls; the store's refusals (a damaged file, a running broker) and its path safety."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from logstore.broker.domain.errors import SecurityStoreError
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import AclBinding, Admin
from logstore.client.shared.errors import InvalidRequestError

from tests.auth_helpers import as_user, basic, credentials, make_users
from tests.conftest import StartBroker
from tests.test_broker_auth import Calls


def logstore(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_first_admin_is_made_offline_then_users_and_acls_are_managed_online(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    ok(logstore("users", "add", "admin", "--password-stdin", "--data-dir", str(data), stdin="admin-pw\n"))
    ok(logstore("acls", "add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "orders",
                "--data-dir", str(data)))  # fmt: skip
    assert "admin\tSCRAM-SHA-256 (iterations 4096), SCRAM-SHA-512 (iterations 4096)" in ok(
        logstore("users", "list", "--data-dir", str(data))
    )
    assert "admin-pw" not in (data / "users.json").read_text()
    assert (data / "users.json").stat().st_mode & 0o777 == 0o600
    broker = start_broker(require_auth=True, super_users="User:admin")
    with Admin(broker.address, **credentials("admin", "admin-pw")) as admin:
        admin.create_topic("orders", 1)
    online = {
        "LOGSTORE_BOOTSTRAP": broker.address,
        "LOGSTORE_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "LOGSTORE_SASL_MECHANISM": "PLAIN",
        "LOGSTORE_SASL_USERNAME": "admin",
    }
    as_admin = {**online, "LOGSTORE_SASL_PASSWORD": "admin-pw"}
    ok(logstore("users", "add", "alice", "--password-stdin", "--mechanism", "SCRAM-SHA-256", stdin="a-pw\n",
                env=as_admin))  # fmt: skip
    calls = Calls(broker.address)
    assert calls.produce(basic("alice", "a-pw")).error_code == 0
    removed = ok(logstore("acls", "remove", "--principal", "User:alice", env=as_admin))
    assert "removed User:alice allow Write on topic:orders (literal)" in removed
    with pytest.raises(grpc.RpcError) as refused:
        calls.produce(basic("alice", "a-pw"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    wrong = logstore("users", "list", env={**online, "LOGSTORE_SASL_PASSWORD": "nope"})
    assert (
        wrong.returncode == 1 and "authentication failed" in wrong.stderr and "Traceback" not in wrong.stderr
    )
    busy = logstore("users", "list", "--data-dir", str(data))
    assert busy.returncode == 1 and "in use by a running broker" in busy.stderr


def test_a_damaged_users_or_acls_file_refuses_the_start_naming_it_and_the_way_out(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    make_users(data)
    for name in ("users.json", "acls.json"):
        good = (data / name).read_bytes() if (data / name).exists() else None
        (data / name).write_text(
            '{"version": 1, "users": {"x": {"SCRAM-SHA-256": {"salt": 5}}}, "acls": [3]}'
        )
        with pytest.raises(SecurityStoreError) as refused:
            start_broker(require_auth=True, super_users="User:admin")
        assert str(data / name) in str(refused.value) and "move it aside" in str(refused.value)
        listing = logstore("users", "list", "--data-dir", str(data))
        assert listing.returncode == 1 and name in listing.stderr
        if good is None:
            (data / name).unlink()
        else:
            (data / name).write_bytes(good)
    (data / "users.json").write_text("{not json")
    with pytest.raises(SecurityStoreError, match="is not valid JSON"):
        start_broker(require_auth=True)


def _outside(root: Path, data: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if data not in p.parents and p != data}


def test_no_user_or_acl_name_makes_the_broker_touch_a_path_outside_its_data_directory(
    start_broker: StartBroker, tmp_path: Path
) -> None:
    data = tmp_path / "deep" / "data"
    make_users(data)
    before = _outside(tmp_path, data)
    broker: EmbeddedBroker = start_broker(data_dir=data, require_auth=True, super_users="User:admin")
    hostile = ["../../escape", "/tmp/escape", "..", "users.json", "a/../../b", "x\\..\\y", "%2e%2e%2fx"]
    with Admin(broker.address, **credentials("admin")) as admin:
        for name in hostile:
            admin.create_user(name, "pw")
            admin.create_acls(
                [AclBinding(f"User:{name}", "All", kind, name, "prefixed") for kind in ("topic", "group")]
            )
        for refused_name in ("\u2028x", "*", ""):
            with pytest.raises(InvalidRequestError, match="printable"):
                admin.create_user(refused_name, "pw")
        for name in hostile:
            admin.delete_user(name)
        admin.delete_acls([AclBinding(f"User:{n}", "All", "topic", n, "prefixed") for n in hostile])
    calls = Calls(broker.address)
    assert calls.list_topics(as_user("admin")) == []
    broker.stop()
    assert _outside(tmp_path, data) == before
    expected = {".clean-shutdown", ".lock", "meta.json", "users.json", "acls.json", "producer-ids.json"}
    top = {
        name
        for name in os.listdir(data)
        if not name.startswith(("__consumer_offsets-", "__share_group_state-"))
    }
    assert {"users.json", "acls.json"} <= top <= expected

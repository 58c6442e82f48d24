"""The console's HTTP face: JSON endpoints under /api/ and the static page under /console/.

Listeners only translate: each handler reads its path, query or JSON body into plain values, calls the
broker's domain (`BrokerCore`), and turns the answer into JSON (`translate` checks what requests
carry). Errors go through the one table in `errors`; actions go through `permissions.may` and the
anti-CSRF check in `guard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from logstore.broker.auth.security import Security
from logstore.broker.console.guard import CSRF_HEADER, guard, login, principal_of, refuse
from logstore.broker.console.permissions import Principal, Resource, acl_may, may
from logstore.broker.console.records import render_record
from logstore.broker.console.sampler import run_sampler
from logstore.broker.console.samples import Samples
from logstore.broker.console.translate import BadRequest, as_int, as_str, as_str_map, json_response, read_body
from logstore.broker.domain.configs import topic_configs
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.errors import ShuttingDownError
from logstore.broker.domain.groups.values import ResetMode, ResetSpec
from logstore.broker.domain.values import Acks, FetchSpec, OffsetQuery, OffsetSpec, ProduceEntry
from logstore.broker.observability.metrics import BrokerMetrics

from logstore.errors import OffsetOutOfRangeError
from logstore.records import Record, build_batch, iter_records

log = logging.getLogger("logstore.broker.console")

STATIC = Path(__file__).resolve().parent / "static"
MAX_PAGE = 500
"""Most records one page of the message browser holds."""
READ_BYTES = 1024 * 1024
PRODUCE_TIMEOUT_S = 30.0


class Broker(Protocol):
    """What the console needs of the broker process (`BrokerServer`)."""

    core: BrokerCore | None
    metrics: BrokerMetrics
    security: Security | None
    """The users and ACLs; with `require_auth`, the console logs its users in (`guard.login`)."""

    @property
    def require_auth(self) -> bool: ...

    def listeners(self) -> list[dict[str, str]]: ...


class Console:
    """Adds the console to the HTTP endpoint's application (`extend`), and runs its sampler while the
    endpoint runs. Not thread-safe: the broker's event loop only."""

    def __init__(self, broker: Broker, data_dir: Path, *, samples: Samples | None = None) -> None:
        self._broker = broker
        self._data_dir = Path(data_dir)
        self.samples = samples or Samples()
        self._started_s = time.time()
        self.may: Callable[[Principal, str, Resource], bool] = self._may
        """The permission check of every view and action: the loopback rule with authentication off, the
        broker's ACLs with --require-auth (`permissions`)."""

    # --- wiring ---------------------------------------------------------------------------------------

    def extend(self, app: web.Application) -> None:
        logins = [login(lambda: self._broker.security)] if self._broker.require_auth else []
        api = web.Application(middlewares=[guard, *logins])
        get, post, delete = api.router.add_get, api.router.add_post, api.router.add_delete
        get("/session", self.session)
        get("/overview", self.overview)
        get("/rates", self.rates)
        get("/topics", self.topics)
        post("/topics", self.create_topic)
        get("/topics/{topic}", self.topic)
        delete("/topics/{topic}", self.delete_topic)
        post("/topics/{topic}/config", self.alter_config)
        get("/topics/{topic}/partitions/{partition}/records", self.records)
        post("/topics/{topic}/records", self.produce)
        get("/groups", self.groups)
        get("/groups/{group}", self.group)
        post("/groups/{group}/reset-offsets", self.reset_offsets)
        get("/share-groups/{group}", self.share_group)
        app.add_subapp("/api/", api)
        page = web.Application(middlewares=[guard, *logins])
        page.router.add_get("/", self.index)
        page.router.add_static("/static/", STATIC, follow_symlinks=False)
        app.add_subapp("/console/", page)
        app.router.add_get("/", _to_console)
        app.cleanup_ctx.append(self._sampling)

    async def _sampling(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(
            run_sampler(self.samples, lambda: self._broker.core, self._broker.metrics), name="console-sampler"
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _may(self, principal: Principal, operation: str, resource: Resource) -> bool:
        if not self._broker.require_auth:
            return may(principal, operation, resource)
        security = self._broker.security
        if security is None:
            raise ShuttingDownError("the broker is still starting (loading its users); try again in a moment")
        return acl_may(security)(principal, operation, resource)

    def _allow(self, request: web.Request, operation: str, resource: Resource) -> None:
        principal = principal_of(request)
        if not self.may(principal, operation, resource):
            raise refuse(principal, operation, resource)

    def _visible(self, request: web.Request, kind: str, names: Iterable[str]) -> list[str]:
        """The names of `kind` the asker may Describe: lists leave out what it may not see (Kafka's habit)."""
        principal = principal_of(request)
        return [n for n in names if self.may(principal, "Describe", Resource(kind, n))]

    def _core(self) -> BrokerCore:
        core = self._broker.core
        if core is None:
            raise ShuttingDownError(
                "the broker is still starting (recovering its log); try again in a moment"
            )
        return core

    # --- read-only views ------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def session(self, request: web.Request) -> web.Response:
        """Who the console thinks you are and which actions it would allow you."""
        principal = principal_of(request)
        cluster = Resource("cluster", "")
        return json_response(
            {
                "principal": principal.name,
                "address": principal.address,
                "may": {
                    "create_topic": self.may(principal, "Create", cluster),
                    "delete_topic": self.may(principal, "Delete", Resource("topic", "*")),
                    "alter_config": self.may(principal, "AlterConfigs", Resource("topic", "*")),
                    "produce": self.may(principal, "Write", Resource("topic", "*")),
                    "reset_offsets": self.may(principal, "Alter", Resource("group", "*")),
                },
                "csrf_header": CSRF_HEADER,
            }
        )

    async def overview(self, request: web.Request) -> web.Response:
        core = self._core()
        used = await asyncio.to_thread(_disk_used, self._data_dir)
        disk = shutil.disk_usage(self._data_dir)
        shown = set(self._visible(request, "topic", [t.name for t in core.admin.list()]))
        topics = [t for t in core.admin.list() if t.name in shown]
        groups = [g.group_id for g in core.groups.list_groups()] + [g for g, _, _ in core.share.list_groups()]
        return json_response(
            {
                "version": _version(),
                "uptime_s": round(time.time() - self._started_s, 1),
                "listeners": self._broker.listeners(),
                "data_dir": str(self._data_dir),
                "data_dir_bytes": used,
                "disk_free_bytes": disk.free,
                "disk_total_bytes": disk.total,
                "topics": len(topics),
                "partitions": sum(t.partitions for t in topics),
                "groups": len(self._visible(request, "group", groups)),
            }
        )

    async def rates(self, request: web.Request) -> web.Response:
        return json_response({"interval_s": self.samples.interval_s, "rates": self.samples.broker_rates()})

    async def topics(self, request: web.Request) -> web.Response:
        core = self._core()
        answer = []
        shown = set(self._visible(request, "topic", [t.name for t in core.admin.list()]))
        for summary in [t for t in core.admin.list() if t.name in shown]:
            logs = [core.topics.log(summary.name, p) for p in range(summary.partitions)]
            config = core.topics.info(summary.name).config.to_mapping()
            answer.append(
                {
                    "name": summary.name,
                    "partitions": summary.partitions,
                    "size_bytes": sum(lg.size_in_bytes for lg in logs),
                    "records": sum(lg.log_end_offset - lg.log_start_offset for lg in logs),
                    "retention.ms": config["retention.ms"],
                    "retention.bytes": config["retention.bytes"],
                    "cleanup.policy": config["cleanup.policy"],
                }
            )
        return json_response({"topics": answer})

    async def topic(self, request: web.Request) -> web.Response:
        core = self._core()
        name = request.match_info["topic"]
        self._allow(request, "Describe", Resource("topic", name))
        view = core.admin.describe(name)
        partitions = []
        for offsets in view.partitions:
            lg = core.topics.log(name, offsets.partition)
            partitions.append(
                {
                    "partition": offsets.partition,
                    "log_start_offset": offsets.log_start_offset,
                    "log_end_offset": offsets.log_end_offset,
                    "size_bytes": lg.size_in_bytes,
                    "segments": len(lg.segments),
                }
            )
        configs = [
            {"name": e.name, "value": e.value, "source": e.source.value}
            for e in topic_configs(core.topics, name)
        ]
        return json_response(
            {
                "name": name,
                "topic_id": view.topic_id,
                "partitions": partitions,
                "configs": configs,
                "write_rates": self.samples.write_rates(name),
            }
        )

    async def records(self, request: web.Request) -> web.Response:
        """One page of a partition's records from `offset`, from the first at or after `timestamp_ms`, or
        (`tail`) the last `limit` of them."""
        core = self._core()
        topic = request.match_info["topic"]
        self._allow(request, "Read", Resource("topic", topic))
        partition = as_int(request.match_info["partition"], "partition", minimum=0)
        limit = as_int(request.query.get("limit", "50"), "limit", minimum=1, maximum=MAX_PAGE)
        lg = core.topics.log(topic, partition)
        start, end = lg.log_start_offset, lg.log_end_offset
        if "timestamp_ms" in request.query:
            wanted = as_int(request.query["timestamp_ms"], "timestamp_ms", minimum=0)
            answer = core.list_offsets([OffsetQuery(topic, partition, OffsetSpec.TIMESTAMP, wanted)])[0]
            if answer.error is not None:
                raise answer.error
            offset = answer.offset if answer.offset >= 0 else end
        elif "tail" in request.query:  # the last `limit` records (the page's live tail)
            offset = max(start, end - limit)
        else:
            offset = as_int(request.query.get("offset", str(start)), "offset", minimum=0)
        if not start <= offset <= end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is out of range for {topic}-{partition}: pick one from {start} to {end}",
                log_start_offset=start,
                log_end_offset=end,
            )
        shown: list[dict[str, Any]] = []
        position = offset
        while len(shown) < limit and position < end:
            read = core.read_now([FetchSpec(topic, partition, position, READ_BYTES)], READ_BYTES)[0]
            if read.error is not None:
                raise read.error
            batch = [r for r in iter_records(read.records) if r.offset >= position]
            if not batch:
                break
            shown.extend(render_record(record) for record in batch[: limit - len(shown)])
            position = shown[-1]["offset"] + 1
        return json_response(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "next_offset": position,
                "log_start_offset": start,
                "log_end_offset": end,
                "records": shown,
            }
        )

    async def groups(self, request: web.Request) -> web.Response:
        core = self._core()
        listed = [
            {"group_id": g.group_id, "type": "consumer", "state": g.state.name, "members": g.member_count}
            for g in core.groups.list_groups()
        ]
        by_id = {g["group_id"]: g for g in listed}
        for classic in core.classic_groups.list_groups():  # Kafka clients' JoinGroup/SyncGroup groups
            if classic.member_count or classic.group_id not in by_id:
                by_id[classic.group_id] = {
                    "group_id": classic.group_id,
                    "type": "consumer",
                    "state": _classic_state(classic.state.value),
                    "members": classic.member_count,
                }
        listed = list(by_id.values())
        listed += [
            {"group_id": gid, "type": "share", "state": "STABLE" if stable else "EMPTY", "members": members}
            for gid, stable, members in core.share.list_groups()
        ]
        shown = set(self._visible(request, "group", [str(g["group_id"]) for g in listed]))
        listed = [g for g in listed if g["group_id"] in shown]
        listed.sort(key=lambda g: str(g["group_id"]))
        return json_response({"groups": listed})

    async def group(self, request: web.Request) -> web.Response:
        core = self._core()
        group_id = request.match_info["group"]
        self._allow(request, "Describe", Resource("group", group_id))
        view = core.groups.describe_group(group_id)
        d = view.description
        state, epoch, assignor = d.state.name, d.group_epoch, d.assignor
        classic = core.classic_groups.describe(group_id)
        classic_members: list[dict[str, object]] = []
        if classic is not None and classic.members:  # a Kafka client's group (classic protocol)
            state, epoch, assignor = (
                _classic_state(classic.state.value),
                classic.generation_id,
                classic.protocol_name,
            )
            classic_members = [
                {
                    "member_id": m.member_id,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "member_epoch": classic.generation_id,
                    "assigned": [],
                }
                for m in classic.members
            ]
        return json_response(
            {
                "group_id": d.group_id,
                "type": "consumer",
                "protocol": "classic" if classic_members else "consumer",
                "state": state,
                "group_epoch": epoch,
                "assignor": assignor,
                "members": classic_members
                or [
                    {
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "member_epoch": m.member_epoch,
                        "assigned": sorted(f"{tp.topic}-{tp.partition}" for tp in m.assigned_partitions),
                    }
                    for m in d.members
                ],
                "partitions": [
                    {
                        "topic": p.topic,
                        "partition": p.partition,
                        "committed_offset": p.committed_offset,
                        "log_end_offset": p.log_end_offset,
                        "lag": p.lag,
                        "member_id": p.member_id,
                    }
                    for p in view.progress
                ],
                "lag_history": self.samples.lag_history(group_id),
            }
        )

    async def share_group(self, request: web.Request) -> web.Response:
        core = self._core()
        group_id = request.match_info["group"]
        self._allow(request, "Describe", Resource("group", group_id))
        view = core.share.describe(group_id)
        return json_response(
            {
                "group_id": view.group_id,
                "type": "share",
                "state": "STABLE" if view.stable else "EMPTY",
                "group_epoch": view.group_epoch,
                "dead_letter_topic": view.dead_letter_topic,
                "members": [
                    {
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "topics": list(m.topic_names),
                        "acquired_records": m.acquired_records,
                    }
                    for m in view.members
                ],
                "partitions": [
                    {
                        "topic": p.topic,
                        "partition": p.partition,
                        "start_offset": p.start_offset,
                        "end_offset": p.end_offset,
                        "log_end_offset": p.log_end_offset,
                        "in_flight": p.in_flight_records,
                        "acquired": p.acquired_records,
                        "archived": p.archived_records,
                        "lag": p.lag,
                        "delivery_counts": {str(times): records for times, records in p.delivery_counts},
                    }
                    for p in view.partitions
                ],
                "configs": [
                    {"name": e.name, "value": e.value, "group_value": e.is_group_value}
                    for e in core.share.describe_config(group_id)
                ],
            }
        )

    # --- actions --------------------------------------------------------------------------------------

    async def create_topic(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        name = as_str(body, "name")
        self._allow(request, "Create", Resource("topic", name))
        partitions = as_int(body.get("partitions", 0), "partitions", minimum=0)
        view = await self._core().create_topic(name, partitions, as_str_map(body.get("config", {}), "config"))
        return json_response({"name": view.name, "partitions": len(view.partitions)}, status=201)

    async def delete_topic(self, request: web.Request) -> web.Response:
        name = request.match_info["topic"]
        self._allow(request, "Delete", Resource("topic", name))
        await self._core().delete_topic(name)
        return json_response({"deleted": name})

    async def alter_config(self, request: web.Request) -> web.Response:
        name = request.match_info["topic"]
        body = await read_body(request)
        self._allow(request, "AlterConfigs", Resource("topic", name))
        reset = body.get("reset", [])
        if not isinstance(reset, list) or not all(isinstance(r, str) for r in reset):
            raise BadRequest("reset must be a list of config names")
        view = await self._core().alter_topic_config(name, as_str_map(body.get("set", {}), "set"), reset)
        return json_response({"name": view.name, "config": view.config})

    async def produce(self, request: web.Request) -> web.Response:
        """Append one test record (text key, value and headers) with acks=all."""
        topic = request.match_info["topic"]
        body = await read_body(request)
        self._allow(request, "Write", Resource("topic", topic))
        partition = as_int(body.get("partition", 0), "partition", minimum=0)
        key = body.get("key")
        value = body.get("value")
        if (key is not None and not isinstance(key, str)) or (
            value is not None and not isinstance(value, str)
        ):
            raise BadRequest("key and value must be text (or null)")
        headers: list[tuple[str, bytes | None]] = [
            (k, v.encode()) for k, v in as_str_map(body.get("headers", {}), "headers").items()
        ]
        record = Record(
            0,
            int(time.time() * 1000),
            key=key.encode() if key is not None else None,
            value=value.encode() if value is not None else None,
            headers=headers,
        )
        entries = [ProduceEntry(topic, partition, build_batch([record]))]
        outcomes = await self._core().produce(entries, Acks.ALL, PRODUCE_TIMEOUT_S)
        self._broker.metrics.produced("console", entries, outcomes)
        outcome = outcomes[0]
        if outcome.error is not None:
            raise outcome.error
        return json_response(
            {"topic": topic, "partition": partition, "offset": outcome.base_offset}, status=201
        )

    async def reset_offsets(self, request: web.Request) -> web.Response:
        """Move a group's committed offsets; `dry_run` (the default) only answers what would change."""
        group_id = request.match_info["group"]
        body = await read_body(request)
        dry_run = body.get("dry_run", True)
        if not isinstance(dry_run, bool):
            raise BadRequest("dry_run must be true or false")
        try:
            mode = ResetMode[str(body.get("mode", "")).upper()]
        except KeyError:
            raise BadRequest(
                f"mode must be one of {', '.join(m.name.lower() for m in ResetMode)}, not {body.get('mode')!r}"
            ) from None
        spec = ResetSpec(
            mode,
            as_int(body.get("offset", 0), "offset"),
            as_int(body.get("timestamp_ms", 0), "timestamp_ms"),
            as_int(body.get("shift", 0), "shift"),
        )
        topic = body.get("topic")
        if topic is not None and not isinstance(topic, str):
            raise BadRequest("topic must be a topic name")
        scope = [(topic, ())] if topic else []
        if not dry_run:
            self._allow(request, "Alter", Resource("group", group_id))
        outcomes = await self._core().groups.reset_offsets(group_id, scope, spec, dry_run=dry_run)
        return json_response(
            {
                "dry_run": dry_run,
                "results": [
                    {
                        "topic": o.topic,
                        "partition": o.partition,
                        "previous_offset": o.previous_offset,
                        "new_offset": o.new_offset,
                    }
                    for o in outcomes
                ],
            }
        )


def _classic_state(kafka_name: str) -> str:
    """A classic group's state in the console's words (Kafka's `PreparingRebalance` -> PREPARING_REBALANCE)."""
    return "".join("_" + c if c.isupper() and i else c for i, c in enumerate(kafka_name)).upper()


async def _to_console(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/")


def _disk_used(root: Path) -> int:
    """Bytes the data directory really holds on disk (blocks, as `du`: active segments are sparse)."""
    used = 0
    for folder, _, files in os.walk(root):
        for file in files:
            with contextlib.suppress(OSError):
                used += os.lstat(os.path.join(folder, file)).st_blocks * 512
    return used


def _version() -> str:
    try:
        return metadata.version("logstore")
    except metadata.PackageNotFoundError:
        return "unknown"

"""All partitions under one data directory: topic metadata, start-up recovery, and background upkeep.

The data directory holds `meta.json` (topics, partition counts, per-topic config; rewritten atomically),
one folder per partition, and `.clean-shutdown`, present only between a clean stop and the next start.
Without that marker, every partition re-checks its segments past its recovery checkpoint byte by byte.
A `.lock` file held with `flock` keeps a second broker off the same directory.

Nothing here deletes data it did not decide to delete. `meta.json` is the only record of what the
partition folders are, so a missing or unreadable one stops the start (`recover_metadata` rebuilds it from
the folder names); a folder no topic owns is moved into `unowned/`, never removed. A topic is created
all or nothing (partitions first, then `meta.json`), and deleted by renaming its folders to
`<topic>-<p>.<topic id>-delete` before `meta.json` forgets it: such a folder is the only kind ever removed
at start, and only once `meta.json` no longer names that topic id.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logstore.checkpoint import (
    fsync_dir,
    read_json,
    read_offset_checkpoint,
    write_json_atomic,
    write_offset_checkpoint,
)
from logstore.cleaner import compact_log
from logstore.config import TopicConfig
from logstore.errors import (
    InvalidConfigError,
    InvalidPartitionCountError,
    InvalidTopicError,
    LogClosedError,
    MetadataError,
    PartitionOfflineError,
    StorageError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)
from logstore.io_errors import describe, io_errors
from logstore.log import Log, RecoveryInfo, now_ms
from logstore.open_segments import OpenSegments
from logstore.retention import SegmentStats, segments_to_delete

log = logging.getLogger(__name__)

META_FILE = "meta.json"
CLEAN_SHUTDOWN_MARKER = ".clean-shutdown"
LOCK_FILE = ".lock"
RECOVERY_CHECKPOINT = "recovery-checkpoint"
MAX_TOPIC_NAME = 249
MAX_PARTITIONS = 10_000
"""The hard ceiling of partitions per topic; the broker's own limit (`max_partitions`) may be lower."""
UNOWNED_DIR = "unowned"
"""Where folders that no topic owns are moved at start, so that nothing unknown is ever deleted."""
RECOVER_HINT = "start once with --recover-metadata to rebuild the topic list from the partition folders"
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]+")
_DELETED_SUFFIX = "-delete"
_PARTITION_DIR = re.compile(r"(?P<topic>.+)-(?P<partition>0|[1-9][0-9]*)")
_DELETE_DIR = re.compile(r"(?P<topic>.+)-(?P<partition>0|[1-9][0-9]*)\.(?P<topic_id>[0-9a-f]{32})-delete")
_LOOKS_LIKE_PARTITION = re.compile(r".+-[0-9]+")
_RECOVERED_RETENTION = {"retention.ms": -1, "retention.bytes": -1}
"""A rebuilt topic keeps everything until someone sets its retention again: its old config is lost."""


def validate_topic_name(name: str) -> None:
    """Kafka's rule, which also keeps every name inside the data directory."""
    if not isinstance(name, str) or not name:
        raise InvalidTopicError("topic name is empty; use 1 to 249 of the characters A-Z a-z 0-9 . _ -")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicError(f"topic name is {len(name)} characters long; the limit is {MAX_TOPIC_NAME}")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed")
    if not _TOPIC_NAME.fullmatch(name):
        bad = sorted({c for c in name if not _TOPIC_NAME.fullmatch(c)})
        raise InvalidTopicError(
            f"topic name {name!r} contains {''.join(bad)!r}; only A-Z a-z 0-9 . _ - are allowed"
        )


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    config: TopicConfig
    topic_id: str


@dataclass(frozen=True)
class Intervals:
    """How often the background thread does each kind of upkeep, in milliseconds."""

    tick_ms: int = 200
    retention_ms: int = 5 * 60 * 1000
    compaction_ms: int = 15 * 1000
    checkpoint_ms: int = 60 * 1000


class LogManager:
    """Owns every partition's Log under `data_dir` and keeps them recovered, flushed, retained, compacted.

    Thread-safe: topic changes serialise on one lock; each partition's Log has its own (see Log).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        default_config: TopicConfig | None = None,
        clock_ms: Callable[[], int] = now_ms,
        background: bool = True,
        intervals: Intervals | None = None,
        max_partitions: int = MAX_PARTITIONS,
        recover_metadata: bool = False,
        recovered_configs: Mapping[str, Mapping[str, Any]] | None = None,
        max_open_segments: int | None = None,
        on_fsync: Callable[[float], None] | None = None,
    ) -> None:
        """`recover_metadata` rebuilds a missing `meta.json` from the partition folders (otherwise its
        absence beside partition folders stops the start); `recovered_configs` gives the config of
        topics whose settings the caller knows (its internal topics) when they are rebuilt so.
        `max_open_segments`: how many segments may hold their files open at once, across all partitions
        (None: half the process's descriptor limit, at six descriptors a segment); idle ones beyond it
        release their files and reopen on demand. `on_fsync` is told the seconds each partition flush
        spent in fsync, from whichever thread flushed (the broker's metrics; the engine stays unaware)."""
        if not _is_int(max_partitions) or not 1 <= max_partitions <= MAX_PARTITIONS:
            raise ValueError(f"max_partitions must be between 1 and {MAX_PARTITIONS}, not {max_partitions}")
        self.data_dir = Path(data_dir)
        self.open_segments = OpenSegments(max_open_segments)
        self.default_config = default_config or TopicConfig()
        self.max_partitions = max_partitions
        self._recover_metadata = recover_metadata
        self._recovered_configs = dict(recovered_configs or {})
        self._clock_ms = clock_ms
        self._on_fsync = on_fsync
        self.intervals = intervals or Intervals()
        self._lock = threading.RLock()
        self._topics: dict[str, TopicInfo] = {}
        self._logs: dict[str, list[Log]] = {}
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock_data_dir()
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        self.clean_shutdown = marker.exists()
        self.recovery: list[RecoveryInfo] = []
        try:
            # Read and check the topic list first: a start refused for it leaves the directory untouched.
            rebuilt = self._read_topic_list()
            # The marker vouches for the files exactly as the clean stop left them, and opening a partition
            # changes them (its active segment grows back to the preallocated size). So it goes before the
            # first partition is opened: from here on a crash, even one during start-up, must be noticed.
            if self.clean_shutdown:
                marker.unlink()
                fsync_dir(self.data_dir)
            self._load(rebuilt)
        except OSError as exc:
            self._release_data_dir()
            raise StorageError(
                f"cannot open data directory {self.data_dir}: {describe(exc, 'opening', self.data_dir)}"
            ) from exc
        except BaseException:
            self._release_data_dir()
            raise
        if background:
            self._thread = threading.Thread(target=self._background, name="logstore-upkeep", daemon=True)
            self._thread.start()

    # --- start-up ---------------------------------------------------------------------------------------

    def _lock_data_dir(self) -> int:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(
                f"data directory {self.data_dir} is in use by another broker (could not lock {LOCK_FILE})"
            ) from None
        return fd

    def _release_data_dir(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _read_topic_list(self) -> bool:
        """Fill `_topics` from `meta.json` (or rebuild it from the folders); True if rebuilt."""
        meta_path = self.data_dir / META_FILE
        if meta_path.exists() or meta_path.is_symlink():
            self._topics = self._read_meta(meta_path)
            if self._recover_metadata:
                log.info("%s is present: --recover-metadata has nothing to do", meta_path)
        else:
            found = sorted(
                path.name
                for path in self.data_dir.iterdir()
                if path.is_dir()
                and (_LOOKS_LIKE_PARTITION.fullmatch(path.name) or path.name.endswith(_DELETED_SUFFIX))
            )
            if found and not self._recover_metadata:
                shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
                raise MetadataError(
                    f"{self.data_dir} holds {len(found)} partition folders ({shown}) but no {META_FILE}, the "
                    f"file that names the topics, their partition counts and configs; refusing to start "
                    f"rather than guess. Restore {meta_path} from a backup, or {RECOVER_HINT} "
                    "(partition counts from the folder names, default configs with retention off)"
                )
            if found:
                self._topics = self._rebuild_topics()
                return True
        return False

    def _load(self, rebuilt: bool) -> None:
        """Settle unowned folders, then open (and if need be recover) every partition."""
        self._tidy(rebuilt)
        for info in self._topics.values():
            missing = [p for p in range(info.partitions) if not self._partition_dir(info.name, p).is_dir()]
            if missing and not rebuilt:
                log.warning(
                    "topic %s: the folders of partitions %s are missing although %s names them; "
                    "they start empty",
                    info.name,
                    _ranges(missing),
                    META_FILE,
                )
            self._logs[info.name] = [self._open_log(info, p) for p in range(info.partitions)]
            self.recovery.extend(log.recovery for log in self._logs[info.name])
        if rebuilt:
            self._write_meta()
            log.warning(
                "wrote a new %s for the %d topics rebuilt from their folders", META_FILE, len(self._topics)
            )
        if not self.clean_shutdown and self._topics:
            truncated = sum(info.truncated_bytes for info in self.recovery)
            log.info(
                "recovered %d partitions after an unclean shutdown; %d bytes of torn or corrupt data truncated",
                len(self.recovery),
                truncated,
            )

    def _read_meta(self, path: Path) -> dict[str, TopicInfo]:
        """Parse and check `meta.json` completely: a wrong field is refused with a message, not a traceback."""
        way_out = f"restore it from a backup, or move it aside and {RECOVER_HINT}"
        try:
            document = read_json(path)
        except OSError as exc:
            raise MetadataError(f"cannot read {path}: {exc.strerror or exc}; {way_out}") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise MetadataError(f"{path} is not valid JSON ({exc}); {way_out}") from None

        def bad(why: str) -> MetadataError:
            return MetadataError(f"{path} is not a valid topic list: {why}; {way_out}")

        if not isinstance(document, dict):
            raise bad(f"expected an object with 'version' and 'topics', found {type(document).__name__}")
        if document.get("version") != 1:
            raise bad(f"version is {document.get('version')!r}; this broker reads version 1")
        entries = document.get("topics")
        if not isinstance(entries, dict):
            raise bad(f"'topics' must be an object of topic name to entry, not {type(entries).__name__}")
        topics: dict[str, TopicInfo] = {}
        for name, entry in sorted(entries.items()):
            try:
                validate_topic_name(name)
            except InvalidTopicError as exc:
                raise bad(str(exc)) from None
            if not isinstance(entry, dict):
                raise bad(f"topic {name!r}: the entry must be an object, not {type(entry).__name__}")
            partitions, config, topic_id = entry.get("partitions"), entry.get("config"), entry.get("topic_id")
            if (
                not isinstance(partitions, int)
                or isinstance(partitions, bool)
                or not 1 <= partitions <= MAX_PARTITIONS
            ):
                raise bad(
                    f"topic {name!r}: 'partitions' must be a whole number 1 to {MAX_PARTITIONS}, not {partitions!r}"
                )
            if not isinstance(config, dict):
                raise bad(f"topic {name!r}: 'config' must be an object, not {type(config).__name__}")
            if not isinstance(topic_id, str) or not topic_id:
                raise bad(f"topic {name!r}: 'topic_id' must be a non-empty string, not {topic_id!r}")
            try:
                topic_config = TopicConfig.from_mapping(config, base=self.default_config)
            except InvalidConfigError as exc:
                raise bad(f"topic {name!r}: {exc}") from None
            topics[name] = TopicInfo(name, partitions, topic_config, topic_id)
        return topics

    def _rebuild_topics(self) -> dict[str, TopicInfo]:
        """Topics from the partition folder names, for `recover_metadata`: `orders-0`..`orders-5` is a
        topic of six partitions. Configs were in `meta.json` and are gone: defaults with retention off."""
        found: dict[str, set[int]] = {}
        for path in self.data_dir.iterdir():
            match = _PARTITION_DIR.fullmatch(path.name)
            if not path.is_dir() or match is None:
                continue
            topic, partition = match["topic"], int(match["partition"])
            try:
                validate_topic_name(topic)
            except InvalidTopicError:
                continue  # not a name a topic can have: moved aside as unowned
            if partition < MAX_PARTITIONS:
                found.setdefault(topic, set()).add(partition)
        topics: dict[str, TopicInfo] = {}
        for topic, partitions in sorted(found.items()):
            count = max(partitions) + 1
            known = self._recovered_configs.get(topic)
            overrides = dict(known) if known is not None else dict(_RECOVERED_RETENTION)
            config = TopicConfig.from_mapping(overrides, base=self.default_config)
            topics[topic] = TopicInfo(topic, count, config, uuid.uuid4().hex)
            gaps = sorted(set(range(count)) - partitions)
            log.warning(
                "rebuilt topic %s with %d partitions from its folders%s; %s",
                topic,
                count,
                f" (partitions {_ranges(gaps)} had no folder and start empty)" if gaps else "",
                "it has the config this broker gives it"
                if known is not None
                else "its config was lost: it has the broker's defaults with retention off "
                "(retention.ms=-1, retention.bytes=-1) until you set it again",
            )
        return topics

    def _partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def _deleted_dir(self, info: TopicInfo, partition: int) -> Path:
        """Where a partition's folder goes while its topic is deleted (Kafka's `topic-p.id-delete`)."""
        return self.data_dir / f"{info.name}-{partition}.{info.topic_id}{_DELETED_SUFFIX}"

    def _open_log(self, info: TopicInfo, partition: int) -> Log:
        directory = self._partition_dir(info.name, partition)
        recovery_point = read_offset_checkpoint(directory / RECOVERY_CHECKPOINT)
        try:
            return Log(
                directory,
                info.name,
                partition,
                info.config,
                clean_shutdown=self.clean_shutdown,
                recovery_point=recovery_point,
                clock_ms=self._clock_ms,
                open_segments=self.open_segments,
                on_fsync=self._on_fsync,
            )
        except OSError as exc:
            raise StorageError(
                f"cannot open partition {info.name}-{partition}: {describe(exc, 'opening', directory)}"
            ) from exc

    def _tidy(self, rebuilt: bool) -> None:
        """Settle every folder the topic list does not name: finish or undo an interrupted delete, and move
        anything else that looks like a partition into `unowned/`. Other folders are not ours: left alone."""
        wanted = {f"{name}-{p}" for name, info in self._topics.items() for p in range(info.partitions)}
        live_ids = {info.topic_id: info for info in self._topics.values()}
        for path in sorted(self.data_dir.iterdir()):
            name = path.name
            if not path.is_dir() or name in wanted or name == UNOWNED_DIR:
                continue
            deleted = _DELETE_DIR.fullmatch(name)
            if deleted is not None and not rebuilt:
                info = live_ids.get(deleted["topic_id"])
                partition = int(deleted["partition"])
                original = self._partition_dir(deleted["topic"], partition)
                if info is None:
                    log.info("removing %s: the deletion of its topic was decided and is finished now", name)
                    try:
                        shutil.rmtree(path)
                    except OSError as exc:
                        log.warning("could not remove %s (%s); the next start tries again", name, exc)
                    continue
                if info.name == deleted["topic"] and partition < info.partitions and not original.exists():
                    log.warning(
                        "restoring %s to %s: deleting topic %s was cut short before %s forgot it, so the "
                        "topic is kept; delete it again if you meant to",
                        name,
                        original.name,
                        info.name,
                        META_FILE,
                    )
                    os.rename(path, original)
                    fsync_dir(self.data_dir)
                    continue
            if deleted is not None and rebuilt:
                reason = (
                    f"it is a topic deletion in progress when {META_FILE} was lost; "
                    "whether it was decided cannot be told"
                )
            elif deleted is not None:
                reason = f"its topic {deleted['topic']!r} is still listed but its partition folder exists too"
            elif name.endswith(_DELETED_SUFFIX):
                reason = "the broker did not name it so (it removes only folders of topics it deleted)"
            elif _LOOKS_LIKE_PARTITION.fullmatch(name):
                reason = f"no topic in {META_FILE} owns it"
            else:
                continue
            self._set_aside(path, reason)

    def _set_aside(self, path: Path, reason: str) -> Path:
        """Move a folder into `unowned/` under a free name, with a WARNING; nothing is deleted."""
        aside = self.data_dir / UNOWNED_DIR
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        suffix = 1
        while target.exists() or target.is_symlink():
            target = aside / f"{path.name}.{suffix}"
            suffix += 1
        os.rename(path, target)
        fsync_dir(aside)
        fsync_dir(self.data_dir)
        log.warning(
            "moved %s to %s: %s. Nothing in it was deleted; restore it by hand or remove it when not needed",
            path.name,
            target,
            reason,
        )
        return target

    def _write_meta(self) -> None:
        topics = {
            name: {"partitions": info.partitions, "config": info.config.to_json(), "topic_id": info.topic_id}
            for name, info in self._topics.items()
        }
        write_json_atomic(self.data_dir / META_FILE, {"version": 1, "topics": topics})

    # --- topics -----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the log manager is closed")

    def create_topic(
        self,
        name: str,
        partitions: int,
        config: Mapping[str, Any] | None = None,
        *,
        topic_id: str | None = None,
    ) -> TopicInfo:
        """Create a topic, all or nothing: its partitions are opened first and `meta.json` written last, so
        a failure midway (out of descriptors, disk full) leaves no trace and the topic does not exist.
        `topic_id` (32 hex digits) is given by a cluster, so every broker names the topic alike; else new."""
        validate_topic_name(name)
        if topic_id is not None and not re.fullmatch(r"[0-9a-f]{32}", topic_id):
            raise InvalidTopicError(
                f"topic {name!r}: a topic id is 32 lowercase hex digits, not {topic_id!r}"
            )
        if not _is_int(partitions) or not 1 <= partitions <= self.max_partitions:
            raise InvalidPartitionCountError(
                f"topic {name!r}: partition count must be between 1 and {self.max_partitions} "
                f"(this broker's limit per topic), not {partitions}"
            )
        topic_config = TopicConfig.from_mapping(config or {}, base=self.default_config)
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise TopicExistsError(f"topic {name!r} already exists")
            clash = _collision(name, self._topics)
            if clash:
                raise InvalidTopicError(
                    f"topic {name!r} collides with existing topic {clash!r}: '.' and '_' may not be the only "
                    "difference between two names"
                )
            info = TopicInfo(name, partitions, topic_config, topic_id or uuid.uuid4().hex)
            logs = self._open_new_logs(info, range(partitions), f"topic {name!r}")
            self._topics[name] = info
            self._logs[name] = logs
            try:
                self._write_meta()
            except OSError as exc:
                del self._topics[name], self._logs[name]
                self._discard(logs, [log.directory for log in logs])
                raise StorageError(
                    f"could not create topic {name!r}: {describe(exc, 'writing', self.data_dir / META_FILE)}; "
                    "nothing was created"
                ) from exc
        log.info("created topic %s with %d partitions", name, partitions)
        return info

    def _open_new_logs(self, info: TopicInfo, partitions: range, what: str) -> list[Log]:
        """Open fresh partitions; on any failure close and remove the ones opened here, then raise."""
        opened: list[Log] = []
        created: list[Path] = []
        partition = partitions.start
        try:
            for partition in partitions:
                directory = self._partition_dir(info.name, partition)
                if directory.exists() or directory.is_symlink():
                    self._set_aside(directory, f"new partition {info.name}-{partition} needs the name")
                created.append(directory)
                opened.append(
                    Log(
                        directory,
                        info.name,
                        partition,
                        info.config,
                        clock_ms=self._clock_ms,
                        open_segments=self.open_segments,
                        on_fsync=self._on_fsync,
                    )
                )
        except BaseException as exc:
            self._discard(opened, created)
            if isinstance(exc, OSError):
                where = self._partition_dir(info.name, partition)
                raise StorageError(
                    f"could not create {what}: "
                    f"{describe(exc, f'opening partition {partition} of {len(partitions)} new ones in', where)}"
                    "; nothing was created"
                ) from exc
            raise
        return opened

    @staticmethod
    def _discard(logs: list[Log], directories: list[Path]) -> None:
        """Undo a creation: close the new partitions and remove their folders, which this call made."""
        for partition_log in logs:
            try:
                partition_log.delete()
            except Exception:
                log.exception("could not close %r while undoing its creation", partition_log)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)

    def delete_topic(self, name: str) -> None:
        """Delete a topic: its folders are renamed to `-delete` while `meta.json` still lists it, then
        `meta.json` forgets it, then the folders go. A crash between the steps is recognised at start."""
        with self._lock:
            self._check_open()
            info = self.topic(name)
            logs = self._logs[name]
            renamed: list[tuple[Path, Path]] = []
            try:
                for partition_log in logs:
                    try:
                        partition_log.close()
                    except PartitionOfflineError:  # its last flush failed; its data goes anyway
                        partition_log.close()  # offline now: only lets go of its files
                for partition in range(info.partitions):
                    source = self._partition_dir(name, partition)
                    if source.exists():
                        target = self._deleted_dir(info, partition)
                        os.rename(source, target)
                        renamed.append((source, target))
                fsync_dir(self.data_dir)
                del self._topics[name]
                self._write_meta()
            except OSError as exc:
                self._undo_delete(info, logs, renamed)
                doing = describe(exc, "renaming its folders in", self.data_dir)
                raise StorageError(f"could not delete topic {name!r}: {doing}; the topic is kept") from exc
            del self._logs[name]
        for _, target in renamed:
            try:
                shutil.rmtree(target)
            except OSError as exc:
                log.warning("could not remove %s (%s); the next start finishes the deletion", target, exc)
        log.info("deleted topic %s", name)

    def _undo_delete(self, info: TopicInfo, logs: list[Log], renamed: list[tuple[Path, Path]]) -> None:
        """Put a topic whose deletion failed back as it was: folders renamed back, closed logs reopened."""
        for source, target in reversed(renamed):
            try:
                os.rename(target, source)
            except OSError:
                log.exception("could not rename %s back to %s", target, source)
        self._topics[info.name] = info
        self._logs[info.name] = [
            self._open_log(info, p) if partition_log.closed else partition_log
            for p, partition_log in enumerate(logs)
        ]

    def add_partitions(self, name: str, total_partitions: int) -> TopicInfo:
        """Grow a topic, all or nothing like `create_topic`: new partitions first, `meta.json` last."""
        with self._lock:
            self._check_open()
            info = self.check_partition_count(name, total_partitions)
            new = TopicInfo(name, total_partitions, info.config, info.topic_id)
            added = self._open_new_logs(
                new, range(info.partitions, total_partitions), f"partitions of {name!r}"
            )
            logs = self._logs[name]
            self._topics[name] = new
            self._logs[name] = logs + added
            try:
                self._write_meta()
            except OSError as exc:
                self._topics[name], self._logs[name] = info, logs
                self._discard(added, [log.directory for log in added])
                raise StorageError(
                    f"could not add partitions to {name!r}: {describe(exc, 'writing', self.data_dir / META_FILE)}"
                    "; nothing was added"
                ) from exc
        log.info("topic %s now has %d partitions", name, total_partitions)
        return new

    def check_partition_count(self, name: str, total_partitions: int) -> TopicInfo:
        """The topic's info if it may grow to `total_partitions` (what `add_partitions` checks first)."""
        info = self.topic(name)
        if not _is_int(total_partitions) or not info.partitions < total_partitions <= self.max_partitions:
            raise InvalidPartitionCountError(
                f"topic {name!r} has {info.partitions} partitions; the new count must be larger "
                f"(and at most {self.max_partitions}, this broker's limit per topic), not {total_partitions}"
            )
        return info

    def alter_config(self, name: str, updates: Mapping[str, Any]) -> TopicInfo:
        with self._lock:
            self._check_open()
            info = self.topic(name)
            config = TopicConfig.from_mapping(updates, base=info.config)
            new = TopicInfo(name, info.partitions, config, info.topic_id)
            self._topics[name] = new
            try:
                self._write_meta()
            except OSError as exc:
                self._topics[name] = info
                raise StorageError(
                    f"could not alter the config of {name!r}: {describe(exc, 'writing', self.data_dir / META_FILE)}"
                    "; nothing was changed"
                ) from exc
            for partition_log in self._logs[name]:
                partition_log.config = config
        log.info("altered config of topic %s: %s", name, dict(updates))
        return new

    def topic(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        return info

    def topics(self) -> list[TopicInfo]:
        with self._lock:
            return sorted(self._topics.values(), key=lambda info: info.name)

    def log(self, topic: str, partition: int) -> Log:
        logs = self._logs.get(topic)
        if logs is None:
            raise UnknownTopicError(f"topic {topic!r} does not exist")
        if not _is_int(partition) or not 0 <= partition < len(logs):
            raise UnknownPartitionError(
                f"topic {topic!r} has partitions 0 to {len(logs) - 1}; there is no partition {partition}"
            )
        return logs[partition]

    def all_logs(self) -> list[Log]:
        with self._lock:
            return [partition_log for logs in self._logs.values() for partition_log in logs]

    # --- upkeep -----------------------------------------------------------------------------------------

    def flush(self) -> None:
        for partition_log in self.all_logs():
            if partition_log.offline is None:
                partition_log.flush()

    @contextmanager
    def _upkeep(self, job: str, partition_log: Log) -> Iterator[None]:
        """One partition's share of a background job: a storage error stops that partition only.

        The error is logged (an offline partition has said so already) and the job goes on with the
        other partitions; clients of this one get STORAGE_ERROR.
        """
        try:
            yield
        except PartitionOfflineError:
            pass  # logged at ERROR when the partition went offline
        except StorageError as exc:
            log.error("%s of %s-%d failed: %s", job, partition_log.topic, partition_log.partition, exc)

    def flush_due(self, now: int | None = None) -> int:
        """Flush the partitions whose flush policy says so; returns how many were flushed."""
        now = self._clock_ms() if now is None else now
        count = 0
        for partition_log in self.all_logs():
            if not partition_log.closed and partition_log.flush_due(now):
                with self._upkeep("flush", partition_log):
                    partition_log.flush()
                    count += 1
        return count

    def write_checkpoints(self) -> None:
        """Write each partition's recovery checkpoint, and its high watermark and leader-epoch checkpoint
        where they changed (`Log.write_checkpoints`). One that cannot be written takes its partition
        offline, as Kafka takes a log directory offline: the disk under it is failing."""
        for partition_log in self.all_logs():
            if not partition_log.closed:
                with self._upkeep("recovery checkpoint", partition_log):
                    self._checkpoint(partition_log, partition_log.flushed_offset)
                    partition_log.write_checkpoints()

    @staticmethod
    def _checkpoint(partition_log: Log, offset: int) -> None:
        path = partition_log.directory / RECOVERY_CHECKPOINT
        with io_errors("writing the recovery checkpoint", path, on_error=partition_log.take_offline):
            write_offset_checkpoint(path, offset)

    def run_retention(self, now_ms: int | None = None) -> int:
        """Delete closed segments past their topic's retention; returns how many were deleted."""
        now = self._clock_ms() if now_ms is None else now_ms
        deleted = 0
        for partition_log in self.all_logs():
            config = partition_log.config
            if not config.delete or partition_log.closed:
                continue
            with self._upkeep("retention", partition_log):
                if config.retention_ms >= 0:
                    partition_log.roll_if_older_than(now - config.retention_ms)
                closed = [SegmentStats(s.size, s.max_timestamp) for s in partition_log.closed_segments()]
                count = segments_to_delete(
                    closed,
                    total_size=partition_log.size_in_bytes,
                    now_ms=now,
                    retention_ms=config.retention_ms,
                    retention_bytes=config.retention_bytes,
                )
                if count:
                    count = partition_log.delete_oldest_segments(count)
                    deleted += count
                if count:
                    log.info(
                        "retention deleted %d segments of %s-%d; log start offset is now %d",
                        count,
                        partition_log.topic,
                        partition_log.partition,
                        partition_log.log_start_offset,
                    )
        return deleted

    def run_compaction(self, now_ms: int | None = None) -> int:
        """Compact the partitions of compacted topics that have enough dirty data; returns how many."""
        now = self._clock_ms() if now_ms is None else now_ms
        compacted = 0
        for partition_log in self.all_logs():
            if partition_log.config.compact and not partition_log.closed:
                with self._upkeep("compaction", partition_log):
                    compacted += compact_log(partition_log, now)
        return compacted

    def _background(self) -> None:
        intervals = self.intervals
        last = {"retention": self._clock_ms(), "compaction": self._clock_ms(), "checkpoint": self._clock_ms()}
        jobs: list[tuple[str, int, Callable[[], object]]] = [
            ("retention", intervals.retention_ms, self.run_retention),
            ("compaction", intervals.compaction_ms, self.run_compaction),
            ("checkpoint", intervals.checkpoint_ms, self.write_checkpoints),
        ]
        while not self._stop.wait(intervals.tick_ms / 1000):
            try:
                self.flush_due()
                now = self._clock_ms()
                for name, every, job in jobs:
                    if now - last[name] >= every:
                        last[name] = now
                        job()
            except LogClosedError:
                continue  # a topic was deleted under us; the next tick sees the new set
            except Exception:
                log.exception("background upkeep failed; will retry")

    # --- shutdown ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop upkeep, flush and close every partition, then mark the shutdown clean."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        clean = True
        for partition_log in self.all_logs():
            partition_log.close()
            if partition_log.offline is None:
                with self._upkeep("closing", partition_log):
                    self._checkpoint(partition_log, partition_log.log_end_offset)
            if partition_log.offline is not None:
                clean = False  # its files are as the disk failure left them: the next start recovers them
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        try:
            with io_errors("marking the shutdown clean with", marker):
                if clean:
                    marker.write_bytes(b"")
                fsync_dir(self.data_dir)
        finally:
            self._release_data_dir()

    def __enter__(self) -> LogManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_int(value: object) -> bool:
    """An int that is not a bool: `True` would otherwise pass for one partition and be stored as `true`."""
    return isinstance(value, int) and not isinstance(value, bool)


def _collision(name: str, topics: Mapping[str, object]) -> str | None:
    """Kafka forbids names differing only by '.' vs '_' (they collide in metric names); so do we."""
    folded = name.replace(".", "_")
    for other in topics:
        if other.replace(".", "_") == folded:
            return other
    return None


def _ranges(numbers: list[int]) -> str:
    """`[0, 1, 2, 5]` as '0-2, 5', for messages about many partitions."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)

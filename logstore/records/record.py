"""One decoded record, as consumers see it."""

from __future__ import annotations

from .layout import CREATE_TIME

Header = tuple[str, bytes | None]


class Record:
    """A record with its absolute offset and effective timestamp.

    A plain ``__slots__`` class rather than a dataclass: readers create one per record, and this is the
    cheapest Python object with named, mutable fields. ``headers`` is a list of ``(str key, bytes-or-None
    value)`` pairs in wire order. Most records have none, so the reader stores None and the list is made
    on first access: one allocation (and one object for the garbage collector to track) less per record.
    """

    __slots__ = ("_headers", "key", "offset", "timestamp", "timestamp_type", "value")

    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    _headers: list[Header] | None

    def __init__(
        self,
        offset: int,
        timestamp: int,
        timestamp_type: int = CREATE_TIME,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: list[Header] | None = None,
    ) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.timestamp_type = timestamp_type
        self.key = key
        self.value = value
        self._headers = headers

    @property
    def headers(self) -> list[Header]:
        headers = self._headers
        if headers is None:
            headers = self._headers = []
        return headers

    @headers.setter
    def headers(self, headers: list[Header]) -> None:
        self._headers = headers

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (
            self.offset == other.offset
            and self.timestamp == other.timestamp
            and self.timestamp_type == other.timestamp_type
            and self.key == other.key
            and self.value == other.value
            and list(self._headers or ()) == list(other._headers or ())
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return (
            f"Record(offset={self.offset!r}, timestamp={self.timestamp!r}, "
            f"timestamp_type={self.timestamp_type!r}, key={self.key!r}, value={self.value!r}, "
            f"headers={self.headers!r})"
        )

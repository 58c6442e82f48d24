"""The one place an `OSError` from the disk becomes an engine error (Kafka's `maybeHandleIOException`).

Every engine path that touches files runs inside `io_errors(doing, path)`: an `OSError` (EIO, ENOSPC,
EMFILE, EACCES...) leaves it as one `StorageError` whose message says what was being done and names the
file, or, when the caller passes `on_error`, as whatever that returns (a `Log` takes its partition offline
with a `PartitionOfflineError`). Nothing above the engine ever sees a bare `OSError`, so the broker maps
storage failures in one table entry (STORAGE_ERROR) and never answers them as an internal error.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from logstore.errors import StorageError

PathLike = str | os.PathLike[str]
PathSource = PathLike | Callable[[], PathLike] | None
"""The file concerned, or a callable that names it when the error happens (the active segment may change)."""


def failed_file(error: OSError, path: PathSource = None) -> str | None:
    """The file an error concerns: the one the OS named (an `open` or `rename`), else the caller's."""
    if error.filename:
        return os.fsdecode(error.filename)
    if callable(path):
        try:
            path = path()
        except Exception:  # naming the file must never hide the error itself
            return None
    return None if path is None else os.fspath(path)


def describe(error: OSError, doing: str, path: PathSource = None) -> str:
    """'<doing> <file> failed: [Errno 5] EIO (Input/output error)': what, where and why, in one line."""
    where = failed_file(error, path)
    code = errno.errorcode.get(error.errno, str(error.errno)) if error.errno is not None else None
    reason = error.strerror or str(error) or type(error).__name__
    why = f"[Errno {error.errno}] {code} ({reason})" if code is not None else reason
    return f"{doing}{f' {where}' if where else ''} failed: {why}"


def storage_error(error: OSError, doing: str, path: PathSource = None) -> StorageError:
    """A `StorageError` for `error` that names the file (raise it `from error`)."""
    return StorageError(describe(error, doing, path))


@contextmanager
def io_errors(
    doing: str,
    path: PathSource = None,
    *,
    on_error: Callable[[OSError, str, PathSource], StorageError] | None = None,
) -> Iterator[None]:
    """Turn an `OSError` raised inside the block into one `StorageError` (or `on_error`'s answer).

    `doing` reads as the start of a sentence ("reading", "deleting segment"); `path` is the file concerned
    when the OS does not name it itself (`pwritev`, `fsync` on a descriptor). Usable as a decorator too.
    """
    try:
        yield
    except OSError as exc:
        raise (storage_error if on_error is None else on_error)(exc, doing, path) from exc

"""Every class that holds a lock says in its docstring whether it is thread-safe (Kafka's "not thread-safe"
line): a reader must not have to study the locking to know whether an object may be shared."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("logstore", "broker", "client")
SYNCHRONISERS = {"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier"}
"""threading's (and asyncio's) primitives: a class that makes one shares state with another thread or task."""


def _makes_synchroniser(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    return name in SYNCHRONISERS


def _holds_lock(cls: ast.ClassDef) -> bool:
    """Whether a method stores a new lock, condition or event in an attribute (`self._lock = Lock()`)."""
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            on_self = any(isinstance(t, ast.Attribute) for t in targets)
            if on_self and any(_makes_synchroniser(sub) for sub in ast.walk(node.value)):
                return True
    return False


def classes_with_locks() -> list[tuple[str, ast.ClassDef]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef) and _holds_lock(node):
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node))
    return found


def test_the_walk_finds_the_classes_that_hold_locks() -> None:
    names = {where.rsplit(" ", 1)[1] for where, _ in classes_with_locks()}
    assert {"Log", "LogManager", "LogSegment", "OpenSegments", "Producer", "Consumer", "Sender"} <= names


def test_every_class_with_a_lock_says_whether_it_is_thread_safe() -> None:
    silent = [
        where
        for where, cls in classes_with_locks()
        if "thread-safe" not in (ast.get_docstring(cls) or "").lower()
    ]
    assert not silent, "say 'Thread-safe' or 'Not thread-safe' (and why) in the docstring of: " + ", ".join(
        silent
    )

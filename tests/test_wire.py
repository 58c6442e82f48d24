"""The committed stubs in wire/ match proto/, and the contract stands on its own."""

from __future__ import annotations

import re
from pathlib import Path

from logstore.wire import generate

GENERATED = generate.WIRE_ROOT / "logstore"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    fresh, committed = _tree(tmp_path / "logstore"), _tree(GENERATED)
    assert sorted(fresh) == sorted(committed), "wire/ is out of date: run `python -m logstore.wire.generate`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, (
        f"wire/ differs from proto/ in {stale}: run `python -m logstore.wire.generate` and commit"
    )


def test_stubs_import_the_wire_package_never_the_storage_engine() -> None:
    for path in GENERATED.rglob("*.py*"):
        text = path.read_text()
        assert not re.search(
            r"^(from|import) logstore(\.v\d|\b(?!\.wire\.logstore\.v\d))", text, re.MULTILINE
        ), path


def test_protos_import_only_their_own_package_or_well_known_types() -> None:
    for source in generate.proto_files():
        text = (generate.PROTO_ROOT / source).read_text()
        assert re.search(r"^package logstore\.v1;$", text, re.MULTILINE), source
        for imported in re.findall(r'^import "([^"]+)";', text, re.MULTILINE):
            assert imported.startswith(("logstore/v1/", "google/protobuf/")), (source, imported)


def test_every_message_field_and_enum_value_is_documented() -> None:
    """A client in any language learns the contract from the .proto comments alone."""
    for source in generate.proto_files():
        lines = (generate.PROTO_ROOT / source).read_text().splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            is_member = re.match(r"^(repeated |map<[^>]*> )?([\w.]+ )?\w+ = \d+;$", stripped)
            is_rpc = stripped.startswith("rpc ")
            if not (is_member or is_rpc):
                continue
            previous = lines[number - 1].strip()
            assert previous.startswith("//"), f"{source}:{number + 1} has no comment: {stripped}"

"""A frame's savepoint opens at its first write (issue 19): a frame that changes only memory
costs no SQL for it, and one that fails after writing still loses only its own rows."""

from __future__ import annotations

import pytest

from alertd.storage.store import Store


@pytest.fixture
def traced(tmp_path):
    store = Store(tmp_path / "s.db")
    said: list[str] = []
    store.raw.set_trace_callback(said.append)
    yield store, said
    store.raw.set_trace_callback(None)
    store.close()


def test_a_use_that_only_reads_opens_no_savepoint(traced):
    store, said = traced
    with store.transaction(defer=True):
        store.db.execute("SELECT COUNT(*) FROM orders").fetchone()
    assert not [s for s in said if "SAVEPOINT" in s or "RELEASE" in s]


def test_a_write_opens_the_savepoint_first_and_a_later_failure_undoes_only_that_use(traced):
    store, said = traced
    with store.transaction(defer=True):
        store.db.execute("INSERT INTO meta VALUES ('kept', '1')")
    with pytest.raises(ValueError), store.transaction(defer=True):
        store.db.execute("insert into meta values ('undone', '1')")  # any case is a write
        raise ValueError("a bug after the write")
    store.flush()
    writes = [s for s in said if s.split()[0].upper() in ("INSERT", "SAVEPOINT")]
    assert [s.split()[0].upper() for s in writes] == ["SAVEPOINT", "INSERT"] * 2
    keys = {k for (k,) in store.db.execute("SELECT key FROM meta")}
    assert "kept" in keys and "undone" not in keys


def test_memory_only_changes_are_undone_without_a_savepoint(traced):
    store, said = traced
    undone: list[str] = []

    class Part:
        def began(self) -> None: ...
        def released(self) -> None: ...
        def before_commit(self) -> None: ...
        def committed(self) -> None: ...
        def abandoned(self) -> None: ...

        def rolled_back(self) -> None:
            undone.append("yes")

    store.participants.append(Part())
    with pytest.raises(KeyError), store.transaction(defer=True):
        raise KeyError("nothing written")
    assert undone == ["yes"]
    assert not [s for s in said if "SAVEPOINT" in s or "ROLLBACK" in s]

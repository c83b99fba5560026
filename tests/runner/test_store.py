"""The run store's housekeeping: what a killed run leaves behind is removed on resume, and never taken for a cell."""

from __future__ import annotations

import json

from bench.runner.store import Store, atomic_write_json


def test_leftovers_of_a_killed_run_are_removed_and_never_listed_as_cells(tmp_path):
    store = Store(tmp_path / "r")
    store.check_writable()
    store.write("abc", {"status": "ok"})
    leftovers = [
        store.cells_dir / ".def.json.123.tmp",  # a cell being written
        store.cells_dir / ".write-probe.123",  # killed between writing and removing the start-up probe
        store.run_dir / ".write-probe.123",
        store.run_dir / ".write-probe.123.456.tmp",
    ]
    for path in leftovers:
        path.write_text("{}")
    assert store.keys() == ["abc"]
    assert sorted(store.remove_temporaries()) == sorted(leftovers)
    assert [p.name for p in store.cells_dir.iterdir()] == ["abc.json"]
    assert json.loads((store.cells_dir / "abc.json").read_text()) == {"status": "ok"}


def test_the_write_probe_never_looks_like_a_cell(tmp_path, monkeypatch):
    seen = []
    real = atomic_write_json

    def spy(path, payload):
        seen.append(path)
        return real(path, payload)

    monkeypatch.setattr("bench.runner.store.atomic_write_json", spy)
    Store(tmp_path / "r").check_writable()
    assert seen and all(not p.name.endswith(".json") for p in seen)

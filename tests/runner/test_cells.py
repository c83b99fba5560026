"""Cell keys: stable, and sensitive to exactly what changes the numbers; sharding; the atomic store."""

from __future__ import annotations

import json

import pytest

from bench.runner.cells import cell_description, cell_key, expand_cells, shard
from bench.runner.matrix import Condition, DatasetEntry, load_matrix
from bench.runner.store import Store

METHOD = {"card": "m", "adapter": "rrdbnet", "args": {"num_block": 1}, "checkpoint": "x", "checkpoint_sha256": "ab"}
DATASET = DatasetEntry("embedded-eval", crop=64)
NOISE = Condition("noise", "gaussian_noise", {"sigma": 0.03}, 0.03)


def _key(method=METHOD, dataset=DATASET, condition=NOISE, seed=0, scale=4) -> str:
    return cell_key(cell_description(method, dataset, condition, seed, scale))


def test_key_is_stable():
    assert _key() == _key()
    # a known value: the key is a pure function of the description (guards against accidental format changes)
    assert len(_key()) == 20 and all(c in "0123456789abcdef" for c in _key())
    # order of dict keys does not matter (the metrics are not in the key: see tests/runner/test_keys.py)
    assert _key(method=dict(reversed(list(METHOD.items())))) == _key()


@pytest.mark.parametrize(
    "change",
    [
        {"method": {**METHOD, "checkpoint_sha256": "cd"}},
        {"method": {**METHOD, "args": {"num_block": 2}}},
        {"dataset": DatasetEntry("embedded-eval", crop=128)},
        {"dataset": DatasetEntry("embedded-eval", crop=None)},
        {"condition": Condition("noise", "gaussian_noise", {"sigma": 0.05}, 0.05)},
        {"condition": Condition("noise", "gaussian_blur", {"sigma": 0.03}, 0.03)},
        {"seed": 1},
        {"scale": 2},
    ],
)
def test_key_changes_with_what_changes_the_numbers(change):
    assert _key(**change) != _key()


def test_keys_do_not_depend_on_matrix_name_or_order(tiny_project):
    a = load_matrix(tiny_project["matrix"])
    b = load_matrix(tiny_project["matrix"], overrides=["name=other", "methods=[tiny-rrdb, bicubic]"])
    ids = {"bicubic": {"card": "bicubic"}, "tiny-rrdb": {"card": "tiny-rrdb"}}
    keys_a = {c.key for c in expand_cells(a, ids)}
    keys_b = {c.key for c in expand_cells(b, ids)}
    assert keys_a == keys_b and len(keys_a) == 4


def test_shard_partitions_cells(tiny_project):
    m = load_matrix(tiny_project["matrix"], overrides=["seeds=[0, 1, 2]"])
    cells = expand_cells(m, {"bicubic": {"card": "bicubic"}, "tiny-rrdb": {"card": "tiny-rrdb"}})
    parts = [shard(cells, r, 3) for r in range(3)]
    assert sorted(c.key for p in parts for c in p) == sorted(c.key for c in cells)
    assert [len(p) for p in parts] == [4, 4, 4]
    assert parts[1][0] is cells[1]
    with pytest.raises(ValueError):
        shard(cells, 3, 3)


def test_store_writes_atomically_and_skips_only_ok(tmp_path):
    store = Store(tmp_path / "run")
    store.write("aaa", {"status": "ok", "records": [{"value": float("nan")}]})
    store.write("bbb", {"status": "failed", "records": []})
    assert store.is_finished("aaa") and not store.is_finished("bbb") and not store.is_finished("ccc")
    assert store.keys() == ["aaa", "bbb"]
    assert sorted(p.name for p in store.cells_dir.iterdir()) == ["aaa.json", "bbb.json"]  # no temporary left
    (store.cells_dir / "ddd.json").write_text('{"status": "ok", "rec')  # a truncated file is never trusted
    assert not store.is_finished("ddd")
    assert json.loads(store.cell_path("aaa").read_text())["status"] == "ok"

"""The seeds' results tables as data: each re-read against the seed text, averages and PI checked, cards resolved."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from bench.report.papers import PaperTableError, load_table, load_tables, table_ids
from bench.report.papers.model import PaperTable

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {"rsr", "certsr-t1", "certsr-t2", "certsr-t3", "and-t1", "and-t2", "ntire20-t1", "ntire20-t2"}
EXPECTED |= {"ntire20-t1-val"}
_SUB = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")


def _seeds_dir() -> Path | None:
    candidates = [os.environ.get("BENCH_SEEDS_DIR"), REPO.parent / "shared" / "seeds", "/work/shared/seeds"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


SEEDS = _seeds_dir()
needs_seeds = pytest.mark.skipif(SEEDS is None, reason="no seed texts (../shared/seeds or $BENCH_SEEDS_DIR)")


def _table_lines(table: PaperTable) -> list[str]:
    """The printed lines of the table's rows: the non-empty lines after the table's anchor (its last header line)."""
    lines = (SEEDS / table.seed).read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines) if table.anchor in line]
    assert len(hits) == 1, f"{table.id}: anchor found {len(hits)} times in {table.seed}"
    body = [line for line in lines[hits[0] + 1 :] if line.strip()]
    return body[: len(table.rows)]


def test_every_seed_table_is_transcribed() -> None:
    assert set(table_ids()) == EXPECTED
    for table in load_tables():
        assert table.rows and table.columns and table.source and table.paper


@needs_seeds
@pytest.mark.parametrize("table_id", sorted(EXPECTED))
def test_values_and_ranks_match_the_seed_text(table_id: str) -> None:
    """Every row's printed line holds its label and exactly its non-null values (as printed) and ranks, in order."""
    table = load_table(table_id)
    lines = _table_lines(table)
    assert len(lines) == len(table.rows)
    checked = 0
    for row, line in zip(table.rows, lines, strict=True):
        if not row.continued:
            assert row.label in line, f"{table_id}: row {row.label!r} not on its line {line!r}"
        cells = re.sub(r"₍[₀-₉]+₎", " ", line)
        printed = re.findall(r"(?<![\w.])\d+\.\d+", cells)
        want = [
            f"{v:.{table.metric(c.metric).decimals}f}"
            for v, c in zip(row.values, table.columns, strict=True)
            if v is not None
        ]
        assert printed == want, f"{table_id}: row {row.label!r}: seed {printed} != data {want}"
        ranks = [int(r.translate(_SUB)) for r in re.findall(r"₍([₀-₉]+)₎", line)]
        assert ranks == [r for r in (row.ranks or ()) if r is not None], f"{table_id}: ranks of {row.label!r}"
        checked += len(want)
    assert checked >= 3


@needs_seeds
def test_hand_picked_cells() -> None:
    """A few cells read by eye from the seeds, through the lookup API (row id, label or method name)."""
    assert load_table("certsr-t1").value("CertSR (ours)", "noisy", "psnr") == 26.35
    assert load_table("certsr-t2").value("ad-l-cw", "fgsm", "psnr") == 4.72
    assert load_table("certsr-t3").value("ESRGAN", "avg", "psnr") == 21.03
    assert load_table("rsr").value("impressionism-dped", "aim", "lpips") == 0.47
    assert load_table("and-t1").value("ANDGAN", "super", "lpips") == 0.1372
    assert load_table("and-t2").value("random-style-shift", "realsr", "lpips_andgan") is None
    assert load_table("ntire20-t1").row("Impressionism").ranks == (16, 13, 1, 1)
    assert load_table("ntire20-t2").value("Samsung-SLSI-MSL", "test", "mor") is None
    assert load_table("ntire20-t1-val").value("Ours", "val", "lpips") == 0.2482


def _avg_mismatches(table: PaperTable) -> set[str]:
    """Row methods whose printed Avg differs from the mean of the other groups by more than rounding allows."""
    avg = [g.id for g in table.groups if g.aggregate == "mean"]
    parts = [g.id for g in table.groups if g.aggregate is None]
    bad = set()
    for row in table.rows:
        for metric in {c.metric for c in table.columns}:
            mean = sum(table.value(row.id, p, metric) for p in parts) / len(parts)
            if abs(mean - table.value(row.id, avg[0], metric)) > 0.0101:
                bad.add(row.method)
    return bad


def test_average_columns_average_except_where_the_notes_say() -> None:
    """The Avg columns are means of the other two up to rounding, except the rows a note names (CertSR Table 3)."""
    assert _avg_mismatches(load_table("rsr")) == set()
    bad = _avg_mismatches(load_table("certsr-t3"))
    assert bad == {"ESRGAN", "AD-L-FGSM", "AD-L-BIM", "AD-L-CW"}
    notes = " ".join(load_table("certsr-t3").notes)
    assert all(f"{m} row" in notes for m in bad)


def test_ntire_track2_pi_is_its_definition() -> None:
    """PI = ((10 - NRQM) + NIQE) / 2 holds for every printed row to rounding (a transcription check)."""
    table = load_table("ntire20-t2")
    for row in table.rows:
        v = dict(zip((c.metric for c in table.columns), row.values, strict=True))
        assert v["pi"] == pytest.approx(((10 - v["nrqm"]) + v["niqe"]) / 2, abs=0.0051), row.label


def test_rows_map_to_existing_cards_or_say_why_not() -> None:
    from bench.methods.cards import load_card

    for table in load_tables():
        for row in table.rows:
            if row.card is not None:
                load_card(row.card)  # raises for a card that does not exist or does not parse
            else:
                assert row.status != "card" and row.note, f"{table.id}: {row.label!r} has no card and no reason"
    statuses = {r.method: r.status for r in load_table("and-t1").rows}
    assert statuses["SwinIR-Real"] == "needs_adapter" and statuses["BSRGAN"] == "card"
    assert {r.card for r in load_table("and-t1").rows} >= {"bsrnet", "bsrgan", "realesrnet-x4plus", "realesrgan-x4plus"}


def test_metric_specs_and_protocol_as_stated() -> None:
    assert load_table("and-t1").metric("psnr").spec.space == "Y"
    assert load_table("certsr-t1").metric("lpips").spec.backbone == "alex"
    assert load_table("certsr-t1").metric("psnr").spec.space is None  # not stated by the paper
    sigmas = {g.id: g.sigma for g in load_table("certsr-t2").groups}
    assert sigmas == {"fgsm": 0.06, "bim": 0.07, "pgd": 0.06, "cw": 0.03}
    assert {g.id: g.sigma for g in load_table("certsr-t1").groups} == {"clean": None, "noisy": None, "blurry": 0.05}
    assert load_table("certsr-t1").layout == "group-major" and load_table("rsr").layout == "metric-major"
    assert load_table("and-t1").groups[-1].scale == 2


def test_legacy_certsr_file_equals_the_new_tables() -> None:
    """``certsr2024.yaml`` (read by the current report) holds the same numbers as certsr-t1 and certsr-t2."""
    legacy = yaml.safe_load((REPO / "bench/report/papers/certsr2024.yaml").read_text(encoding="utf-8"))
    for old, new_id in zip(legacy["tables"], ("certsr-t1", "certsr-t2"), strict=True):
        new = load_table(new_id)
        assert old["groups"] == [g.label for g in new.groups]
        for old_row, row in zip(old["rows"], new.rows, strict=True):
            assert old_row["method"] == row.method
            assert [x for group in old_row["values"] for x in group] == list(row.values)


def test_bad_tables_fail_with_the_file_and_the_reason(tmp_path, monkeypatch) -> None:
    import bench.report.papers as papers

    data = yaml.safe_load((papers.TABLES_DIR / "certsr-t1.yaml").read_text(encoding="utf-8"))
    monkeypatch.setattr(papers, "TABLES_DIR", tmp_path)

    def write(name: str, mutate) -> None:
        d = yaml.safe_load(yaml.safe_dump(data))
        d["id"] = name
        mutate(d)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(d, allow_unicode=True), encoding="utf-8")

    write("short-row", lambda d: d["rows"][0].update(values=[1.0]))
    write("null-no-note", lambda d: d["rows"][2].update(values=[None] * 9))
    write("bad-col", lambda d: d["columns"].append({"group": "foggy", "metric": "psnr"}))
    write("extra-key", lambda d: d.update(colour="red"))
    write("card-status", lambda d: d["rows"][0].update(card=None))
    for name, match in [
        ("short-row", "1 values for 9 columns"),
        ("null-no-note", "needs a note"),
        ("bad-col", "undeclared group"),
        ("extra-key", "colour"),
        ("card-status", "status 'card'"),
    ]:
        with pytest.raises(PaperTableError, match=match) as info:
            load_table(name)
        assert f"{name}.yaml" in str(info.value)
    with pytest.raises(KeyError, match="known"):
        load_table("nope")


def test_protocol_names_are_the_harness_names() -> None:
    """Metrics, attacks and conditions named by the tables are registered components / paper conditions."""
    from bench.attacks import ATTACKS
    from bench.corruptions.severity import PAPER_CONDITIONS
    from bench.metrics import METRICS

    for table in load_tables():
        for metric in table.metrics:
            assert metric.bench_metric is None or metric.bench_metric in METRICS, (table.id, metric.id)
        for group in table.groups:
            assert group.attack is None or group.attack in ATTACKS, (table.id, group.id)
            assert group.condition in (None, "clean", *PAPER_CONDITIONS), (table.id, group.id)
            assert (group.aggregate is None) == (group.dataset is not None), (table.id, group.id)

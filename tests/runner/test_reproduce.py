"""``python -m bench reproduce``: each table's matrix validates, ``--dry-run`` names the right datasets, cards and
missing pieces, and on replica datasets (tiny archives in the real layouts, one served on 127.0.0.1) a table is
reproduced end to end on CPU with tiny models and rendered in the paper's layout (HTML, CSV, LaTeX)."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from html import unescape
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bench.cli import main
from bench.report.papers import load_table, table_ids
from bench.runner.matrix import load_matrix
from tests.loopback import serve

REPO = Path(__file__).resolve().parents[2]
TINY_RRDB = {"num_block": 1, "num_feat": 8, "num_grow_ch": 4, "scale": 4}
TABLE_DATASETS = {
    "certsr-t1": {"div2k-val"},
    "certsr-t2": {"div2k-val"},
    "certsr-t3": {"ntire20-t1-val", "aim19-t2-val"},
    "rsr": {"ntire20-t1-val", "aim19-t2-val"},
    "and-t1": {"realsr-v3", "drealsr", "super"},
    "and-t2": {"realsr-v3"},
    "ntire20-t1": {"ntire20-t1-val"},
    "ntire20-t1-val": {"ntire20-t1-val"},
    "ntire20-t2": {"ntire20-t2-val"},
}


@pytest.fixture(autouse=True)
def _project_manifests(monkeypatch):
    """The checkout's cards and manifests (the registry resolves the current project's on each lookup)."""
    monkeypatch.delenv("BENCH_PROJECT", raising=False)


# -------------------------------------------------------------------------------------------- matrices, dry run
@pytest.mark.parametrize("table_id", sorted(TABLE_DATASETS))
def test_every_table_has_a_valid_matrix_mapping_its_groups(table_id):
    """The table's matrix validates; each measured group names one of its datasets, conditions and attacks."""
    from bench.runner.reproduce import matrix_name_for

    assert set(TABLE_DATASETS) == set(table_ids())
    matrix = load_matrix(matrix_name_for(table_id))
    assert {d.name for d in matrix.datasets} == TABLE_DATASETS[table_id]
    assert all(d.crop is None for d in matrix.datasets)  # whole images
    conditions = {c.name for c in matrix.conditions}
    attacks = {a.name: a for a in matrix.attacks}
    table = load_table(table_id)
    for g in table.groups:
        if g.aggregate or g.bench_dataset is None:
            continue
        assert g.bench_dataset in TABLE_DATASETS[table_id] and g.bench_condition in conditions
        if g.attack:
            assert g.attack in attacks and dict(attacks[g.attack].loss)["name"] == "certsr_paper"
    assert set(table.cards()) <= set(matrix.methods)  # every printed row with a card is in the matrix


def test_certsr_sigma_per_column_is_published_and_auto_variant_exists():
    t1, t2, t3 = (load_matrix(f"certsr-t{i}") for i in (1, 2, 3))
    assert dict(t1.smoothing.sigmas) == {"clean": None, "noise": None, "blur": 0.05}
    assert dict(t2.smoothing.sigmas) == {"fgsm": 0.06, "bim": 0.07, "pgd": 0.06, "cw": 0.03}
    assert dict(t3.smoothing.sigmas) == {"ntire20-t1-val": 0.03, "aim19-t2-val": 0.06}
    for table in ("certsr-t1", "certsr-t2"):  # the table's published sigma of each group is the matrix's
        published = {g.attack or g.bench_condition: g.sigma for g in load_table(table).groups}
        matrix = dict(load_matrix(table).smoothing.sigmas)
        assert {k: matrix[k] for k in published} == published
    auto = load_matrix("certsr-t2-auto")
    assert set(dict(auto.smoothing.sigmas).values()) == {"auto"} and auto.methods == t2.methods


def test_sigma_override_names_a_column_and_changes_the_cell_key():
    from bench.runner.matrix import MatrixError
    from bench.runner.stages.plan import plan

    with pytest.raises(MatrixError, match=r"smoothing\.sigmas\.blurr"):
        load_matrix("certsr-t1", overrides=["smoothing.sigmas={blurr: 0.05}"])
    keys = {}
    for value in ("0.05", "0.07"):
        m = load_matrix("certsr-t1", overrides=[f"smoothing.sigmas={{clean: null, noise: null, blur: {value}}}"])
        cells = [c for c in plan(m).cells if c.method == "certsr"]
        keys[value] = {c.condition.name: c.key for c in cells}
        assert {c.condition.name: c.description["smoothing"]["sigma_override"] for c in cells}["blur"] == float(value)
    assert keys["0.05"]["blur"] != keys["0.07"]["blur"] and keys["0.05"]["clean"] == keys["0.07"]["clean"]


@pytest.mark.parametrize(
    ("table_id", "missing"),
    [
        ("certsr-t1", ["dataset div2k-val: python -m bench datasets fetch div2k-val",
                       "checkpoint certsr: python -m bench train certsr --data div2k-train"]),
        ("and-t1", ["dataset realsr-v3: python -m bench datasets fetch realsr-v3 --from PATH",
                    "checkpoint andnet: python -m bench train andnet --data div2k-train"]),
        ("ntire20-t2", ["dataset ntire20-t2-val: python -m bench datasets fetch ntire20-t2-val"]),
    ],
)  # fmt: skip
def test_dry_run_lists_datasets_cards_and_missing_pieces(table_id, missing, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "no-data"))  # nothing fetched
    assert main(["reproduce", table_id, "--dry-run"]) == 0
    out = capsys.readouterr().out
    table = load_table(table_id)
    for name in TABLE_DATASETS[table_id]:
        assert re.search(rf"^  {re.escape(name)}: missing", out, re.M)
    for row in table.rows:  # every printed row, with its card or why it has none
        assert row.label in out
        if row.card is not None:
            assert f"{row.label}: {row.card} -- " in out
        else:
            assert f"{row.label}: no card ({row.status.replace('_', ' ')})" in out
    for line in missing:
        assert line in out
    m = re.search(r"cells: (\d+) \(0 measurable now\)", out)
    assert m and int(m.group(1)) > 0
    assert re.search(r"model evaluations: [\d ]+ forwards, [\d ]+ backwards", out)
    assert "time: not estimated" in out


def test_dry_run_counts_attack_and_smoothing_passes(tmp_path, monkeypatch):
    """certsr-t2 counted by hand: 100 images, FGSM 1 + BIM 10 + PGD 10 + CW 6 gradient steps. Each attack also makes
    one forward for the clean loss and one for the last iterate's loss, and the attacked image is then
    super-resolved once; CertSR multiplies every attack call by EOT 4 x 21 copies and its inference by 21."""
    from bench.runner.reproduce import plan_table

    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "no-data"))
    plan = plan_table("certsr-t2")
    steps, attacks = 1 + 10 + 10 + 6, 4
    plain_f = 5 * 100 * (steps + attacks * (2 + 1))
    plain_b = 5 * 100 * steps
    smoothed_f = 100 * (4 * 21 * (steps + attacks * 2) + attacks * 21)
    smoothed_b = 100 * 4 * 21 * steps
    assert plan.cells == 24
    assert plan.backwards == plain_b + smoothed_b
    assert plan.forwards == plain_f + smoothed_f


def test_reproduce_alone_lists_every_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "no-data"))
    assert main(["reproduce"]) == 0
    out = capsys.readouterr().out
    for tid in table_ids():
        assert re.search(rf"^  {re.escape(tid)}\s+rows \d+/\d+, cells 0/\d+", out, re.M)


def test_card_requirement_follows_a_wrappers_base_checkpoint(tmp_path, monkeypatch):
    """reproduce asks the card (MethodCard.missing_checkpoints): a smoothing card whose base card's checkpoint is not
    there is not ready, its command is the base's (train it with the base's recipe), and it is ready once the base's
    file exists; ``--train-missing`` then trains the base's recipe."""
    from bench.runner.reproduce import card_requirement

    root = tmp_path / "project"
    (root / "methods").mkdir(parents=True)
    home = tmp_path / "home"
    monkeypatch.setenv("BENCH_PROJECT", str(root))
    monkeypatch.setenv("BENCH_HOME", str(home))
    base = {"title": "tiny FT", "adapter": "rrdbnet", "args": TINY_RRDB, "tile": None}
    base.update(checkpoint="$BENCH_HOME/checkpoints/esrgan-ft/latest.safetensors")
    base.update(recipe={"name": "esrgan-ft", "data": "DIV2K train HR"})
    (root / "methods" / "ft.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    wrapper = {"title": "tiny MRS", "adapter": "median_smoothing", "args": {"base": "ft", "n": 3}, "tile": None}
    (root / "methods" / "ft-mrs.yaml").write_text(yaml.safe_dump(wrapper), encoding="utf-8")
    req = card_requirement("ft-mrs")
    assert not req.ready and req.kind == "checkpoint" and req.state == "not trained (no checkpoint) (base ft)"
    assert req.command.startswith("python -m bench train esrgan-ft --data div2k-train")
    assert (req.recipe, req.train_data) == ("esrgan-ft", "div2k-train")
    from safetensors.torch import save_file

    from bench.archs.rrdbnet import RRDBNet

    (home / "checkpoints" / "esrgan-ft").mkdir(parents=True)
    save_file(RRDBNet(**TINY_RRDB).state_dict(), str(home / "checkpoints" / "esrgan-ft" / "latest.safetensors"))
    assert card_requirement("ft-mrs").ready and card_requirement("ft").ready


# ---------------------------------------------------------------------------------------- replica end to end
def _png(size: int, seed: int) -> bytes:
    yy, xx = np.mgrid[0:size, 0:size]
    rng = np.random.default_rng(seed)
    base = (np.sin(xx / (3 + seed % 5)) + np.cos(yy / (4 + seed % 3))) * 60 + 128
    img = np.clip(base[..., None] + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _replicas() -> dict[str, tuple[str, bytes]]:
    """dataset -> (archive file name, bytes): tiny copies in the manifests' layouts (HR 48x48, x4 LR 12x12)."""
    div2k = {f"DIV2K_valid_HR/{k}.png": _png(48, i) for i, k in enumerate(["0801", "0802"])}
    realsr, drealsr = {}, {}
    for c, cam in enumerate(("Canon", "Nikon")):
        k = f"{cam}_001"
        for s in (2, 3, 4):
            realsr[f"RealSR(V3)/{cam}/Test/{s}/{k}_HR.png"] = _png(48, 10 * s + c)
            realsr[f"RealSR(V3)/{cam}/Test/{s}/{k}_LR{s}.png"] = _png(48 // s, 10 * s + c + 5)
    for s in (2, 3, 4):
        drealsr[f"DRealSR/Test_x{s}/test_HR/canon_1_x1.png"] = _png(48, 30 + s)
        drealsr[f"DRealSR/Test_x{s}/test_LR/canon_1_x{s}.png"] = _png(48 // s, 40 + s)
    return {
        "div2k-val": ("DIV2K_valid_HR.zip", _zip(div2k)),
        "realsr-v3": ("RealSR(V3).zip", _zip(realsr)),
        "drealsr": ("DRealSR.zip", _zip(drealsr)),
    }


@pytest.fixture
def replica_project(tmp_path, monkeypatch):
    """A project whose manifests are the real ones with the replicas' checksums (div2k-val's URL on a 127.0.0.1
    server), tiny RRDB cards under the tables' card names, and an empty data root."""
    from safetensors.torch import save_file

    from bench.archs.rrdbnet import RRDBNet

    root = tmp_path / "project"
    (root / "datasets").mkdir(parents=True)
    for path in (REPO / "datasets").glob("*.yaml"):
        (root / "datasets" / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    replicas = _replicas()
    files = {f"/{name}": data for name, data in replicas.values()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    with serve(Handler) as base:
        for name, (file, data) in replicas.items():
            manifest = yaml.safe_load((REPO / "datasets" / f"{name}.yaml").read_text(encoding="utf-8"))
            for src in manifest["sources"]:
                src.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
                if name == "div2k-val":
                    src["url"] = f"{base}/{file}"
            (root / "datasets" / f"{name}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
            (tmp_path / file).write_bytes(data)
        methods = root / "methods"
        methods.mkdir()
        torch.manual_seed(0)
        save_file(
            {k: v.contiguous() for k, v in RRDBNet(**TINY_RRDB).state_dict().items()}, str(methods / "tiny.safetensors")
        )
        rrdb = {"adapter": "rrdbnet", "args": TINY_RRDB, "checkpoint": "tiny.safetensors", "tile": None}
        for card in ("esrgan-ft", "realesrgan-x4plus", "bsrnet"):
            (methods / f"{card}.yaml").write_text(yaml.safe_dump({"title": f"tiny {card}", **rrdb}), encoding="utf-8")
        certsr = {"title": "tiny CertSR", "adapter": "median_smoothing", "tile": None}
        certsr["args"] = {"base": "esrgan-ft", "sigma": 0.05, "n": 3}
        (methods / "certsr.yaml").write_text(yaml.safe_dump(certsr), encoding="utf-8")
        monkeypatch.setenv("BENCH_PROJECT", str(root))
        monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
        yield {"root": root, "archives": tmp_path, "out": tmp_path / "reports"}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_reproduce_certsr_t1_end_to_end_on_replica(replica_project, capsys):
    """div2k-val is fetched from the local server, the matrix runs (tiny cards; the published sigma per column), and
    the table comes back in the paper's layout with published values and deltas (HTML, CSV, LaTeX)."""
    out = replica_project["out"]
    args = ["reproduce", "certsr-t1", "--device", "cpu", "--out", str(out), "--no-progress",
            "--set", "methods=[esrgan-ft, certsr]", "--set", "metrics=[psnr, ssim]"]  # fmt: skip
    code = main(args)
    printed = capsys.readouterr().out
    assert code == 0, printed  # every cell of the reduced matrix is ok; the AD-L-* rows are marked in the table
    assert "missing" not in printed and str(out / "certsr-t1" / "index.html") in printed
    run = out / "certsr-t1"
    # the per-column sigma reached the smoothed cells: none on clean and noise, 0.05 on blur
    from bench.report.tables import load_run

    data = load_run(run)
    sig = data.records[data.records["method"] == "certsr"].groupby("condition")["sigma"].first()
    assert sig["blur"] == pytest.approx(0.05) and sig[["clean", "noise"]].isna().all()
    assert {p.smoothing["sigma_source"] for p in data.payloads if p.smoothing} == {"matrix"}

    table = load_table("certsr-t1")
    rows = _csv_rows(run / "paper_tables" / "certsr-t1.csv")
    assert [r["row"] for r in rows[:: len(table.columns)]] == [r.label for r in table.rows]
    esrgan = {(r["group"], r["metric"]): r for r in rows if r["card"] == "esrgan-ft"}
    psnr = data.records.query("method == 'esrgan-ft' and condition == 'noise' and metric == 'psnr'")["value"].mean()
    cell = esrgan[("noisy", "psnr")]
    assert float(cell["published"]) == 20.25 and float(cell["measured"]) == pytest.approx(psnr, abs=1e-5)
    assert float(cell["delta"]) == pytest.approx(psnr - 20.25, abs=1e-5)
    assert cell["within"] == str(abs(psnr - 20.25) <= 0.3) and cell["n"] == "2"
    assert esrgan[("clean", "lpips")]["measured"] == ""  # LPIPS not in this run: published only
    pgd = [r for r in rows if r["card"] == "ad-l-pgd"]
    assert pgd and all(r["measured"] == "" for r in pgd) and pgd[0]["status"] == "no card"

    tex = (run / "paper_tables" / "certsr-t1.tex").read_text(encoding="utf-8")
    assert r"\toprule" in tex and r"\multicolumn{3}{c}{Clean}" in tex and r"\multicolumn{3}{c}{Blurry}" in tex
    assert f"ESRGAN [33] & {psnr_clean(data):.2f} (27.48)" in tex
    assert "AD-L-PGD [4] & 26.60\\dag" in tex

    html = (run / "index.html").read_text(encoding="utf-8")
    section = html[html.index('id="paper-tables"') :]
    fragment = section[section.index('id="paper-certsr-t1"') :]
    assert ">Clean</th>" in fragment and ">Noisy</th>" in fragment and ">Blurry</th>" in fragment
    for row in table.rows:
        assert row.label.replace("&", "&amp;") in fragment
    assert f'<span class="meas">{psnr:.2f}</span><span class="pub">20.25</span>' in fragment
    assert f"{psnr - 20.25:+.2f}" in fragment
    text = unescape(fragment[: fragment.index("</aside>")])
    for note in table.notes:  # the known inconsistencies beside the table
        assert note in text


def psnr_clean(data) -> float:
    return float(
        data.records.query("method == 'esrgan-ft' and condition == 'clean' and metric == 'psnr'")["value"].mean()
    )


def test_reproduce_and_t1_end_to_end_on_replica(replica_project, capsys):
    """RealSR V3 and DRealSR replicas imported with --from, SupER missing: the run measures what is there and the
    table keeps every printed row, the missing column group marked, AND's notes beside it."""
    from bench.data.store import DatasetStore

    arch = replica_project["archives"]
    for name, file in (("realsr-v3", "RealSR(V3).zip"), ("drealsr", "DRealSR.zip")):
        DatasetStore().fetch(name, from_paths=(arch / file,))
    out = replica_project["out"]
    args = ["reproduce", "and-t1", "--device", "cpu", "--out", str(out), "--no-progress", "--no-fetch",
            "--set", "methods=[bsrnet, realesrgan-x4plus]", "--set", "metrics=[psnr_y]"]  # fmt: skip
    assert main(args) == 1  # super missing, and other rows' cards: reported
    printed = capsys.readouterr().out
    assert "dataset super: python -m bench datasets fetch super --from PATH" in printed
    run = out / "and-t1"
    table = load_table("and-t1")
    rows = _csv_rows(run / "paper_tables" / "and-t1.csv")
    assert [r["row"] for r in rows[:: len(table.columns)]] == [r.label for r in table.rows]
    from bench.report.tables import load_run

    data = load_run(run)
    for card, label in (("bsrnet", "BSRNet [51]"), ("realesrgan-x4plus", "Real-ESRGAN [43]")):
        got = {(r["group"], r["metric"]): r for r in rows if r["row"] == label}
        for group, dataset in (("realsr", "realsr-v3"), ("drealsr", "drealsr")):
            want = data.records.query(f"method == '{card}' and dataset == '{dataset}' and metric == 'psnr_y'")
            cell = got[(group, "psnr")]
            assert float(cell["measured"]) == pytest.approx(want["value"].mean(), abs=1e-5)
            assert float(cell["published"]) == table.value(label, group, "psnr")
            assert float(cell["delta"]) == pytest.approx(
                want["value"].mean() - table.value(label, group, "psnr"), abs=1e-5
            )
        assert got[("super", "psnr")]["measured"] == "" and got[("realsr", "lpips")]["measured"] == ""
    kernel = [r for r in rows if r["row"] == "KernelGAN [2]"]
    assert kernel[0]["status"] == "needs an adapter (new architecture)" and kernel[0]["published"] == "25.13"
    tex = (run / "paper_tables" / "and-t1.tex").read_text(encoding="utf-8")
    assert r"\multicolumn{2}{c}{RealSR($\times$4) [3]}" in tex and "KernelGAN [2] & 25.13\\dag" in tex
    html = (run / "index.html").read_text(encoding="utf-8")
    fragment = html[html.index('id="paper-and-t1"') :]
    assert 'SupER(×4) [21]<br><span class="paper-missing">not in this matrix</span>' in fragment
    assert "needs an adapter" in fragment and "Known inconsistencies of this table" in fragment
    assert all(note in unescape(fragment) for note in table.notes)


def test_train_missing_runs_each_missing_recipe_with_its_data(tmp_path, monkeypatch):
    """``--train-missing`` runs ``python -m bench train RECIPE --data DATA --device D`` per missing checkpoint."""
    import subprocess

    from bench.runner.reproduce import plan_table, train_missing

    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))  # no trained checkpoint
    calls = []

    def fake_run(cmd, check=False):
        calls.append(cmd[cmd.index("train") :])
        return subprocess.CompletedProcess(cmd, 1 if cmd[cmd.index("train") + 1] == "certsr" else 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    failed = train_missing(plan_table("certsr-t1"), "cpu")
    cards = ["esrgan-ft", "ad-l-pgd", "ad-l-fgsm", "ad-l-bim", "ad-l-cw", "certsr"]
    assert calls == [["train", c, "--data", "div2k-train", "--device", "cpu"] for c in cards]
    assert failed == ["certsr"]


def test_reproduce_and_run_dry_runs_count_the_same(replica_project, capsys):
    """One counting rule: for a paper matrix made small and fully ready (replica div2k-val, the tiny cards, FGSM with
    2 EOT draws on CertSR's 3 copies, certification with 5 samples), ``bench reproduce --dry-run`` and ``bench run
    --dry-run`` print the same cells, forwards and backwards, and they are the counts made by hand."""
    from bench.data.store import DatasetStore

    DatasetStore().fetch("div2k-val")
    fgsm = "{name: fgsm, attack: fgsm, epsilons: [2/255], loss: l1, eot_samples: 2}"
    sets = [
        "methods=[esrgan-ft, certsr]",
        "metrics=[psnr]",
        f"attacks=[{{name: none}}, {fgsm}]",
        "smoothing.sigmas={fgsm: 0.06}",
        "smoothing.certify={epsilons: [0.02], n_samples: 5}",
    ]
    args = [a for s in sets for a in ("--set", s)]
    assert main(["reproduce", "certsr-t2", "--dry-run", "--device", "cpu", *args]) == 0
    out = capsys.readouterr().out
    assert main(["run", "--matrix", "certsr-t2", "--dry-run", "--device", "cpu", *args]) == 0
    run_out = capsys.readouterr().out

    def numbers(pattern: str, text: str) -> tuple[int, ...]:
        m = re.search(pattern, text, re.M)
        assert m, text
        return tuple(int(g.replace(" ", "")) for g in m.groups())

    run = numbers(r"^total: (\d+) cells, (\d+) forwards, (\d+) backwards", run_out)
    cells = numbers(r"^cells: (\d+) \((\d+) measurable now\)", out)
    evaluations = numbers(r"^model evaluations: ([\d ]+) forwards, ([\d ]+) backwards", out)
    estimated = numbers(r"^estimated on cpu .*?: (\d+) cells, (\d+) forwards, (\d+) backwards", out)
    assert run[0] == 4 and run[2] > 0  # 2 cards x (clean, FGSM)
    assert cells == (run[0], run[0]) and evaluations == run[1:] and estimated == run
    # by hand, 2 replica images: esrgan-ft 2 x (1 + FGSM: clean loss, gradient, adversarial loss, prediction);
    # CertSR 2 x (5 certificate samples + FGSM: 2 EOT draws x 3 copies x 3 calls + 5 certificate samples)
    assert run[1:] == (2 * (1 + 4) + 2 * (5 + 2 * 3 * 3 + 5), 2 * 1 + 2 * 2 * 3)


def test_dry_run_estimates_the_time_of_the_cells_that_can_run_now(replica_project, capsys):
    """With div2k-val fetched (replica) and tiny cards, ``--dry-run`` prints the cost plan of ``bench run --dry-run``
    for the ready cells: counts, FLOPs and an estimated time on this device; the untrained cards are left out."""
    from bench.data.store import DatasetStore
    from bench.runner.reproduce import plan_table

    DatasetStore().fetch("div2k-val")
    sets = ["methods=[esrgan-ft, certsr]", "metrics=[psnr, ssim]"]  # the cards the replica project has
    assert main(["reproduce", "certsr-t1", "--dry-run", "--device", "cpu", "--set", sets[0], "--set", sets[1]]) == 0
    out = capsys.readouterr().out
    assert "time: not estimated (" not in out
    m = re.search(
        r"^estimated on cpu for the cells that can run now \(div2k-val; ready cards\): (\d+) cells, (\d+) forwards, "
        r"(\d+) backwards, ([\d.]+) TFLOP, time ([\d.]+) s ",
        out,
        re.M,
    )
    assert m, out
    plan = plan_table("certsr-t1", overrides=sets)
    cells, forwards, backwards = (int(m.group(i)) for i in (1, 2, 3))
    assert cells == plan.measurable_cells > 0  # the cost plan covers exactly the cells measurable now
    assert forwards > 0 and backwards == 0 and float(m.group(5)) > 0  # certsr-t1 has no attack
    assert re.search(r"^  certsr\s+blur\s+none\s+\d+\s+2\s+", out, re.M)  # its per-kind lines, 2 replica images
    assert re.search(r"^  esrgan-ft\s+clean\s+none\s+1\s+2\s+1\s+2\s+0\s", out, re.M)  # batch 1, a forward per image


def test_dry_runs_list_a_refused_attack_as_refused(replica_project, capsys, monkeypatch):
    """A card that is not differentiable, attacked by FGSM without a surrogate: ``bench reproduce --dry-run`` and
    ``bench run --dry-run`` list its cell as refused, with no pass, its failure rows' reason and fix, and no "cannot
    probe"; both exit 0."""
    from bench.data.store import DatasetStore
    from bench.methods import ADAPTERS
    from bench.methods.bicubic import Bicubic

    ADAPTERS.load()
    monkeypatch.setitem(
        ADAPTERS._entries, "frozen_bicubic", type("FrozenBicubic", (Bicubic,), {"differentiable": False})
    )
    (replica_project["root"] / "methods" / "frozen.yaml").write_text(
        "title: Frozen\nadapter: frozen_bicubic\ntile: null\n"
    )
    DatasetStore().fetch("div2k-val")
    fgsm = "{name: fgsm, attack: fgsm, epsilons: [2/255], loss: l1}"
    sets = [
        "methods=[esrgan-ft, frozen]",
        "metrics=[psnr]",
        f"attacks=[{{name: none}}, {fgsm}]",
        "smoothing.sigmas={fgsm: 0.06}",
    ]
    args = [a for s in sets for a in ("--set", s)]
    for command in (["reproduce", "certsr-t2"], ["run", "--matrix", "certsr-t2"]):
        assert main([*command, "--dry-run", "--device", "cpu", *args]) == 0
        out = capsys.readouterr().out
        line = re.search(r"^\s*frozen\s+clean\s+fgsm eps=2/255 refused\s+1\s+2\s+\d+\s+0\s+0\s+0\.000\s.*$", out, re.M)
        assert line, out
        assert "refused, never attempted: AttackRefused: fgsm needs gradients, but method 'frozen'" in line.group(0)
        assert "fix: `add 'surrogate: CARD'" in line.group(0) and "cannot probe" not in out
        assert re.search(r"^\s*1 cell refused: failure rows with the fix, no model pass$", out, re.M), out

"""The attack route of every card kind is planned from the card and is what the run then does: the planned variant
and mode (:func:`bench.runner.cells.method_threats`, :func:`bench.runner.stages.attack.planned_mode`) equal the mode
the rows record, no planned ``direct`` or ``transfer`` cell is refused at run time, and a ``refused`` cell is never
attempted (failure rows with the fix). Card kinds: a plain differentiable card, a non-differentiable card (with and
without a surrogate), and median-smoothing cards over a differentiable and over a non-differentiable base."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from bench.methods.cards import build_method, load_card
from bench.runner.cells import REFUSED, expand_cells
from bench.runner.matrix import load_matrix
from bench.runner.runner import run_matrix
from bench.runner.stages.attack import Attacker, planned_mode
from bench.runner.stages.plan import plan

MRS = "adapter: median_smoothing\ntile: null\nargs: {{base: {base}, sigma: 0.05, n: 3}}\n"
CARDS = ["bicubic", "frozen", "tiny-mrs", "frozen-mrs"]


@pytest.fixture
def kinds(tiny_project, monkeypatch):
    """The tiny project plus ``frozen`` (bicubic declaring itself non-differentiable, as an ncnn or JPEG-in-the-loop
    method) and median-smoothing cards over the tiny RRDB (differentiable) and over ``frozen``."""
    from bench.methods import ADAPTERS
    from bench.methods.bicubic import Bicubic

    ADAPTERS.load()
    frozen = type("FrozenBicubic", (Bicubic,), {"differentiable": False})
    monkeypatch.setitem(ADAPTERS._entries, "frozen_bicubic", frozen)
    methods = tiny_project["methods"]
    (methods / "frozen.yaml").write_text("title: Frozen\nadapter: frozen_bicubic\ntile: null\n")
    (methods / "tiny-mrs.yaml").write_text("title: Tiny MRS\n" + MRS.format(base="tiny-rrdb"))
    (methods / "frozen-mrs.yaml").write_text("title: Frozen MRS\n" + MRS.format(base="frozen"))
    inline = "title: Inline MRS\nadapter: median_smoothing\ntile: null\nargs: {base: {adapter: frozen_bicubic}}\n"
    (methods / "inline-frozen-mrs.yaml").write_text(inline)
    return tiny_project


def _matrix(project: dict[str, Path], surrogate: str | None) -> Path:
    data = yaml.safe_load(project["matrix"].read_text())
    fgsm = {"name": "fgsm", "attack": "fgsm", "epsilons": ["8/255"], "conditions": ["clean"], "loss": "l1"}
    fgsm.update(eot_samples=2, transfer_from_base=True, surrogate=surrogate)
    sign = {"name": "sign", "attack": "random_sign", "epsilons": ["8/255"], "conditions": ["clean"], "loss": "l1"}
    data.update(methods=CARDS, conditions=data["conditions"][:1], attacks=[fgsm, sign], attack_images=1)
    data.update(metrics=["psnr"])
    data.pop("gallery", None)
    project["matrix"].write_text(yaml.safe_dump(data, sort_keys=False))
    return project["matrix"]


# (method, attack, variant, surrogate) -> planned mode, for each matrix (the fgsm entry's surrogate)
EXPECTED = {
    None: {
        ("bicubic", "fgsm", "direct", None): "white-box",
        ("frozen", "fgsm", REFUSED, None): None,
        ("tiny-mrs", "fgsm", "direct", None): "eot",
        ("tiny-mrs", "fgsm", "transfer-from-base", "tiny-rrdb"): "transfer",
        ("frozen-mrs", "fgsm", REFUSED, None): None,
        ("frozen-mrs", "fgsm", REFUSED, "frozen"): None,  # transfer from its base: no gradient there either
        ("bicubic", "random_sign", "direct", None): "gradient-free",
        ("frozen", "random_sign", "direct", None): "gradient-free",  # needs no gradient: attacks it itself
        ("tiny-mrs", "random_sign", "direct", None): "gradient-free",
        ("frozen-mrs", "random_sign", "direct", None): "gradient-free",
    },
    "bicubic": {
        ("bicubic", "fgsm", "direct", None): "white-box",
        ("frozen", "fgsm", "transfer", "bicubic"): "transfer",
        ("tiny-mrs", "fgsm", "direct", None): "eot",
        ("tiny-mrs", "fgsm", "transfer-from-base", "tiny-rrdb"): "transfer",
        ("frozen-mrs", "fgsm", "transfer", "bicubic"): "transfer",
        ("frozen-mrs", "fgsm", REFUSED, "frozen"): None,
        ("bicubic", "random_sign", "direct", None): "gradient-free",
        ("frozen", "random_sign", "direct", None): "gradient-free",
        ("tiny-mrs", "random_sign", "direct", None): "gradient-free",
        ("frozen-mrs", "random_sign", "direct", None): "gradient-free",
    },
}


@pytest.mark.parametrize("name", [*CARDS, "tiny-rrdb", "inline-frozen-mrs"])
def test_a_cards_capabilities_are_the_built_methods(kinds, name):
    """One rule (Method.declared_capabilities): what the plan reads from the card is what the built method says --
    a smoothing card is stochastic and smoothed, and exactly as differentiable as its base."""
    card = load_card(name)
    assert card.capabilities == build_method(card).capabilities
    assert card.provenance()["differentiable"] is card.differentiable
    expected = {"bicubic": True, "tiny-rrdb": True, "tiny-mrs": True, "frozen": False, "frozen-mrs": False}
    assert card.differentiable is expected.get(name, False)
    assert card.stochastic is name.endswith("-mrs")


@pytest.mark.parametrize("surrogate", [None, "bicubic"], ids=["no-surrogate", "surrogate"])
def test_planned_mode_is_the_recorded_mode_for_every_card_kind(kinds, tmp_path, surrogate):
    matrix = load_matrix(_matrix(kinds, surrogate))
    the_plan = plan(matrix)
    attacked = [c for c in the_plan.cells if c.threat.attacked]
    planned = {}
    for cell in attacked:
        stochastic = the_plan.provenances[cell.method]["stochastic"]
        mode = planned_mode(cell, stochastic)
        key = (cell.method, cell.threat.attack, cell.threat.variant, cell.threat.surrogate)
        planned[key] = None if mode is None else mode.value
        planned[cell.key] = planned[key]
    assert {k: v for k, v in planned.items() if isinstance(k, tuple)} == EXPECTED[surrogate]

    summary = run_matrix(matrix, tmp_path / "run", device="cpu", progress=False)
    from bench.report.tables import load_run

    rows = load_run(tmp_path / "run").records
    rows = rows[rows["attack"] != "none"]
    assert set(rows["cell"]) == {c.key for c in attacked}  # every planned cell ran and recorded rows
    for cell in attacked:
        mine = rows[rows["cell"] == cell.key]
        recorded = {None if pd.isna(m) else str(m) for m in mine["attack_mode"]}
        assert recorded == {planned[cell.key]}, cell.label()
        if cell.threat.variant == REFUSED:  # never attempted: failure rows saying how to attack it
            assert (mine["status"] == "failed").all()
            assert mine["error"].str.contains("not differentiable").all()
            assert mine["error"].str.contains("surrogate").all()
            if cell.threat.surrogate == "frozen":  # the transfer from its own base: that setting is the fix
                assert mine["error"].str.contains("drop transfer_from_base").all()
            assert mine["attack_forward"].isna().all()
        else:  # no planned direct / transfer cell is refused at run time
            assert (mine["status"] == "ok").all(), (cell.label(), mine["error"].tolist())
            assert (mine["attack_linf"] <= 8 / 255 + 1e-6).all()
    n_refused = sum(c.threat.variant == REFUSED for c in attacked)
    assert summary.exit_code == (1 if n_refused else 0) and len(summary.failed) == n_refused


def test_a_plan_the_built_method_contradicts_is_a_bug_not_a_failure_row(kinds):
    """Cells planned without the cards' capabilities take every method as differentiable; attacking the
    non-differentiable one with such a plan raises (the plan and the run disagree), before any forward pass."""
    matrix = load_matrix(_matrix(kinds, None))
    cell = next(c for c in expand_cells(matrix, {m: {"card": m} for m in CARDS}) if c.method == "frozen")
    assert cell.threat.variant == "direct"
    with pytest.raises(RuntimeError, match=r"planned 'direct'.*not differentiable"):
        Attacker(torch.device("cpu")).build(cell, build_method("frozen"))


def test_a_surrogate_entry_on_a_differentiable_method_is_planned_once_under_the_first_name(
    tiny_project, tmp_path, caplog
):
    """A differentiable method is attacked directly, so an entry with a ``surrogate`` computes what the plain entry
    computes: one cell (one key, one label), shown under the first entry -- not a table silently renamed."""
    import logging

    import yaml

    from bench.report.html import write_report
    from bench.runner.matrix import load_matrix
    from bench.runner.runner import Runner, run_matrix

    data = yaml.safe_load(tiny_project["matrix"].read_text())
    fgsm = {"attack": "fgsm", "epsilons": ["8/255"], "loss": "l1"}
    data.update(
        methods=["tiny-rrdb"],
        conditions=[{"name": "clean", "corruption": "clean"}],
        metrics=["psnr"],
        attacks=[{"name": "none"}, {"name": "fgsm", **fgsm}, {"name": "fgsm-transfer", **fgsm, "surrogate": "bicubic"}],
    )
    tiny_project["matrix"].write_text(yaml.safe_dump(data))
    matrix = load_matrix(tiny_project["matrix"])
    with caplog.at_level(logging.INFO, logger="bench.runner.cells"):
        cells = Runner(matrix, tmp_path / "plan", device="cpu", progress=False).cells
    assert [c.threat.name for c in cells] == ["none", "fgsm"]
    assert len({c.key for c in cells}) == 2
    assert any("fgsm-transfer" in r.message and "planned once" in r.message for r in caplog.records)
    assert run_matrix(matrix, tmp_path / "r", device="cpu", progress=False).exit_code == 0
    write_report(tmp_path / "r")
    tables = sorted(p.name for p in (tmp_path / "r" / "tables").glob("*.csv"))
    assert tables == ["folder__clean.csv", "folder__clean__fgsm_eps0.0313725.csv"]

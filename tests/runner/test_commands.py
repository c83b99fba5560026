"""The ``run`` and ``report`` subcommands: parsing, exit codes, the printed index path."""

from __future__ import annotations

import argparse

import pytest

from bench.report.commands import resolve_run_dir
from bench.runner.commands import add_parser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_run_then_report_by_name(tiny_project, tmp_path, capsys):
    out = tmp_path / "reports"
    args = _parse(["run", "--matrix", str(tiny_project["matrix"]), "--out", str(out), "--device", "cpu"])
    args.no_progress = True
    assert args.func(args) == 0
    index = out / "tiny" / "index.html"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(index)
    index.unlink()
    args = _parse(["report", "tiny", "--out", str(out)])
    assert args.func(args) == 0
    assert index.is_file() and capsys.readouterr().out.strip() == str(index)
    assert resolve_run_dir(str(out / "tiny")) == out / "tiny"


def test_invalid_matrix_exits_2_before_any_work(tiny_project, tmp_path, capsys):
    out = tmp_path / "out"
    args = _parse(["run", "--matrix", str(tiny_project["matrix"]), "--out", str(out), "--set", "methods=[nope]"])
    assert args.func(args) == 2
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


def test_report_of_unknown_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run"):
        resolve_run_dir("missing", tmp_path)

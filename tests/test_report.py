"""The report a reader can use: numbered and captioned figures and tables, the statistics it states, commands that
paste, exact zeros printed as such, the optional missing-entries section, and figures with labelled axes and
legends off the data. Built from a real lab's results (``lab_run``), edited where a case needs it."""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from conftest import Lab

from lab2_lightning.lab.report import make_figures, render_markdown, write_report

COMPLETION = {
    "rank": 2,
    "steps": 1000,
    "seeds": 3,
    "rows": 150,
    "cols": 4,
    "mask_seed": 0,
    "fractions": [
        {
            "fraction": fraction,
            "hidden_entries": hidden,
            "gd_rmse": {"mean": mean, "std": 0.0123, "min": mean - 0.02, "max": mean + 0.02},
            "gd_rmse_per_seed": [mean - 0.02, mean, mean + 0.02],
            "column_mean_rmse": 0.7777,
            "hard_impute_rmse": mean + 0.0011,
        }
        for fraction, hidden, mean in ((0.1, 60, 0.3131), (0.2, 120, 0.3535), (0.4, 240, 0.4848))
    ],
}


@pytest.fixture
def results(lab_run: Lab) -> dict[str, Any]:
    """A copy of a real lab's results, free to edit, without Exercise 1 with missing entries (an optional section:
    the tests that need it add ``COMPLETION``)."""
    results = copy.deepcopy(lab_run.results)
    results.pop("completion", None)
    return results


@pytest.fixture
def with_completion(results: dict[str, Any]) -> dict[str, Any]:
    """The lab's results with a made-up Exercise 1 with missing entries."""
    results["completion"] = copy.deepcopy(COMPLETION)
    return results


def figures_in(markdown: str) -> list[tuple[str, int, str]]:
    """Each figure's stem, number and caption: the caption is the paragraph after the image."""
    found = re.findall(r"^!\[[^\]]+\]\((\w+)\.png\)\n\n\*\*Figure (\d+)\.\*\* (.+)$", markdown, re.MULTILINE)
    return [(stem, int(number), caption) for stem, number, caption in found]


@pytest.mark.parametrize("completion", [False, True])
def test_figures_and_tables_are_numbered_in_order_and_captioned(results: dict[str, Any], completion: bool) -> None:
    """Every image is followed by "Figure N." and a caption, numbered 1, 2, ... in order; every table follows its
    "Table N." line, numbered the same way: the optional section renumbers the ones after it."""
    if completion:
        results["completion"] = COMPLETION
    markdown = render_markdown(results)
    figures = figures_in(markdown)
    assert len(figures) == markdown.count("![")
    assert [number for _, number, _ in figures] == list(range(1, len(figures) + 1))
    assert all(len(caption.split()) >= 10 for _, _, caption in figures)
    stems = [stem for stem, _, _ in figures]
    assert stems == list(make_figures(results))  # the same figures, in the same order, as written and in TensorBoard
    assert ("completion_rmse" in stems) == completion
    tables = re.findall(r"^\*\*Table (\d+)\.\*\* .+\n\n\|", markdown, re.MULTILINE)
    assert [int(n) for n in tables] == list(range(1, len(tables) + 1))
    assert len(tables) == len(re.findall(r"^\|(---\|)+$", markdown, re.MULTILINE))
    plt.close("all")


def test_the_report_states_its_std_and_that_the_published_split_is_another(results: dict[str, Any]) -> None:
    """The std is named as the sample standard deviation (n − 1), and the published accuracies as another split's."""
    markdown = render_markdown(results)
    assert "sample standard deviation (n − 1" in markdown
    assert "another split" in markdown
    assert "reference, not a target" in markdown


def test_reproduce_commands_paste_with_a_space_in_a_path(results: dict[str, Any]) -> None:
    """Every command in the bash blocks, the TensorBoard one included, splits back into the command it names."""
    results["commands"] = [
        ["lab2", "lab", "--out", "my reports", "--log_dir", "it's logs"],
        ["lab2", "report", "my reports/results.json"],
    ]
    results["settings"]["tensorboard"] = "it's logs/lab/version_0"
    blocks = re.findall(r"```bash\n(.*?)```", render_markdown(results), re.DOTALL)
    commands = [shlex.split(line) for block in blocks for line in block.splitlines()]
    assert commands == [*results["commands"], ["tensorboard", "--logdir", "it's logs/lab/version_0"]]


def rank_sweep_rows(markdown: str) -> dict[int, list[str]]:
    """The rank-sweep table's cells by rank."""
    table = markdown.split("| rank r |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", table, re.MULTILINE)
    return {int(rank): [cell.strip() for cell in cells.split("|")] for rank, cells in rows}


@pytest.mark.parametrize("full_rank_optimum", [0.0, 1e-30])
def test_a_zero_optimum_prints_as_exact(results: dict[str, Any], full_rank_optimum: float) -> None:
    """At full rank the optimum, 0 to rounding, prints as "0 (exact)", the absolute gap is printed, and no relative
    gap (a division by ~0) appears; the other ranks keep theirs."""
    results["rank_sweep"][-1]["svd_loss"] = full_rank_optimum
    rows = rank_sweep_rows(render_markdown(results))
    full = results["rank_sweep"][-1]
    _, optimum, gap, relative = rows[full["rank"]]
    assert optimum == "0 (exact)"
    assert float(gap) == pytest.approx(full["gd_loss"], rel=1e-2)
    assert relative == "n/a: optimum 0 (exact)"
    for rank in range(1, full["rank"]):
        assert re.fullmatch(r"-?\d\.\d\de[-+]\d\d", rows[rank][3]), rows[rank]


def test_the_completion_section_appears_only_with_its_results(results: dict[str, Any]) -> None:
    """Without ``completion`` there is no such section (today's results render); with it, its table shows every
    fraction's numbers, and its figure is drawn."""
    assert "missing entries" not in render_markdown(results)
    assert "completion_rmse" not in make_figures(results)
    results["completion"] = COMPLETION
    markdown = render_markdown(results)
    assert "## Exercise 1 with missing entries" in markdown
    assert "mask seed 0" in markdown
    assert "| 10 % | 60 | 0.3131 ± 0.0123 | 0.2931 – 0.3331 | 0.7777 | 0.3142 |" in markdown
    assert "| 40 % | 240 | 0.4848 ± 0.0123 | 0.4648 – 0.5048 | 0.7777 | 0.4859 |" in markdown
    assert "completion_rmse" in make_figures(results)
    plt.close("all")


def test_report_refuses_a_garbled_completion_in_one_line(
    fails: Callable[..., str], results: dict[str, Any], tmp_path: Path
) -> None:
    """``lab2 report`` of results whose completion section lacks a value exits 2 naming the file; nothing written."""
    results["completion"] = {**COMPLETION, "fractions": [{"fraction": 0.1}]}
    (tmp_path / "broken.json").write_text(json.dumps(results))
    assert "broken.json" in fails("report", "broken.json")
    assert not (tmp_path / "lab2.md").exists()


def test_write_report_writes_every_figure_it_names(with_completion: dict[str, Any], tmp_path: Path) -> None:
    """Every figure lab2.md names is written beside it, the completion figure included."""
    out = tmp_path / "a report"
    write_report(with_completion, out)
    stems = re.findall(r"\]\((\w+)\.png\)", (out / "lab2.md").read_text())
    assert "completion_rmse" in stems
    for stem in stems:
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem


def test_every_axis_is_labelled(with_completion: dict[str, Any]) -> None:
    """Every panel of every figure names both its axes."""
    for stem, figure in make_figures(with_completion).items():
        for ax in figure.axes:
            assert ax.get_xlabel().strip(), (stem, ax.get_title())
            assert ax.get_ylabel().strip(), (stem, ax.get_title())
        plt.close(figure)


def test_legends_are_off_the_data(with_completion: dict[str, Any]) -> None:
    """No legend sits inside any panel: each is the figure's own, in a margin (and none searches for "best")."""
    for stem, figure in make_figures(with_completion).items():
        assert all(ax.get_legend() is None for ax in figure.axes), stem
        figure.canvas.draw()
        for legend in figure.legends:
            box = legend.get_window_extent()
            assert not any(box.overlaps(ax.get_window_extent()) for ax in figure.axes), stem
            assert figure.bbox.contains(box.x0, box.y0) and figure.bbox.contains(box.x1, box.y1), stem
        plt.close(figure)


def test_a_gap_below_zero_is_drawn_as_rounding(results: dict[str, Any]) -> None:
    """A GD loss a rounding below its optimum (a gap a log axis cannot show) is drawn on the floor and named."""
    results["rank_sweep"][0]["gd_loss"] = results["rank_sweep"][0]["svd_loss"] * (1 - 1e-16)
    figure = make_figures(results)["rank_sweep"]
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert "GD − optimum ≤ 0 (rounding)" in labels
    plt.close("all")

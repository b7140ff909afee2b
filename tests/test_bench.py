"""The adaptation benchmark's glue runs end to end (tiny sizes: the figures mean nothing)."""

from __future__ import annotations

import pytest

from bench import adaptation


def test_adaptation_benchmark_runs_prints_every_method_with_its_spread_and_plots(tmp_path, capsys):
    plot = tmp_path / "adaptation.png"
    results = adaptation.run(str(plot), quick=True)
    assert list(results) == ["zero-shot, one template", "zero-shot", "CoOp, 16 shots",
                             "Tip-Adapter, 16 shots", "linear probe, 1 shots", "linear probe, 16 shots",
                             "contrastive fine-tune, 16 shots", "WiSE-FT, alpha chosen per split"]
    for name, row in results.items():
        assert set(row) == {"clean", "scan"}
        for spread in row.values():
            # zero-shot has no split; every few-shot figure is one value per split (2 in quick)
            assert len(spread.values) == (1 if name.startswith("zero-shot") else 2)
            assert all(0.0 <= v <= 1.0 for v in spread.values)
            assert spread.worst <= spread.mean <= max(spread.values)
    out = capsys.readouterr().out
    assert "[PASS]" in out or "[FAIL]" in out
    assert "the shift is real" in out and "WiSE-FT sweep" in out and "worst split" in out
    assert "over 2 splits" in out
    assert plot.stat().st_size > 10_000


def test_spread_summarises_the_splits():
    spread = adaptation.Spread((0.80, 0.90, 0.85))
    assert spread.mean == pytest.approx(0.85) and spread.worst == 0.80
    assert spread.std == pytest.approx(0.05)  # sample std: sqrt((0.05² + 0.05² + 0) / 2)
    assert str(spread) == "85.0% ± 5.0"
    assert str(adaptation.Spread((0.5,))) == "50.0%" and adaptation.Spread((0.5,)).std == 0.0


def test_adaptation_benchmark_measures_only_the_methods_asked(capsys):
    results = adaptation.run(quick=True, methods=["templates", "coop"])
    assert list(results) == ["zero-shot, one template", "zero-shot", "CoOp, 16 shots"]
    assert "CoOp, 16 shots" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown methods"):
        adaptation.run(quick=True, methods=["coop", "magic"])


def test_search_benchmark_runs_and_measures_recall_against_exact(capsys):
    from bench import search

    # 4,000 vectors: nlist = 4000 // 39 = 102 cells, default nprobe 16 (added to the sweep)
    rows = search.run(n=4000, dim=16, topics=20, queries=30, nprobes=(1, 102), repeats=1)
    assert [r["nprobe"] for r in rows] == [1, 16, 102]
    assert all(0.0 <= r["recall"] <= 1.0 and r["qps"] > 0 and r["speedup"] > 0 for r in rows)
    assert rows[-1]["recall"] == 1.0  # every cell visited: the exact answer
    assert rows[0]["recall"] < 1.0  # one cell of 102 misses neighbours
    out = capsys.readouterr().out
    assert ("[PASS]" in out) != ("[FAIL]" in out) and "recall@10" in out


def test_grading_estimate_spreads_the_class_over_the_workers():
    from bench import grading

    times = {"01": 10.0, "03": 60.0}  # 70 s of grading per student
    walls = grading.estimate(times, (1, 2, 16), students=200, overhead=1.0)
    assert walls[1] == pytest.approx(200 * 72 + 61)
    assert walls[16] == pytest.approx(200 * 72 / 16 + 61)  # the last, longest task alone
    assert walls[2] < walls[1]


def test_siglip_benchmark_quick_mode_trains_both_losses_and_pairs_them(capsys):
    from bench import siglip

    siglip.run(quick=True)
    out = capsys.readouterr().out
    for batch in siglip.QUICK_BATCHES:
        assert f"| {batch} | {siglip.QUICK_EXAMPLES // batch} |" in out  # same examples seen
        for seed in range(2):
            for loss in siglip.LOSSES:
                assert f"seed {seed} batch {batch:>4} {loss:<7}" in out
    assert "sigmoid - softmax, paired" in out


def test_siglip_benchmark_summary_and_verdicts(tmp_path):
    from bench import siglip

    runs = [{"loss": loss, "batch": 8, "seed": seed, "top1": top1}
            for seed, (soft, sig) in enumerate([(0.20, 0.30), (0.22, 0.31), (0.18, 0.29)])
            for loss, top1 in (("softmax", soft), ("sigmoid", sig))]
    (row,) = siglip.summarise(runs)
    assert row["softmax"]["mean"] == pytest.approx(0.20)
    assert row["sigmoid"]["low"] < row["sigmoid"]["mean"] < row["sigmoid"]["high"]
    assert row["difference"]["mean"] == pytest.approx(0.10)
    assert row["difference"]["verdict"] == "sigmoid better"  # paired: the same gain every seed
    assert siglip.verdict(-0.02, 0.05, 3).startswith("no clear difference")
    assert siglip.verdict(-0.05, -0.01, 3) == "softmax better"
    assert siglip.verdict(0.0, 0.0, 1) == "one seed: no interval"
    with pytest.raises(ValueError, match="fewer than 2 steps"):
        siglip.train_one("sigmoid", 64, *siglip.training_stream(64, 0), seed=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        siglip.train_one("hinge", 8, *siglip.training_stream(16, 0), seed=0)


def test_stored_siglip_results_cover_every_batch_with_intervals():
    import json

    from bench import siglip

    stored = json.loads(siglip.RESULTS.read_text())
    batches = stored["protocol"]["batches"]
    assert [row["batch"] for row in stored["summary"]] == batches
    assert len(stored["runs"]) == 2 * len(batches) * stored["protocol"]["seeds"]
    for row in stored["summary"]:
        for loss in siglip.LOSSES:
            assert row[loss]["low"] <= row[loss]["mean"] <= row[loss]["high"]
        assert row["difference"]["verdict"] == siglip.verdict(
            row["difference"]["low"], row["difference"]["high"], stored["protocol"]["seeds"])


def test_grading_budget_tables_give_the_ratios_and_the_margins():
    from bench import grading

    def result(wall, cpu, cell, at):
        return {"seconds": wall, "cpu_seconds": cpu, "max_cell_cpu": cell, "max_cell": at}

    figures = {
        ("quiet", 1): {"wall": 100.0, "load": (0.5, 1.0), "notebooks": {
            "01_a": result(10, 8, 3.0, 4), "07_b": result(90, 80, 30.0, 27)}},
        ("busy", 1): {"wall": 250.0, "load": (2.5, 3.0), "notebooks": {
            "01_a": result(25, 8.4, 3.1, 4), "07_b": result(225, 82, 32.0, 27)}},
        ("quiet", 2): {"wall": 80.0, "load": (1.0, 2.0), "notebooks": {
            "01_a": result(12, 9, 3.5, 4), "07_b": result(80, 84, 33.0, 27)}},
    }
    text = grading.budget_tables(figures)
    assert "busy / quiet at --jobs 1: batch wall 2.50x, CPU 1.03x" in text
    assert "jobs 2 / jobs 1, quiet: batch wall 0.80x" in text
    assert "busy / quiet at --jobs 2" not in text  # not measured: no ratio made up
    # columns: quiet j1, quiet j2, busy j1 (walls, then CPU)
    assert "| 07 | 90 s | 80 s | 225 s | 80 s | 84 s | 82 s | 33.0 s (cell 27) | 2.50x |" in text
    assert "300 CPU s against the costliest cell measured, 33.0 CPU s: 9.09x margin" in text
    assert "1800 CPU s against the costliest notebook measured, 84.0 CPU s: 21.43x" in text

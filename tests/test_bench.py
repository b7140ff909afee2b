"""The adaptation benchmark's glue runs end to end (tiny sizes: the figures mean nothing)."""

from __future__ import annotations

from bench import adaptation


def test_adaptation_benchmark_runs_prints_every_method_and_plots(tmp_path, capsys):
    plot = tmp_path / "adaptation.png"
    results = adaptation.run(str(plot), quick=True)
    assert {"zero-shot", "linear probe, 1 shots", "linear probe, 16 shots", "Tip-Adapter, 16 shots",
            "contrastive fine-tune, 16 shots"} <= set(results)
    assert any(name.startswith("WiSE-FT, alpha=") for name in results)
    for row in results.values():
        assert set(row) == {"clean", "scan"} and all(0.0 <= v <= 1.0 for v in row.values())
    out = capsys.readouterr().out
    assert "[PASS]" in out or "[FAIL]" in out
    assert "the shift is real" in out and "WiSE-FT sweep" in out
    assert plot.stat().st_size > 10_000

"""The example notebook is executed by tests/test_exercises.py (solved and untouched, with a
temporary progress file), so nbval must not collect it a second time against the real home."""

collect_ignore_glob = ["*.ipynb"]

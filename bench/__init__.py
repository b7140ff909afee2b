"""Benchmarks of the course library, printed as ratios measured in one run.

``python -m bench`` runs all three (zero-shot, retrieval, encoding); ``python -m bench zeroshot``
(or ``retrieval``, ``encoding``) runs one. Results are never asserted in the unit tests; the
latest figures are in ``bench/README.md``.
"""

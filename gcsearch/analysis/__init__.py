"""Analyses of trained models and of a search's budgets (a proxy task's own seed spread is a
benchmark: ``gcsearch.bench.proxy``).

``nl`` (``gcsearch analyze nl``): GCNet's Table 1, query-independence of Non-local attention.
``fidelity`` (``gcsearch analyze fidelity``): rank agreement of candidates between a cheap and a
full budget.
``resolve`` (``gcsearch resolve``): seeds added only where a paper verdict is still open, under
the group-sequential plan of ``gcsearch.report.sequential``.
"""

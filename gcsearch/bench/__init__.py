"""``gcsearch bench WHAT``: every benchmark in one place, each printing measured figures (never
asserting timings).

* ``train`` (``train.py``): the training harness against a bare PyTorch loop;
* ``search`` (``search.py``): search strategies replayed on exhaustive tables (``table.py``:
  the tables, their builder and the executor that replays them);
* ``proxy`` (``proxy.py``): a proxy task's seed spread, modes and split-seed rank agreement;
* ``flops`` (``flops.py``): the ``gcsearch flops`` table against one baseline trace;
* ``storage`` (``storage.py``): trials/s of the study storages under concurrent drivers;
* ``overhead`` (``overhead.py``): a search's slot-time split into its parts, against the same
  trainings in a plain loop;
* ``sequential`` (``sequential.py``): false-verdict rates of the resolve verdicts, simulated,
  and of the fixed-n verdicts (``fixed_n.py``, which ``tests/test_verdicts_simulation.py`` runs);
* ``coverage`` (``coverage.py``): how often the fidelity interval covers its target, simulated.

The engine (``gcsearch.search``) never imports this package; ``gcsearch.cli.COMMANDS`` maps
each ``WHAT`` to its ``run_bench_*`` function.
"""


def write_figures(data: object, out: str | None, default: str) -> None:
    """Write a simulation's figures as JSON to ``out`` (``default`` when not given), folders
    made, and say where."""
    import json
    from pathlib import Path

    path = Path(out or default)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")

"""The ``gcsearch`` command line: one entry point, one subcommand per thing a user does.

Argument parsing is cheap (no torch, ray or optuna import) so ``gcsearch --help`` answers at
once; each command imports what it needs when it runs, through the one table ``COMMANDS``.
Errors a user can cause (``UserError``) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gcsearch.errors import InputWarning, UserError, mask_secrets
from gcsearch.tasks import COMPILE_MODES, DEFAULT_TASK, FUSE_MODES

#: Every command and the function that runs it with the parsed args (``bench`` and ``analyze``
#: by their WHAT), as "module:function": the one place a command is registered, imported only
#: when it runs so ``gcsearch --help`` stays cheap. ``build_parser`` adds each one's flags.
COMMANDS: dict[str, str] = {
    "search": "gcsearch.launch:run_search",
    "report": "gcsearch.report:run_report",
    "resolve": "gcsearch.analysis.resolve:run_resolve",
    "export": "gcsearch.export:run_export",
    "space": "gcsearch.search.space:run_space",
    "flops": "gcsearch.cost:run_flops",
    "tasks": "gcsearch.tasks:run_tasks",
    "train": "gcsearch.tasks.train_cli:run_train",
    "bench train": "gcsearch.bench.train:run_bench_train",
    "bench search": "gcsearch.bench.search:run_bench_search",
    "bench proxy": "gcsearch.bench.proxy:run_bench_proxy",
    "bench flops": "gcsearch.bench.flops:run_bench_flops",
    "bench storage": "gcsearch.bench.storage:run_bench_storage",
    "bench overhead": "gcsearch.bench.overhead:run_bench_overhead",
    "bench asks": "gcsearch.bench.asks:run_bench_asks",
    "bench select": "gcsearch.bench.select:run_bench_select",
    "bench sequential": "gcsearch.bench.sequential:run_bench_sequential",
    "bench coverage": "gcsearch.bench.coverage:run_bench_coverage",
    "bench prior": "gcsearch.bench.prior:run_bench_prior",
    "bench data": "gcsearch.bench.data:run_bench_data",
    "bench fuse": "gcsearch.bench.fuse:run_bench_fuse",
    "analyze nl": "gcsearch.analysis.nl:run_analyze_nl",
    "analyze fidelity": "gcsearch.analysis.fidelity:run_analyze_fidelity",
}


def handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int | None]:
    """The function ``COMMANDS`` registers for the parsed command."""
    key = args.command
    if key in ("bench", "analyze"):
        key = f"{key} {args.what}"
    module, func = COMMANDS[key].split(":")
    return getattr(importlib.import_module(module), func)


def _add_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="count, show or validate a search-space file")
    p.add_argument("action", choices=("count", "show", "validate"))
    p.add_argument("file", help="a space file or a shipped space's name, e.g. quick")


def _add_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flops",
        help="params and MACs of the baseline, presets and candidates",
        description="The papers' cost columns: params and MACs (fvcore; one multiply-add = "
        "one) of the backbone, and of every preset or given candidate, with the increase.",
    )
    p.add_argument(
        "--backbone", default="resnet50", help="e.g. resnet50, resnet20 (default: %(default)s)"
    )
    p.add_argument(
        "--input", type=int, default=None, help="input side in pixels (default: 224, CIFAR nets 32)"
    )
    p.add_argument(
        "--layout",
        default="pytorch",
        choices=("pytorch", "caffe"),
        help="Bottleneck stride on the 3x3 (pytorch, torchvision) or the first 1x1 (caffe, the "
        "original ResNet and the GCNet paper's counts)",
    )
    p.add_argument(
        "--num-classes", type=int, default=None, help="default: 1000 ImageNet nets, 10 CIFAR nets"
    )
    p.add_argument(
        "--placement",
        default=None,
        help="placement of presets and bare block ids, e.g. after_add:c4:last (default: "
        "each preset's paper placement; after_1x1:c3c4c5 for blocks)",
    )
    p.add_argument(
        "candidates", nargs="*", help="candidate ids, block ids or presets (default: all presets)"
    )
    lat = p.add_argument_group("measured latency (timm benchmark.py conventions)")
    lat.add_argument(
        "--latency",
        action="store_true",
        help="also measure each row's latency (median of 40 passes after 10 warm-up)",
    )
    lat.add_argument("--batch", type=int, default=1, help="latency batch size (default: 1)")
    lat.add_argument(
        "--device", default="cpu", help="latency device: cpu, cuda, cuda:1 (default: %(default)s)"
    )
    lat.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")


def _add_tasks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the proxy tasks")
    p.add_argument("action", choices=("list",), nargs="?", default="list")
    p.add_argument("--data", default=None, help="data directory for tasks that read files")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one candidate on a proxy task and print the result",
        description="Train one candidate on a proxy task and print the result, "
        "e.g. gcsearch train gc@after_1x1:c3c4c5 --task synthetic --seeds 0,1,2",
    )
    p.add_argument("candidate", help="a candidate id, a preset name, 'none', or a JSON spec file")
    p.add_argument(
        "--task", default=DEFAULT_TASK, help="see `gcsearch tasks` (default: %(default)s)"
    )
    p.add_argument("--data", default=None, help="data directory for tasks that read files")
    p.add_argument("--backbone", default=None, help="default: the task's (see `gcsearch tasks`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (mean ± std)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (default: auto)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--min-hidden", type=int, default=8, help="smallest bottleneck width")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="on CUDA, deterministic cuDNN (bit-reproducible, slower; default: "
        "cuDNN autotuning). CPU runs are deterministic anyway",
    )
    p.add_argument(
        "--fuse",
        action="store_true",
        help="train the --seeds as one fused network (one run, a result per seed; "
        "gcsearch bench fuse measures whether it is faster here)",
    )
    p.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default="off",
        help="the training step through torch.compile (reduce-overhead: CUDA graphs on a "
        "GPU; default: off)",
    )
    p.add_argument("--json", action="store_true", help="print the TrialResults as JSON")
    p.add_argument(
        "--save",
        default=None,
        metavar="FILE",
        help="write the trained weights (best seed) for export / analyze nl",
    )
    b = p.add_argument_group("budget overrides (default: the task's budget)")
    for flag, kind in (
        ("--train-images", int),
        ("--val-images", int),
        ("--epochs", int),
        ("--batch-size", int),
        ("--lr", float),
        ("--image-size", image_size),
        ("--warmup-epochs", float),
        ("--data-seed", int),
    ):
        b.add_argument(flag, type=kind, default=None)
    b.add_argument("--augment", choices=("none", "flip", "flip-crop"), default=None)
    b.add_argument(
        "--eval",
        dest="eval_split",
        choices=("val", "test"),
        default=None,
        help="evaluate on the held-out val images or the official test split",
    )


def image_size(text: str) -> int | tuple[int, int]:
    """``--image-size``: S (S x S) or HxW, e.g. 16x64 (``budget.image_size`` checks the sides)."""
    try:
        sides = tuple(int(t) for t in text.lower().split("x"))
    except ValueError:
        sides = ()
    if len(sides) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r} is not S or HxW (e.g. 48 or 16x64)")
    return sides[0] if len(sides) == 1 else (sides[0], sides[1])


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="run a multi-objective search over a space file",
        description="Run (or --resume) an Optuna multi-objective study over a space file; "
        "trials run as Ray tasks, locally or on a cluster (--address). "
        "Flags override the space file's [search] and [fidelity] settings. "
        "Example: gcsearch search --space quick",
    )
    p.add_argument(
        "--space",
        default="quick",
        help="a space file, or a shipped space by name: quick, gcnet-paper, full, "
        "bench-small (default: %(default)s)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="the data folder of a task that reads files (imagefolder, cifar10, ...); "
        "replaces the space file's [task] data",
    )
    p.add_argument("--run-dir", default=None, help="run directory (default: runs/<space name>)")
    p.add_argument("--study-name", default=None, help="study name (default: the space name)")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage: URL (postgresql://..., sqlite:///...), journal file "
        "(*.log) or 'memory' (default: <run dir>/study.db)",
    )
    p.add_argument(
        "--sampler",
        choices=("ehvi", "nsga2", "tpe", "random", "grid"),
        default=None,
        help="search strategy (default: the space file's, else ehvi)",
    )
    p.add_argument(
        "--n-trials",
        default=None,
        help="distinct candidates to train, or 'all' (default: the space file's)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per candidate")
    p.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="trials at once (default: space file; with --address, cluster size)",
    )
    p.add_argument(
        "--cpus-per-trial",
        type=float,
        default=None,
        help="Ray CPUs (and torch threads, at least 1) per trial",
    )
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="Ray GPUs per trial; fractions share a GPU (e.g. 0.25)",
    )
    p.add_argument(
        "--fuse-seeds",
        choices=FUSE_MODES,
        default=None,
        help="a candidate's seeds as one fused network on one slot: on, off, or auto "
        "(where gcsearch bench fuse --record measured it faster) (default: space file, off)",
    )
    p.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default=None,
        help="the training step through torch.compile (default: space file, off)",
    )
    p.add_argument(
        "--reference-ci",
        type=float,
        default=None,
        help="reference rows add seeds until their top-1 95%% interval is within +- this "
        "many points; 0: off (default: space file, off)",
    )
    p.add_argument(
        "--reference-max-seeds",
        type=int,
        default=None,
        help="most seeds a reference row trains for --reference-ci (default: space file, 30)",
    )
    p.add_argument(
        "--address", default=None, help="join a running Ray cluster (e.g. auto or 10.0.0.1:6379)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the study in --run-dir (finished trials are kept)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where trials train (auto: a GPU when the trial holds one)",
    )
    p.add_argument(
        "--no-fidelity",
        action="store_true",
        help="train every candidate at the full budget (no successive halving)",
    )
    p.add_argument(
        "--fidelity",
        action="store_true",
        help="successive halving over candidates (rungs at min-epochs x eta^k)",
    )
    p.add_argument(
        "--no-speculate",
        action="store_true",
        help="slots idle at a rung's barrier wait for its decision instead of continuing the "
        "candidates sure to go on (same results; no work lost on a wrong guess)",
    )
    p.add_argument("--eta", type=int, default=None, help="successive-halving reduction factor")
    p.add_argument(
        "--min-epochs",
        type=int,
        default=None,
        help="first rung (epochs); put it where candidates are past chance",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="Ray retries of a trial whose worker died (default: %(default)s)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny budget (2 epochs, 256 images) to check a setup end to end",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="on CUDA, deterministic cuDNN (bit-reproducible, slower; default: "
        "cuDNN autotuning). CPU trials are deterministic anyway",
    )
    p.add_argument(
        "--keep-states",
        action="store_true",
        help="keep the training states rung runs leave in RUN/states/ (a promotion "
        "continues from them; removed after the search by default)",
    )


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="Pareto front and ablation tables of a finished study")
    p.add_argument("run", help="a run directory, a storage file or an Optuna storage URL")
    p.add_argument("--study", default=None, help="study name (if the storage holds several)")
    p.add_argument(
        "--reference",
        default="gc",
        help="ablation reference: candidate id, block id or preset (default: gc)",
    )
    p.add_argument("--md", default=None, metavar="FILE", help="write Markdown (+ PNG plots)")
    p.add_argument(
        "--html",
        default=None,
        metavar="FILE",
        help="write one self-contained HTML file (plots embedded, tables sortable)",
    )
    p.add_argument("--csv", default=None, metavar="FILE", help="write the results frame (CSV)")
    p.add_argument("--parquet", default=None, metavar="FILE", help="write the frame (Parquet)")
    p.add_argument(
        "--curves",
        default=None,
        metavar="FILE",
        help="write the learning curves: one row per trial, seed and epoch (CSV)",
    )
    p.add_argument(
        "--verdicts",
        action="store_true",
        help="add GCNet's findings, checked (always on for a gcnet-paper space)",
    )
    p.add_argument(
        "--fidelity",
        default=None,
        metavar="JSON",
        help="the JSON of `gcsearch analyze fidelity --json`, quoted in the verdicts",
    )
    p.add_argument(
        "--nl",
        default=None,
        metavar="JSON",
        help="the JSON of `gcsearch analyze nl --json`, for the NL verdict",
    )
    p.add_argument(
        "--compare",
        default=None,
        metavar="CSV",
        help="a committed results CSV (`report --csv`, a run's results.csv): does "
        "each candidate's mean agree with this run's within its 95%% interval?",
    )


def _add_resolve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resolve",
        help="add seeds where the paper's verdicts are still open (group-sequential)",
        description="After a first pass, train more seeds for the candidates of the "
        "paper's comparisons that are not yet decided, look by look (seeds already trained "
        "are reused; run it again to resume), until each is decided or a cap is hit. The "
        "looks are fixed at the first resolve. Example: gcsearch resolve runs/gcnet-paper "
        "--max-seeds 12 --step 3 --hours 2",
    )
    p.add_argument("run", help="a run directory of a paper-space search")
    p.add_argument("--study", default=None, help="study name (if the storage holds several)")
    p.add_argument("--storage", default=None, help="the run's storage, if not RUN/study.db")
    p.add_argument(
        "--max-seeds",
        type=int,
        default=None,
        help="seeds per candidate at the last look (default: 12, or the run's recorded plan)",
    )
    p.add_argument(
        "--step", type=int, default=None, help="seeds added per look (default: 3, or the plan's)"
    )
    p.add_argument(
        "--max-trainings", type=int, default=None, help="added trainings in all (default: no cap)"
    )
    p.add_argument("--hours", type=float, default=None, help="wall hours of this call (no cap)")
    p.add_argument("--nl", default=None, metavar="JSON", help="the NL analysis, as for report --nl")
    p.add_argument("--parallel", type=int, default=None, help="trainings at once")
    p.add_argument("--address", default=None, help="join a running Ray cluster")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the chosen block as a standalone PyTorch module")
    p.add_argument(
        "run",
        nargs="?",
        default=None,
        help="a run directory, storage file or URL (omit to export --id alone)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--rank",
        type=int,
        default=1,
        help="K-th Pareto-front member by top-1, best first (default: 1)",
    )
    which.add_argument("--id", default=None, help="a candidate id or preset, e.g. gc")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the .py file to write")
    p.add_argument("--study", default=None, help="study name (if the storage holds several)")
    p.add_argument("--class-name", default=None, help="class name (default: from the spec)")
    p.add_argument(
        "--channels",
        type=int,
        default=256,
        help="C at which the docstring states one block's cost (default: 256)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=14,
        help="H = W at which the docstring states one block's cost (default: 14)",
    )


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks that print measured figures")
    p.add_argument("what", choices=[k.split()[1] for k in COMMANDS if k.startswith("bench ")])
    f = p.add_argument_group("bench flops: the default flops table vs one baseline trace")
    f.add_argument("--input", type=int, default=None, help="input side (default: the net's)")
    t = p.add_argument_group("bench train: train(...) vs a bare PyTorch loop, interleaved")
    t.add_argument(
        "--task",
        default=None,
        help=f"default: {DEFAULT_TASK}; proxy with --space: run the space's candidates "
        "and budget on this task instead of the space's",
    )
    t.add_argument("--candidate", default="gc", help="default: %(default)s")
    t.add_argument("--backbone", default=None, help="default: the task's")
    t.add_argument(
        "--repeats", type=int, default=3, help="pairs of runs (train, flops; default: %(default)s)"
    )
    t.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    t.add_argument("--epochs", type=int, default=None, help="default: the task's budget")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    t.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds (tests): digits for train; 3 replays for search",
    )
    c = p.add_argument_group("bench proxy and bench search")
    c.add_argument(
        "--space",
        default=None,
        help="proxy: take task, budget and candidates from a space; search: the space "
        "(default: bench-small)",
    )
    c.add_argument(
        "--out",
        default=None,
        help="figures JSON (proxy: runs/bench/proxy-<task>.json; search: "
        "<run-root>/bench-search.json; storage: runs/bench-storage.json; sequential: "
        "runs/bench-sequential.json; data: none)",
    )
    x = p.add_argument_group("bench proxy: seed spread, modes, MDD at n = 3, split-seed τ")
    x.add_argument(
        "--candidates",
        default=None,
        help="comma-separated ids/presets (default: none,se,snl,gc + 2 searched)",
    )
    x.add_argument("--seeds", default="0,1,2,3,4", help="e.g. 0,1,2 or 0-5 (default: %(default)s)")
    x.add_argument("--jobs", type=int, default=1, help="parallel trials, processes (default: 1)")
    x.add_argument("--data", default=None, help="data directory for tasks that read files")
    x.add_argument(
        "--budget",
        default=None,
        help="budget overrides, e.g. train_images=4000,epochs=8 (default: the task's)",
    )
    x.add_argument(
        "--split-tau",
        action="store_true",
        help="Kendall τ between rankings under the first and second half of the seeds",
    )
    x.add_argument(
        "--record",
        action="store_true",
        help="also record the figures (package data): proxy for `gcsearch tasks list`, "
        "fuse for [search] fuse_seeds = 'auto'",
    )
    x.add_argument("--quiet", action="store_true", help="no line per finished trial")
    g = p.add_argument_group(
        "bench search: strategies replayed on an exhaustive table (see docs/search-benchmark.md)"
    )
    g.add_argument(
        "--table",
        default=None,
        help="exhaustive table (default: benchmarks/tables/<space name>.jsonl)",
    )
    g.add_argument(
        "--build-table",
        action="store_true",
        help="train what the table is missing first (resumes a partial table)",
    )
    g.add_argument("--table-seeds", type=int, default=3, help="seeds per network (default 3)")
    g.add_argument(
        "--table-parallel",
        type=int,
        default=1,
        help="trainings at once while building the table (default 1)",
    )
    g.add_argument("--replays", type=int, default=100, help="replays per strategy (default 100)")
    g.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="sampler seed (and shuffle) of the first replay (default 0; tune a "
        "strategy on other seeds than the ones you report)",
    )
    g.add_argument(
        "--in-flight",
        default="0",
        help="candidates unanswered at each proposal, as parallel slots run them; "
        "several (0,1,8) give one section each (default 0; the shipped parallel = 2 "
        "seed jobs is 1)",
    )
    g.add_argument(
        "--ehvi-batch",
        default=None,
        help="how ehvi treats networks in flight (tuning; default: the shipped "
        "rule, gcsearch.search.strategy.SHIPPED)",
    )
    g.add_argument(
        "--ehvi",
        default=None,
        metavar="KEY=VALUE,...",
        help="ehvi settings to replay with, a label read over the class defaults, e.g. "
        "sd_scale=2,starts=4 (tuning; default: the shipped gcsearch.search.strategy.SHIPPED)",
    )
    g.add_argument(
        "--budget-fraction",
        type=float,
        default=0.25,
        help="trials as a fraction of the candidates (default 0.25)",
    )
    g.add_argument(
        "--strategies",
        default="ehvi,tpe,nsga2,random",
        help="comma-separated (default: %(default)s); the controls cheapest-first "
        "and random networks always run",
    )
    g.add_argument(
        "--only",
        choices=("search", "fidelity", "scaling", "needles"),
        default=None,
        help="one section (default: search and fidelity); needles: the fewest networks of the "
        "table that reach 0.97 of its hypervolume (what P(HV >= 0.97) asks a search to find)",
    )
    g.add_argument("--run-root", default="runs", help="where scaling runs go (default runs)")
    sel = p.add_argument_group(
        "bench select: ehvi's settings chosen on some exhaustive tables, scored on the one "
        "left out (also --in-flight, --budget-fraction, --jobs, --run-root, --out)"
    )
    sel.add_argument(
        "--tables",
        default="bench-small,bench-small-graded,bench-small-pairs,bench-small-digits",
        help="bench spaces whose committed tables take part (default: %(default)s)",
    )
    sel.add_argument(
        "--grid",
        default=None,
        help="settings replayed, e.g. 'sd_scale=1,2;starts=2,4' (default: "
        "gcsearch.bench.select.DEFAULT_GRID)",
    )
    sel.add_argument(
        "--tune-seeds", default="500-529", help="seeds the choice is made on (default: %(default)s)"
    )
    sel.add_argument(
        "--test-seeds",
        default="0-99",
        help="seeds the held-out table is scored on (default: %(default)s)",
    )
    sel.add_argument(
        "--fractions",
        default="0.15,0.25,0.4",
        help="budgets (fractions of the candidates) the setting chosen on all tables is also "
        "scored at, every table, nothing in flight (default: %(default)s)",
    )
    sel.add_argument(
        "--in-flight-tune",
        default="0,2",
        help="candidates in flight the choice is made at (default: %(default)s)",
    )
    k = p.add_argument_group(
        "bench asks: one ehvi ask's CPU time and memory on generated spaces of 10^3-10^5 candidates"
    )
    k.add_argument("--sizes", default=None, help="pool sizes (default: 1000,10000,100000)")
    k.add_argument("--told", type=int, default=200, help="results told first (default 200)")
    k.add_argument("--asks", type=int, default=5, help="timed asks per size (default 5)")
    k.add_argument("--axes", type=int, default=5, help="generated axes (default 5)")
    k.add_argument("--values", type=int, default=10, help="values per axis (default 10)")
    k.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    k.add_argument(
        "--exact-up-to",
        type=int,
        default=0,
        help="also time the unscreened ask up to this size and check it proposes "
        "the same (default 0: never)",
    )
    q = p.add_argument_group(
        "bench sequential: false-verdict rates of the resolve verdicts and the fixed-n verdicts"
    )
    q.add_argument(
        "--studies",
        type=int,
        default=200_000,
        help="simulated studies, and simulated runs of the fixed-n rules (default: %(default)s)",
    )
    d = p.add_argument_group(
        "bench data: a node's memory for an ImageFolder's images, and what a rerun decodes"
    )
    d.add_argument("--images", type=int, default=None, help="images written (default 20000)")
    d.add_argument("--size", type=int, default=None, help="their side in pixels (default 64)")
    d.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    d.add_argument("--dir", default=None, help="scratch folder (default: the system's temp)")
    s = p.add_argument_group("bench storage: trials/s of SQLite, journal file and PostgreSQL")
    s.add_argument("--drivers", default=None, help="concurrent driver processes (1,2,4,8)")
    s.add_argument("--trials", type=int, default=None, help="trials per driver (default: 100)")
    s.add_argument("--storages", default=None, help="sqlite,journal,postgresql (default: all)")
    s.add_argument(
        "--postgres",
        default=None,
        help="a PostgreSQL URL (default: a throwaway server on 127.0.0.1; "
        "nofsync: the same without fsync)",
    )
    u = p.add_argument_group("bench fuse: k seeds separately vs as one fused network")
    u.add_argument("--k", type=int, default=3, help="seeds fused (default: %(default)s)")
    x.add_argument(
        "--resume",
        action="store_true",
        help="keep the trials a stopped run logged beside --out (same budget)",
    )


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyses of trained models and of the proxy's fidelity")
    a = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    n = a.add_parser(
        "nl",
        help="GCNet Table 1: is trained NL attention query-independent?",
        description="Cosine distances between positions of a Non-local block's "
        "inputs, outputs (z - x) and attention maps, and the JSD between attention "
        "maps, over held-out images. Example: gcsearch analyze nl runs/paper",
    )
    n.add_argument("target", help="a weights file (.pt) or a run directory (its weights/)")
    n.add_argument("--task", default=None, help="default: the task the weights were trained on")
    n.add_argument("--data", default=None, help="data directory for tasks that read files")
    n.add_argument("--images", type=int, default=256, help="held-out images (default: 256)")
    n.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON")
    f = a.add_parser(
        "fidelity",
        help="rank agreement of candidates between two budgets",
        description="Kendall τ and Spearman ρ (bootstrap over seeds) between the "
        "rankings at a low and a high budget, and the front overlap. "
        "Example: gcsearch analyze fidelity runs/quick --low-epoch 3",
    )
    f.add_argument(
        "targets",
        nargs="*",
        help="one run (low = an early epoch, high = the last) or two runs (low high)",
    )
    f.add_argument(
        "--low-epoch",
        type=int,
        default=None,
        help="one run: the low budget's epoch (default: first rung, else half)",
    )
    f.add_argument("--csv", default=None, help="a long table: candidate,seed,budget,top1[,macs]")
    f.add_argument("--study", default=None, help="study name (if the storage holds several)")
    f.add_argument("--bootstrap", type=int, default=2000, help="resamples (default: 2000)")
    f.add_argument("--json", default=None, metavar="FILE", help="also write the figures")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gcsearch",
        description="Search and ablate global-context blocks for convolutional networks.",
    )
    parser.add_argument("--version", action="version", version="gcsearch 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_search,
        _add_report,
        _add_resolve,
        _add_export,
        _add_space,
        _add_flops,
        _add_tasks,
        _add_train,
        _add_bench,
        _add_analyze,
    ):
        add(sub)
    return parser


def check_folder(folder: str | os.PathLike[str], flag: str) -> None:
    """Raise a one-line ``UserError`` unless ``folder`` is, or can be made, a writable folder.

    Nothing is created: the nearest existing ancestor must be a folder the user can write in.
    """
    path = Path(folder).absolute()
    if path.exists() and not path.is_dir():
        raise UserError(
            f"{flag} {folder}: {path} is a file, not a folder (allowed: a folder "
            "path, new or existing)"
        )
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(
            f"{flag} {folder}: {probe} is a file, so no folder can be made under it "
            "(allowed: a path whose parents are folders)"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(
            f"{flag} {folder}: cannot write in {probe} (permission denied or a "
            "read-only file system; allowed: a folder you can write in)"
        )


def _output_file(file: str, flag: str) -> None:
    if Path(file).is_dir():
        raise UserError(f"{flag} {file}: is a folder (allowed: a file path)")
    check_folder(Path(file).absolute().parent, flag)


def check_outputs(args: argparse.Namespace) -> None:
    """Every place a command will write, checked before any work starts (one line each)."""
    if args.command == "search":
        check_folder(args.run_dir or "runs", "--run-dir")
        storage = getattr(args, "storage", None) or ""
        if storage.startswith("sqlite:///"):
            _output_file(storage.removeprefix("sqlite:///"), "--storage")
        elif storage and storage != "memory" and "://" not in storage:
            _output_file(storage, "--storage")
    elif args.command == "export":
        _output_file(args.output, "-o")
    elif args.command == "train" and getattr(args, "save", None):
        _output_file(args.save, "--save")
    elif args.command == "analyze" and getattr(args, "json", None):
        _output_file(args.json, "--json")  # before the analysis runs, not after
    elif args.command == "report":
        for flag in ("md", "html", "csv", "parquet", "curves"):
            if getattr(args, flag, None):
                _output_file(getattr(args, flag), f"--{flag}")


def _one_line(text: object) -> str:
    """A message as one line, any password masked: the form of every error and warning."""
    return mask_secrets(" ".join(str(text).splitlines()))


def _warning_lines(command: str, show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints an ``InputWarning`` as one line (the run goes on);
    other warnings go to ``show`` as before."""

    def showwarning(message: Warning | str, category: type[Warning], *rest: Any, **kw: Any) -> None:
        if issubclass(category, InputWarning):
            print(f"gcsearch {command}: warning: {_one_line(message)}", file=sys.stderr)
        else:
            show(message, category, *rest, **kw)

    return showwarning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # e.g. the resume hint repeats it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = _warning_lines(args.command, warnings.showwarning)
            check_outputs(args)
            code = handler(args)(args)
    except UserError as exc:
        print(f"gcsearch {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"gcsearch {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def run() -> None:
    """The ``gcsearch`` command: ``main``, then exit without the interpreter's last garbage
    collections. They walk every object torch, Ray and pandas made (1.1 s of the demo's exit on
    2 cores) to free memory the ending process returns anyway; ``gc.freeze`` leaves them out,
    while atexit handlers, finalizers and stream flushes still run. Only here, never in
    ``main``: a process that calls ``main`` and goes on (the tests) keeps its collector."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()

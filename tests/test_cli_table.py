"""The one CLI table: every command the parser accepts has a registered handler, and every
registered handler exists (so a renamed function fails here, not in a user's terminal)."""

from __future__ import annotations

import argparse
import importlib

from gcsearch.cli import COMMANDS, build_parser, handler


def _parser_commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = set()
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if a.dest == "what"]
        if not nested:
            out.add(name)
            continue
        out |= {f"{name} {w}" for w in nested[0].choices}  # bench's choices, analyze's parsers
    return out


def test_every_command_is_registered_once_with_a_real_function() -> None:
    assert _parser_commands() == set(COMMANDS)
    for key, target in COMMANDS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), key


def test_handler_resolves_nested_commands() -> None:
    args = build_parser().parse_args(["analyze", "fidelity", "x"])
    assert handler(args).__name__ == "run_analyze_fidelity"
    args = build_parser().parse_args(["bench", "flops"])
    assert handler(args).__name__ == "run_bench_flops"

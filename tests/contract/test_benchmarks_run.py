"""The benchmarks still run: each figure in benchmarks/README.md comes from a script, and a script that
no longer starts (an API it calls was renamed) is found here, not when someone next needs the figure.

Tiny sizes: these check that the scripts run to their report line, not the figures themselves.
"""

from __future__ import annotations

import runpy

import pytest


def run_benchmark(module: str, args: tuple[str, ...], monkeypatch, capsys) -> str:
    """``python -m benchmarks.<module> <args>``, in this process (no second start-up of every library)."""
    monkeypatch.setattr("sys.argv", [module, *args])
    runpy.run_module(f"benchmarks.{module}", run_name="__main__")
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("module", "args", "report"),
    [
        ("votes", ("--voters", "20", "--rounds", "2"), "group / single ="),
        ("scheduler", ("--servers", "20", "--posts", "5", "--idle", "0.1"), "idle between slots:"),
        ("sqlite_trips", ("20",), "one trip (the bot's)    read        2 "),
    ],
)
def test_benchmark_runs_to_its_report(module, args, report, monkeypatch, capsys):
    assert report in run_benchmark(module, args, monkeypatch, capsys)

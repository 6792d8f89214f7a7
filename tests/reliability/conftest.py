"""The reliability suite's summary: one line per case, printed at the end of the run.

Fast cases run in the README's test command; the long soaks are marked ``soak`` and run with
``python -m pytest -m soak tests/reliability`` (see tests/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class CaseSummary:
    case: str
    kind: str  # load | fault | bad-input | security
    figures: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        figures = ", ".join(f"{k}={v}" for k, v in self.figures.items())
        return f"{self.kind:<9} {self.case:<34} {figures}"


_SUMMARIES: list[CaseSummary] = []


@pytest.fixture
def summary():
    """Record a case's figures: ``summary("L1 10k votes", "load", sent=…, acked=…, lost=0, …)``."""

    def record(case: str, kind: str, **figures: object) -> CaseSummary:
        item = CaseSummary(case, kind, figures)
        _SUMMARIES.append(item)
        return item

    return record


def pytest_terminal_summary(terminalreporter):
    if not _SUMMARIES:
        return
    terminalreporter.section("reliability summary")
    for item in _SUMMARIES:
        terminalreporter.write_line(item.line())

"""The reliability suite's summary: one line per case, printed at the end of the run.

Fast cases run in the README's test command; the long soaks are marked ``soak`` and run with
``python -m pytest -m soak -n 0 tests/reliability`` (see tests/README.md). Each case's figures travel in its
test report (``user_properties``), so the summary is complete when the tests run in several processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

KEY = "reliability-summary"


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
def summary(request):
    """Record a case's figures: ``summary("L1 10k votes", "load", sent=…, acked=…, lost=0, …)``."""

    def record(case: str, kind: str, **figures: object) -> CaseSummary:
        item = CaseSummary(case, kind, figures)
        request.node.user_properties.append((KEY, (case, kind, {k: str(v) for k, v in figures.items()})))
        return item

    return record


def pytest_runtest_logreport(report):
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key == KEY:
            case, kind, figures = value
            _SUMMARIES.append(CaseSummary(case, kind, figures))


def pytest_terminal_summary(terminalreporter):
    if not _SUMMARIES:
        return
    terminalreporter.section("reliability summary")
    for item in sorted(_SUMMARIES, key=lambda s: (s.kind, s.case)):
        terminalreporter.write_line(item.line())
    bad = [int(s.figures["tried"]) for s in _SUMMARIES if s.kind == "bad-input" and "tried" in s.figures]
    if bad:
        terminalreporter.write_line(CaseSummary("bad inputs (all kinds)", "bad-input", {"tried": sum(bad)}).line())

"""The chaos report: each case says what it did and what it checked; printed per case and at the end of the run."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

_REPORTS: dict[str, list[str]] = {}
_OUTCOMES: dict[str, str] = {}


class ChaosReport:
    """Lines of one chaos case: `did` for an action on the system, `checked` for an assertion that held."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def did(self, text: str) -> None:
        """Record (and print) something the case did to the system."""
        self._add(f"did:     {text}")

    def checked(self, text: str) -> None:
        """Record (and print) a check that passed."""
        self._add(f"checked: {text}")

    def saw(self, text: str) -> None:
        """Record (and print) an observation that is reported but not asserted."""
        self._add(f"saw:     {text}")

    def _add(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Iterator[ChaosReport]:
    """The report of the running chaos case."""
    lines: list[str] = []
    _REPORTS[request.node.nodeid] = lines
    yield ChaosReport(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Remember each case's outcome and, for a failure, its last line (the report names it)."""
    report = yield
    if item.nodeid in _REPORTS and (report.when == "call" or report.outcome != "passed"):
        if report.outcome == "failed":
            text = str(report.longrepr.reprcrash.message) if hasattr(report.longrepr, "reprcrash") else "failed"
            _OUTCOMES[item.nodeid] = "FAILED: " + text.splitlines()[0][:300] if text else "FAILED"
        elif report.skipped:
            _OUTCOMES[item.nodeid] = f"SKIPPED: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else ''}"
        elif item.nodeid not in _OUTCOMES:
            _OUTCOMES[item.nodeid] = "passed"
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the chaos report: every case, its outcome, what it did and checked."""
    if not _REPORTS:
        return
    terminalreporter.section("chaos report")
    for nodeid, lines in _REPORTS.items():
        terminalreporter.write_line(f"{nodeid}: {_OUTCOMES.get(nodeid, 'not run')}")
        for line in lines:
            terminalreporter.write_line(f"    {line}")

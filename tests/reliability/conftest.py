"""The reliability suite's scorecard fixture and the summary it prints after the tests."""

from __future__ import annotations

import pytest

from tests.reliability.scorecard import Scorecard, scorecard_from_env

SCORECARD_KEY = pytest.StashKey[Scorecard]()


def _session_scorecard(config: pytest.Config) -> Scorecard:
    if SCORECARD_KEY not in config.stash:
        config.stash[SCORECARD_KEY] = scorecard_from_env()
    return config.stash[SCORECARD_KEY]


@pytest.fixture
def scorecard(request: pytest.FixtureRequest) -> Scorecard:
    """The session's scorecard, for a test to record what it injected and how it went."""
    return _session_scorecard(request.config)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the scorecard, one line per figure, when reliability tests ran."""
    card = config.stash.get(SCORECARD_KEY, None)
    if card is None or not card.records:
        return
    terminalreporter.section("reliability scorecard")
    for line in card.lines():
        terminalreporter.write_line(line)

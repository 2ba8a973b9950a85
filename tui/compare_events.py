"""What the Compare area's workers report: runs, evaluations and votes read or saved, and a
judge's progress."""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message

from store.evals import Evaluation, StoredEvalItem
from store.projects import Project
from store.runs import Run
from store.vocabulary import Preference


class RunsRead(Message):
    """The project's completed runs and their evaluations were read."""

    def __init__(
        self,
        project: Project,
        runs: Sequence[Run],
        evaluations: dict[int, Evaluation | None],
        evaluating: frozenset[int],
    ) -> None:
        super().__init__()
        self.project = project
        """The project read."""
        self.runs = tuple(runs)
        """Its completed runs, oldest first."""
        self.evaluations = evaluations
        """The latest evaluation of each, by run id."""
        self.evaluating = evaluating
        """The runs whose process is still evaluating them."""


class EvaluationRead(Message):
    """The items of a run's latest evaluation were read."""

    def __init__(self, run_id: int, items: Sequence[StoredEvalItem], typed: dict[str, int]) -> None:
        super().__init__()
        self.run_id = run_id
        """The run evaluated."""
        self.items = tuple(items)
        """Its eval items, in the order answered."""
        self.typed = typed
        """Blind votes on typed prompts for this run, by preference."""


class PromptVoteSaved(Message):
    """A blind vote on the answers to a typed prompt was recorded."""

    def __init__(self, run_id: int, preference: Preference, typed: dict[str, int]) -> None:
        super().__init__()
        self.run_id = run_id
        self.preference = preference
        self.typed = typed
        """The run's votes on typed prompts, this one included."""


class PreferenceSaved(Message):
    """A blind vote was recorded on an eval item."""

    def __init__(self, item_id: int, preference: Preference) -> None:
        super().__init__()
        self.item_id = item_id
        """The eval item voted on."""
        self.preference = preference
        """``base``, ``tuned`` or ``tie``."""


class ExampleAdded(Message):
    """A corrected tuned answer was added to the dataset (or was already there)."""

    def __init__(self, added: bool) -> None:
        super().__init__()
        self.added = added
        """False when the same conversation was already in the dataset."""


class JudgingProgressed(Message):
    """The judge of a run's evaluation moved on."""

    def __init__(self, run_id: int, line: str) -> None:
        super().__init__()
        self.run_id = run_id
        """The run whose evaluation is judged."""
        self.line = line
        """What it is doing: ``judged 3/12``, or the model it starts with."""


class EvaluationJudged(Message):
    """The judge of a run's evaluation ended: every answer judged and stored, or stopped."""

    def __init__(self, run_id: int, evaluation: Evaluation | None) -> None:
        super().__init__()
        self.run_id = run_id
        self.evaluation = evaluation
        """The evaluation with its judge's summary; None when the person stopped the judge."""

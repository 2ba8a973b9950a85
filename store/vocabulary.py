"""The words the store keeps in its text columns, each set as a ``Literal`` type and its values."""

from __future__ import annotations

from typing import Literal, get_args

from store.errors import InputError

ExampleSource = Literal["typed", "imported", "drafted", "from-compare", "labelled"]
"""How an example came in: typed by a person, imported from a file, drafted, from Compare, or
labelled by a person (an input that came without an answer)."""
ExampleStatus = Literal["pending", "approved", "rejected"]
"""Whether an example is used: only approved rows train and evaluate."""
ExampleSplit = Literal["train", "eval"]
"""Whether an example trains the model or is held out to measure it."""
RunStatus = Literal["queued", "running", "completed", "failed", "stopped", "interrupted"]
"""Where a training run stands."""
Preference = Literal["base", "tuned", "tie"]
"""Which answer a person preferred in a blind A/B comparison."""

EXAMPLE_SOURCES: tuple[ExampleSource, ...] = get_args(ExampleSource)
EXAMPLE_STATUSES: tuple[ExampleStatus, ...] = get_args(ExampleStatus)
EXAMPLE_SPLITS: tuple[ExampleSplit, ...] = get_args(ExampleSplit)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
PREFERENCES: tuple[Preference, ...] = get_args(Preference)


def check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise InputError unless ``value`` is one of ``choices``, naming the field and the choices."""
    if value not in choices:
        raise InputError(f"{field}: {value!r} is not one of {', '.join(choices)}")

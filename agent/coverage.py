"""Coverage: how many live examples a spec has, per status, per label and per requirement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.spec import Requirement, TaskSpec, label_of, output_problem
from store.examples import Example


@dataclass(frozen=True)
class Count:
    """Approved and pending examples of one label or requirement."""

    approved: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        """Approved plus pending."""
        return self.approved + self.pending


@dataclass(frozen=True)
class Coverage:
    """How many live examples the project has, per label and per requirement."""

    approved: int
    pending: int
    rejected: int
    by_label: tuple[tuple[str, Count], ...]
    by_requirement: tuple[tuple[Requirement, Count], ...]
    off_spec: int
    """Approved or pending examples whose answer does not fit the output format."""
    unlabeled: int = 0
    """Pending inputs that have no answer yet (they wait in the labelling queue)."""


def coverage(spec: TaskSpec, examples: Sequence[Example]) -> Coverage:
    """Count the live examples per status, label and requirement."""
    live = [e for e in examples if e.deleted_at is None]
    counted = [e for e in live if e.status in ("approved", "pending")]
    by_label = {label: [0, 0] for label in spec.labels}
    by_requirement = {r.id: [0, 0] for r in spec.requirements}
    off_spec = 0
    for example in counted:
        column = 0 if example.status == "approved" else 1
        label = label_of(spec, example.response)
        if label is not None:
            by_label[label][column] += 1
        for tag in example.tags:
            if tag in by_requirement:
                by_requirement[tag][column] += 1
        if example.answered and output_problem(spec, example.response) is not None:
            off_spec += 1
    return Coverage(
        approved=sum(1 for e in live if e.status == "approved"),
        pending=sum(1 for e in live if e.status == "pending"),
        rejected=sum(1 for e in live if e.status == "rejected"),
        by_label=tuple((label, Count(*by_label[label])) for label in spec.labels),
        by_requirement=tuple((r, Count(*by_requirement[r.id])) for r in spec.requirements),
        off_spec=off_spec,
        unlabeled=sum(1 for e in counted if not e.answered),
    )

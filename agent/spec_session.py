"""The spec as an interview holds it: stored on each change, confirmed in words, and the next
question to ask about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import sqlite_utils

from agent import answers
from agent.spec import TaskSpec, load_spec, missing_parts, save_spec
from agent.spec_text import proposed_system_prompt, summarize_part
from store.examples import count_examples
from store.projects import Project

_QUESTIONS = {
    "goal": (
        'What should the model do? One sentence is enough, e.g. "sort support tickets by topic".'
    ),
    "input": 'What will the model be given each time? e.g. "the text of one support ticket".',
    "output": (
        "What should it answer? List the labels it chooses from, paste a sample JSON answer,"
        " or describe the text it writes."
    ),
    "labels": 'Which labels should it choose from? e.g. "billing, technical, account".',
    "json": 'Paste a sample JSON answer, e.g. {"name": "Ada Lovelace", "order_id": "A-1017"}.',
    "requirements": (
        "Which cases must the examples cover (e.g. angry customers, tickets in German)?"
        " List them, or say skip."
    ),
    "constraints": (
        'Any rules every answer must follow (e.g. "never invent an order number")? Or say skip.'
    ),
    "style": "What style should the answers have (tone, length, language)? Or say skip.",
}


EXAMPLES_HINT = (
    'Type examples as "Input: ... Output: ..." (several at once is fine), paste JSONL or CSV,'
    " give a file path, or /draft N to have a teacher model write some."
)


class SpecSession:
    """One project's spec during an interview, with what the interview remembers of it."""

    def __init__(self, db: sqlite_utils.Database, project: Project, cwd: Path) -> None:
        self.db = db
        self.project_id = project.id
        self.project_name = project.name
        self.spec: TaskSpec = load_spec(project)
        self.cwd = cwd
        """The folder a file path typed in the chat is read from."""
        self.last_part: str | None = None
        """The part the latest change was about, which a bare correction ("no, ...") fixes."""
        self._hinted_correction = False

    def examples_hint(self) -> str:
        """How to add examples; on a labels or JSON task, also an input alone and then its
        answer (``intake.hold_input``)."""
        answer = {"labels": "label", "json": "JSON answer"}.get(self.spec.output_kind or "")
        return EXAMPLES_HINT + (f" Or send an input, then its {answer}." if answer else "")

    def example_count(self) -> int:
        """Approved and pending examples of the project."""
        return sum(
            count_examples(self.db, self.project_id, status=status)
            for status in ("approved", "pending")
        )

    def pending(self) -> str | None:
        """The part the interview asks about now, or None when the spec is complete."""
        missing = missing_parts(self.spec, self.example_count())
        return missing[0] if missing else None

    def save(self, spec: TaskSpec, changed: Sequence[str] = ()) -> None:
        """Store ``spec``; a proposed system prompt follows the spec as it changes."""
        if changed:
            self.last_part = next(
                (part for part in reversed(changed) if part not in ("target",)), self.last_part
            )
        if any(part in spec.skipped for part in changed):
            spec = replace(spec, skipped=tuple(p for p in spec.skipped if p not in changed))
        if spec.system_prompt_origin == "proposed" and "system_prompt" not in changed:
            spec = replace(spec, system_prompt=proposed_system_prompt(spec))
        if spec != self.spec:
            save_spec(self.db, self.project_id, spec)
            self.spec = spec

    def confirmation(
        self, changed: Sequence[str], *, corrected: bool = False, ask: bool = True
    ) -> str:
        """What the spec now says about ``changed``, and (with ``ask``) the next question."""
        summary = "; ".join(summarize_part(self.spec, part) for part in dict.fromkeys(changed))
        text = ("Changed. " if corrected else "Got it. ") + summary[:1].upper() + summary[1:] + "."
        if not self._hinted_correction:
            text += ' (Say "no, ..." to correct me.)'
            self._hinted_correction = True
        return text + "\n" + self.next_question() if ask else text

    def next_question(self) -> str:
        """The question about the pending part, or what to do once the spec is complete."""
        pending = self.pending()
        if pending is None:
            count = self.example_count()
            return (
                f"The spec is complete and you have {count} of the {self.spec.example_target}"
                " examples to aim for. Add more, /draft N to have a teacher write some,"
                " /spec to review, or /train to start training."
            )
        return self.question(pending)

    def expects_labels(self) -> bool:
        """Whether the question about the answers asks for labels: the spec says they are
        labels, or the goal speaks of classifying."""
        return self.spec.output_kind == "labels" or (
            self.spec.output_kind is None and answers.mentions_labels(self.spec.goal or "")
        )

    def question(self, part: str) -> str:
        """The question that asks for ``part``, shaped by what the spec already says."""
        if part == "output":
            if self.expects_labels():
                return _QUESTIONS["labels"]
            if self.spec.output_kind == "json" or (
                self.spec.output_kind is None and answers.mentions_extraction(self.spec.goal or "")
            ):
                return _QUESTIONS["json"]
            if self.spec.output_kind == "free_text":
                return 'Describe the answers it should write, e.g. "a two-sentence summary".'
            return _QUESTIONS["output"]
        if part == "input":
            proposal = answers.proposed_input(self.spec)
            if proposal is not None:
                return (
                    f"What will the model be given each time: {proposal}? Say yes, or describe it."
                )
            return _QUESTIONS["input"]
        if part == "system_prompt":
            return (
                "I drafted a system prompt from the spec:\n  "
                + proposed_system_prompt(self.spec)
                + "\nSay yes to use it, or type your own."
            )
        if part == "examples":
            count = self.example_count()
            if count:
                return f"A few more examples, please ({count} so far). " + self.examples_hint()
            return "Now some examples. " + self.examples_hint()
        return _QUESTIONS[part]

"""The requirements interview: routes each message to a command, the model or guided mode.

One ``Interview`` serves the line REPL (``tunesmith chat``) and the app alike: text in, a reply
out, the transcript in ``messages``, the spec on the project, examples in ``examples``.
Guided mode needs no model; model mode lets a chat model read free text and falls back to
guided mode, once and saying so, when the model cannot give structured answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlite_utils
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agent import intake, phrasing
from agent.answers import without_examples
from agent.coverage import coverage
from agent.drafting import (
    MAX_DRAFT,
    WEAK_TEACHER_WARNING,
    Labeller,
    describe_report,
    draft_examples,
)
from agent.guided import guided_reply, skip
from agent.model_mode import (
    MAX_REPLY_CHARS,
    AgentTurn,
    SpecUpdate,
    apply_update,
    interview_messages,
    structured_call,
)
from agent.models import ChatModelSource
from agent.spec import missing_parts
from agent.spec_session import SpecSession
from agent.spec_text import describe_spec, summarize_part
from agent.typed_examples import looks_like_example
from agent.work import Work
from store.errors import TunesmithError, one_line_reason
from store.examples import list_examples
from store.imports import parse_unlabeled_text, read_examples, read_unlabeled
from store.messages import TranscriptMessage, add_message, count_messages, list_messages
from store.projects import Project

Action = Literal["train", "quit"]


Mode = Literal["guided", "model"]


DEFAULT_DRAFT = 10
"""How many examples ``/draft`` asks for when no number is given."""


TRANSCRIPT_READ = 40
"""The latest messages a turn reads: the model's history, and an input held for its output."""


HELP = """\
Commands:
  /spec          show the task spec and how many examples cover each label and case
  /examples      list the latest examples
  /import FILE   add examples from a JSONL, JSON or CSV file
  /draft N       have a teacher model draft N more examples (pending your review)
  /unlabeled     store the messages pasted before (or after it, or a .txt/.jsonl/.csv file)
                 as inputs without answers, to label in the Dataset area (l)
  /train         start training on the approved examples
  /skip          skip the current question
  /help          this list
  /quit          leave (everything is already saved)
Type examples as "Input: ... Output: ..." (several at once is fine, or the Output in the
next message), paste JSONL or CSV, or give a file path.
Correct me any time: "no, the labels are ...\""""


@dataclass(frozen=True)
class Reply:
    """What the agent says back, and an action for the caller to perform."""

    text: str
    action: Action | None = None


class Interview(SpecSession):
    """A requirements interview about one project."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        project: Project,
        *,
        model: ChatModelSource | None = None,
        teacher: ChatModelSource | None = None,
        labeller: Callable[[], Labeller | None] | None = None,
        cwd: Path | None = None,
    ) -> None:
        super().__init__(db, project, cwd or Path.cwd())
        self.mode: Mode = "model" if model is not None else "guided"
        self._model = model
        self._teacher = teacher
        # Made when a draft starts: the best labeller changes as runs complete.
        self._labeller = labeller
        self._warned_weak_teacher = False

    def opening(self) -> str:
        """The first thing the agent says in a session (stored in the transcript)."""
        if count_messages(self.db, self.project_id) == 0:
            text = (
                f"Hi! I'll help you write down the task for {self.project_name} and collect"
                " examples. /help lists commands.\n" + self.next_question()
            )
        else:
            done = [
                part
                for part in ("goal", "input", "output")
                if part not in missing_parts(self.spec, self.example_count())
            ]
            known = "; ".join(summarize_part(self.spec, part) for part in done)
            text = "Welcome back." + (f" So far: {known}." if known else "")
            transcript = list_messages(self.db, self.project_id, last=TRANSCRIPT_READ)
            held = intake.held_input(self, transcript)
            if held is None:
                text += "\n" + self.next_question()
            else:
                text += (
                    f"\nThe input {phrasing.short(held.text)} still waits for its output. "
                    + intake.waiting_hint(self)
                )
        return self.note(text)

    def note(self, text: str) -> str:
        """Add something the agent says (e.g. the outcome of an action) to the transcript."""
        if text.strip():
            add_message(self.db, self.project_id, "assistant", text.replace("\x00", ""))
        return text

    def history(self, last: int | None = None) -> list[BaseMessage]:
        """The transcript as langchain messages."""
        return [
            HumanMessage(m.content) if m.role == "user" else AIMessage(m.content)
            for m in list_messages(self.db, self.project_id, last=last)
        ]

    def handle(self, text: str, work: Work | None = None) -> Reply:
        """Answer one message of the person: a slash command, an answer, examples, a fix.

        ``work`` carries the progress and cancel of a long command (``/draft``)."""
        text = text.replace("\x00", "")
        earlier = list_messages(self.db, self.project_id, last=TRANSCRIPT_READ)
        held = intake.held_input(self, earlier)
        if text.strip():
            add_message(self.db, self.project_id, "user", text)
        try:
            if text.strip().startswith("/"):
                reply = self._command(text.strip(), held, work or Work())
            else:
                reply = Reply(self._read(text, earlier, held))
        except TunesmithError as error:
            reply = Reply(f"{error.message}\n{self.next_question()}")
        self.note(reply.text)
        return reply

    def _read(
        self, text: str, earlier: Sequence[TranscriptMessage], held: intake.HeldInput | None
    ) -> str:
        """Read a message that is no command: the rest of the example whose input is held,
        else as the mode reads it (and the held input, if any, is kept to label later)."""
        dropped = ""
        if held is not None and text.strip():
            rest_of_example = intake.continue_held(self, held, text.strip())
            if rest_of_example is not None:
                return rest_of_example
            dropped = intake.keep_unlabeled(self, held.text) + "\n"
        if self.mode == "model":
            return dropped + self._model_turn(text, earlier)
        return dropped + guided_reply(self, text)

    def _command(self, text: str, held: intake.HeldInput | None, work: Work) -> Reply:
        """Run a slash command; an input waiting for its output stays held (``/skip`` drops it)."""
        name = text.partition(" ")[0].lower()
        if held is None:
            return self._run_command(text, work)
        if name == "/skip":
            return Reply(intake.skip_held(self, held.text))
        reply = self._run_command(text, work)
        if reply.action is not None or not reply.text:
            return reply
        return Reply(f"{reply.text}\n{intake.still_waiting(held.text)}")

    def _run_command(self, text: str, work: Work) -> Reply:
        # Split at any whitespace: "/unlabeled" may be followed by a pasted block on new lines.
        name, argument = [*text.split(None, 1), ""][:2]
        name, argument = name.lower(), argument.strip()
        if name in ("/help", "/?"):
            return Reply(HELP)
        if name == "/spec":
            return Reply(self.describe())
        if name == "/examples":
            return Reply(self._list_examples())
        if name == "/import":
            if not argument:
                return Reply("Which file? e.g. /import tickets.jsonl")
            return Reply(self._import(argument))
        if name == "/draft":
            return Reply(self._draft(argument, work))
        if name == "/unlabeled":
            return Reply(self._unlabeled(argument))
        if name == "/train":
            return Reply("", action="train")
        if name == "/skip":
            return Reply(skip(self))
        if name in ("/quit", "/exit", "/bye"):
            return Reply(
                f"Bye. Everything is saved; continue with: tunesmith chat {self.project_name}",
                action="quit",
            )
        return Reply(f"Unknown command {name}. /help lists the commands.")

    def describe(self) -> str:
        """The spec and its coverage, as ``/spec`` shows it."""
        examples = list_examples(self.db, self.project_id)
        return describe_spec(self.project_name, self.spec, coverage(self.spec, examples))

    def _list_examples(self, limit: int = 10) -> str:
        examples = list_examples(self.db, self.project_id)
        if not examples:
            return "No examples yet. " + self.examples_hint()
        counts = coverage(self.spec, examples)
        lines = [
            f"{len(examples)} examples ({counts.approved} approved, {counts.pending} pending,"
            f" {counts.rejected} rejected); the latest:"
        ]
        for example in examples[-limit:]:
            lines.append(
                f"  #{example.id} {example.status} {example.source}:"
                f" {phrasing.clip(example.prompt, 50)} -> {phrasing.clip(example.response, 40)}"
            )
        return "\n".join(lines)

    def _import(self, argument: str) -> str:
        path = Path(phrasing.clean_phrase(argument)).expanduser()
        if not path.is_absolute():
            path = self.cwd / path
        return intake.store_parsed(self, read_examples(path), source="imported", origin=str(path))

    def _unlabeled(self, argument: str) -> str:
        """Store inputs without answers: the lines after the command, a file, or (with nothing
        after it) the message the person pasted just before."""
        if not argument:
            argument = self._last_pasted()
            if not argument:
                return (
                    "Paste the messages after /unlabeled (one per line), or give a file:"
                    " /unlabeled tickets.txt"
                )
        elif "\n" not in argument:
            path = Path(phrasing.clean_phrase(argument)).expanduser()
            path = path if path.is_absolute() else self.cwd / path
            if path.exists():
                return intake.store_unlabeled(self, read_unlabeled(path), origin=str(path))
        return intake.store_unlabeled(
            self, parse_unlabeled_text(argument), origin="the pasted lines"
        )

    def _last_pasted(self) -> str:
        """The person's message before the current command, unless it was a command too."""
        earlier = [
            message
            for message in list_messages(self.db, self.project_id, last=TRANSCRIPT_READ)
            if message.role == "user"
        ]
        if len(earlier) < 2 or earlier[-2].content.lstrip().startswith("/"):
            return ""
        return earlier[-2].content

    def _draft(self, argument: str, work: Work) -> str:
        count = DEFAULT_DRAFT
        if argument:
            if not argument.isdigit() or not 1 <= int(argument) <= MAX_DRAFT:
                return f"/draft takes a number from 1 to {MAX_DRAFT}, e.g. /draft 20"
            count = int(argument)
        teacher = self._teacher
        if teacher is None:
            return (
                "No teacher model is configured. Set TUNESMITH_AGENT_MODEL (and"
                " TUNESMITH_AGENT_BASE_URL for Ollama or another server), or run:"
                f" tunesmith draft {self.project_name} {count} --teacher MODEL"
            )
        lines = []
        if teacher.weak and not self._warned_weak_teacher:
            lines.append(WEAK_TEACHER_WARNING)
            self._warned_weak_teacher = True
        try:
            # Starting a local teacher loads its model first (seconds, a minute to convert).
            work.report(f"Loading the teacher {teacher.name}…")
            model = teacher.get()
            labeller = self._labeller() if self._labeller is not None and teacher.weak else None
            if teacher.weak:
                answers = "a labeller" if labeller is not None else "none yet: you label them"
                work.report(f"Drafting {count} inputs with {teacher.name}; answers: {answers}")
            report = draft_examples(
                self.db,
                self.project_id,
                model,
                count,
                weak=teacher.weak,
                labeller=labeller,
                work=work,
            )
        except TunesmithError:
            raise
        except Exception as exc:  # starting or reaching an outside model can fail in many ways
            lines.append(f"The teacher {teacher.name} is not available: {teacher.redact(str(exc))}")
            return "\n".join(lines)
        lines.append(teacher.redact(describe_report(report, self.project_name)))
        lines.append(self.next_question())
        return "\n".join(lines)

    def _model_turn(self, text: str, earlier: Sequence[TranscriptMessage]) -> str:
        body = text.strip()
        if not body:
            return guided_reply(self, text)
        # Pasted data and JSON samples are read exactly here; a model would only retype them.
        data_reply = intake.examples_in(self, body)
        if data_reply is not None:
            return data_reply
        if body.lstrip().startswith(("{", "```")):
            return guided_reply(self, text)
        assert self._model is not None
        try:
            model = self._model.get()
            messages = interview_messages(self.spec, self.example_count(), earlier, body)
            turn = structured_call(model, messages, AgentTurn)
        except Exception as exc:  # any failure of an outside model means guided mode from now on
            reason = self._model.redact(one_line_reason(exc))
            self.mode = "guided"
            notice = (
                f"(The model {self._model.name} cannot give the structured answers this interview"
                f" needs: {reason}. Continuing in guided mode.)"
            )
            return notice + "\n" + guided_reply(self, text)
        return self._apply_turn(turn)

    def _apply_turn(self, turn: AgentTurn) -> str:
        spec, changed = apply_update(self.spec, _without_examples(turn.update))
        self.save(spec, changed)
        parts: list[str] = []
        if changed:
            parts.append(self.confirmation(changed, ask=False))
        if turn.examples:
            pairs = []
            for pair in turn.examples:
                try:
                    pairs.append(intake.typed_example(pair.input, pair.output))
                except TunesmithError:
                    continue
            if pairs:
                stored = intake.store_examples(self, pairs, source="typed")
                parts.append(intake.saved_line(self, stored) + intake.fit_notes(self, pairs))
        reply = turn.reply.strip()[:MAX_REPLY_CHARS]
        parts.append(reply or self.next_question())
        return "\n".join(part for part in parts if part)


def _without_examples(update: SpecUpdate) -> SpecUpdate:
    """``update`` without the values that are example data: a model may copy an "Output: ..."
    line of the transcript into the cases or rules, and it is neither."""
    changes: dict[str, object] = {}
    for name in ("goal", "input_description", "output_description", "style", "system_prompt"):
        value = getattr(update, name)
        if isinstance(value, str) and looks_like_example(value):
            changes[name] = None
    for name in ("requirements", "constraints"):
        items = getattr(update, name)
        if items:
            kept = without_examples(items)
            changes[name] = kept or None
    return update.model_copy(update=changes)

"""The requirements interview: asks for what the spec lacks, recognises answers, keeps examples.

One ``Interview`` serves the line REPL (``tunesmith chat``) and the app alike: text in, a reply
out, the transcript in ``messages``, the spec on the project, examples in ``examples``.
Guided mode needs no model; model mode lets a chat model read free text and falls back to
guided mode, once and saying so, when the model cannot give structured answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import sqlite_utils
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agent import answers
from agent.drafting import MAX_DRAFT, WEAK_TEACHER_WARNING, describe_report, draft_examples
from agent.jsontext import JsonTextError
from agent.model_mode import (
    MAX_REPLY_CHARS,
    AgentTurn,
    apply_update,
    interview_messages,
    structured_call,
)
from agent.models import ChatModelSource, one_line_reason
from agent.spec import (
    REQUIRED_PARTS,
    TaskSpec,
    coverage,
    describe_spec,
    load_spec,
    missing_parts,
    output_known,
    output_problem,
    proposed_system_prompt,
    save_spec,
    summarize_part,
    with_requirements,
)
from store.errors import TunesmithError
from store.examples import (
    AddResult,
    ChatMessage,
    NewExample,
    add_examples,
    list_examples,
    validate_text,
)
from store.imports import ParsedFile, read_examples
from store.messages import TranscriptMessage, add_message, count_messages, list_messages
from store.projects import Project

Action = Literal["train", "quit"]
Mode = Literal["guided", "model"]

DEFAULT_DRAFT = 10
"""How many examples ``/draft`` asks for when no number is given."""

MAX_REPORTED_PROBLEMS = 5
"""Rejected rows or notes listed in one reply; the rest are counted."""

HELP = """\
Commands:
  /spec          show the task spec and how many examples cover each label and case
  /examples      list the latest examples
  /import FILE   add examples from a JSONL, JSON or CSV file
  /draft N       have a teacher model draft N more examples (pending your review)
  /train         start training on the approved examples
  /skip          skip the current question
  /help          this list
  /quit          leave (everything is already saved)
Type examples as "Input: ... Output: ..." (several at once is fine), paste JSONL or CSV,
or give a file path. Correct me any time: "no, the labels are ...\""""

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
_EXAMPLES_HINT = (
    'Type examples as "Input: ... Output: ..." (several at once is fine), paste JSONL or CSV,'
    " give a file path, or /draft N to have a teacher model write some."
)
_PROPOSAL_VERBS = re.compile(
    r"^(?:classify|categori[sz]e|sort|label|tag|triage|route|summari[sz]e|translate|answer"
    r"|extract|parse|detect|score|rate|rewrite|moderate|flag|reply to|respond to|analy[sz]e)\b",
    re.IGNORECASE,
)
_OBJECT_STOP = re.compile(
    r"\b(?:into|as|by|based|according|and then|with|using|for|in|to|so|according)\b", re.I
)
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


@dataclass(frozen=True)
class Reply:
    """What the agent says back, and an action for the caller to perform."""

    text: str
    action: Action | None = None


class Interview:
    """A requirements interview about one project."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        project: Project,
        *,
        model: ChatModelSource | None = None,
        teacher: ChatModelSource | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.db = db
        self.project_id = project.id
        self.project_name = project.name
        self.spec: TaskSpec = load_spec(project)
        self.mode: Mode = "model" if model is not None else "guided"
        self._model = model
        self._teacher = teacher
        self._cwd = cwd or Path.cwd()
        self._last_part: str | None = None
        self._hinted_correction = False
        self._warned_weak_teacher = False

    def opening(self) -> str:
        """The first thing the agent says in a session (stored in the transcript)."""
        if count_messages(self.db, self.project_id) == 0:
            text = (
                f"Hi! I'll help you write down the task for {self.project_name} and collect"
                " examples. /help lists commands.\n" + self._next_question()
            )
        else:
            done = [
                part
                for part in ("goal", "input", "output")
                if part not in missing_parts(self.spec, self._example_count())
            ]
            known = "; ".join(summarize_part(self.spec, part) for part in done)
            text = "Welcome back." + (f" So far: {known}." if known else "")
            text += "\n" + self._next_question()
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

    def handle(self, text: str) -> Reply:
        """Answer one message of the person: a slash command, an answer, examples, a fix."""
        text = text.replace("\x00", "")
        earlier = list_messages(self.db, self.project_id, last=40)
        if text.strip():
            add_message(self.db, self.project_id, "user", text)
        try:
            if text.strip().startswith("/"):
                reply = self._command(text.strip())
            elif self.mode == "model":
                reply = Reply(self._model_turn(text, earlier))
            else:
                reply = Reply(self._guided(text))
        except TunesmithError as error:
            reply = Reply(f"{error.message}\n{self._next_question()}")
        self.note(reply.text)
        return reply

    # Slash commands

    def _command(self, text: str) -> Reply:
        name, _, argument = text.partition(" ")
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
            return Reply(self._draft(argument))
        if name == "/train":
            return Reply("", action="train")
        if name == "/skip":
            return Reply(self._skip())
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
            return "No examples yet. " + _EXAMPLES_HINT
        counts = coverage(self.spec, examples)
        lines = [
            f"{len(examples)} examples ({counts.approved} approved, {counts.pending} pending,"
            f" {counts.rejected} rejected); the latest:"
        ]
        for example in examples[-limit:]:
            lines.append(
                f"  #{example.id} {example.status} {example.source}: {_clip(example.prompt, 50)}"
                f" -> {_clip(example.response, 40)}"
            )
        return "\n".join(lines)

    def _import(self, argument: str) -> str:
        path = Path(answers.clean_phrase(argument)).expanduser()
        if not path.is_absolute():
            path = self._cwd / path
        return self._store_parsed(read_examples(path), source="imported", origin=str(path))

    def _draft(self, argument: str) -> str:
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
            report = draft_examples(self.db, self.project_id, teacher.get(), count)
        except TunesmithError:
            raise
        except Exception as exc:  # starting or reaching an outside model can fail in many ways
            lines.append(f"The teacher {teacher.name} is not available: {teacher.redact(str(exc))}")
            return "\n".join(lines)
        lines.append(describe_report(report, self.project_name))
        lines.append(self._next_question())
        return "\n".join(lines)

    def _skip(self) -> str:
        pending = self._pending()
        if pending is None:
            return "Nothing to skip. " + self._next_question()
        if pending in REQUIRED_PARTS:
            return f"I need the {pending} to go on. " + self._question(pending)
        self._save(replace(self.spec, skipped=(*self.spec.skipped, pending)))
        return "Skipped.\n" + self._next_question()

    # Model mode

    def _model_turn(self, text: str, earlier: Sequence[TranscriptMessage]) -> str:
        body = text.strip()
        if not body:
            return self._guided(text)
        # Pasted data and JSON samples are read exactly here; a model would only retype them.
        data_reply = self._examples_in(body)
        if data_reply is not None:
            return data_reply
        if body.lstrip().startswith(("{", "```")):
            return self._guided(text)
        assert self._model is not None
        try:
            model = self._model.get()
            messages = interview_messages(self.spec, self._example_count(), earlier, body)
            turn = structured_call(model, messages, AgentTurn)
        except Exception as exc:  # any failure of an outside model means guided mode from now on
            reason = self._model.redact(one_line_reason(exc))
            self.mode = "guided"
            notice = (
                f"(The model {self._model.name} cannot give the structured answers this interview"
                f" needs: {reason}. Continuing in guided mode.)"
            )
            return notice + "\n" + self._guided(text)
        return self._apply_turn(turn)

    def _apply_turn(self, turn: AgentTurn) -> str:
        spec, changed = apply_update(self.spec, turn.update)
        self._save(spec, changed)
        parts: list[str] = []
        if changed:
            parts.append(self._confirmation(changed, ask=False))
        if turn.examples:
            pairs = []
            for pair in turn.examples:
                try:
                    pairs.append(answers_pair(pair.input, pair.output))
                except TunesmithError:
                    continue
            if pairs:
                result = self._add(pairs, source="typed")
                parts.append(self._saved_line(result) + self._fit_notes(pairs))
        reply = turn.reply.strip()[:MAX_REPLY_CHARS]
        parts.append(reply or self._next_question())
        return "\n".join(part for part in parts if part)

    # Guided mode

    def _guided(self, text: str) -> str:
        raw = answers.strip_greeting(text.strip()) or text.strip()
        pending = self._pending()
        if not raw:
            return "I did not catch anything there. " + self._next_question()
        if answers.is_skip(raw) and pending is not None and pending not in REQUIRED_PARTS:
            if pending == "system_prompt":
                self._save(replace(self.spec, skipped=(*self.spec.skipped, pending)))
                return (
                    'OK, no system prompt. (Type "system prompt: ..." any time to set one.)\n'
                    + self._next_question()
                )
            return self._skip()
        if answers.is_yes(raw):
            accepted = self._accept_proposal(pending)
            if accepted is not None:
                return accepted
        corrected, body = answers.split_correction(raw)
        if corrected and not body:
            return 'What should I change? e.g. "no, the labels are billing, technical and account".'
        data_reply = self._examples_in(body)
        if data_reply is not None:
            return data_reply
        sample = answers.parse_json_sample(body)
        if isinstance(sample, answers.JsonSample):
            self._save(with_json_sample(self.spec, sample), ["output"])
            return self._confirmation(["output"], corrected=corrected)
        if isinstance(sample, JsonTextError):
            return (
                f"That looks like JSON, but I could not read it ({sample}). Paste one complete"
                ' object, e.g. {"name": "Ada", "order_id": "A-1017"}.'
            )
        changed = self._statements(body, corrected)
        if changed:
            return self._confirmation(changed, corrected=corrected)
        if answers.is_yes(raw):
            return "OK. " + self._next_question()
        target_part = self._last_part if corrected and self._last_part else pending
        if target_part == "input" and self._looks_like_labels(body):
            # A classifier's labels, typed before the question about them came.
            target_part = "output"
        if target_part is None:
            return (
                'I did not catch that. Correct the spec with e.g. "no, the labels are ...",'
                " add examples, or use /draft N, /spec or /train."
            )
        return self._answer(target_part, body, corrected)

    def _task_known(self) -> bool:
        return bool(self.spec.goal) and output_known(self.spec)

    def _looks_like_labels(self, body: str) -> bool:
        return (
            self.spec.output_kind in (None, "labels")
            and not self.spec.labels
            and answers.mentions_labels(self.spec.goal or "")
            and answers.parse_label_list(body) is not None
        )

    def _accept_proposal(self, pending: str | None) -> str | None:
        if pending == "system_prompt":
            spec = replace(
                self.spec,
                system_prompt=proposed_system_prompt(self.spec),
                system_prompt_origin="proposed",
            )
            self._save(spec, ["system_prompt"])
            return "Saved the system prompt.\n" + self._next_question()
        if pending == "input":
            proposal = proposed_input(self.spec)
            if proposal is not None:
                self._save(replace(self.spec, input_description=proposal), ["input"])
                return self._confirmation(["input"])
        return None

    def _answer(self, part: str, body: str, corrected: bool) -> str:
        """Read ``body`` as the answer to the question about ``part``."""
        if part == "goal":
            if _junk(body, min_words=2):
                return "Sorry, I did not understand that. " + self._question("goal")
            goal = answers.goal_statement(body) or answers.clean_phrase(body)
            spec, hinted = with_goal_hints(replace(self.spec, goal=goal), body)
            changed = ["goal", "output"] if hinted else ["goal"]
            self._save(spec, changed)
            return self._confirmation(changed, corrected=corrected)
        if part == "input":
            if _junk(body, min_words=1):
                return "Sorry, I did not understand that. " + self._question("input")
            self._save(replace(self.spec, input_description=answers.clean_phrase(body)), ["input"])
            return self._confirmation(["input"], corrected=corrected)
        if part == "output":
            spec, understood = with_output(self.spec, body)
            if not understood:
                return "Sorry, I did not understand that. " + self._question("output")
            self._save(spec, ["output"])
            return self._confirmation(["output"], corrected=corrected)
        if part == "requirements":
            cases = answers.split_cases(body)
            if _junk(body, min_words=1) or not cases:
                return "Sorry, I did not understand that. " + self._question("requirements")
            self._save(with_requirements(self.spec, cases, replace_all=corrected), [part])
            return self._confirmation([part], corrected=corrected)
        if part == "constraints":
            rules = answers.split_sentences(body)
            if _junk(body, min_words=2) or not rules:
                return "Sorry, I did not understand that. " + self._question("constraints")
            kept = () if corrected else self.spec.constraints
            self._save(replace(self.spec, constraints=_merge(kept, rules)), [part])
            return self._confirmation([part], corrected=corrected)
        if part == "style":
            if _junk(body, min_words=1):
                return "Sorry, I did not understand that. " + self._question("style")
            self._save(replace(self.spec, style=answers.clean_phrase(body)), [part])
            return self._confirmation([part], corrected=corrected)
        if part == "system_prompt":
            if _junk(body, min_words=3):
                return "Say yes to use the proposed system prompt, or type your own (a sentence)."
            spec = replace(self.spec, system_prompt=body.strip(), system_prompt_origin="custom")
            self._save(spec, [part])
            return "Saved your system prompt.\n" + self._next_question()
        # The examples question: anything that was not example data lands here.
        if part == "examples":
            return "I expected an example there. " + _EXAMPLES_HINT
        return "Sorry, I did not understand that. " + self._next_question()

    def _statements(self, body: str, corrected: bool) -> list[str]:
        """Apply what ``body`` states outright; return the parts that changed."""
        spec = self.spec
        system_prompt = answers.system_prompt_statement(body)
        if system_prompt is not None:
            spec = replace(spec, system_prompt=system_prompt, system_prompt_origin="custom")
            self._save(spec, ["system_prompt"])
            return ["system_prompt"]
        added, removed = answers.labels_added(body), answers.labels_removed(body)
        if added is not None or removed is not None:
            labels = _merge(spec.labels, added or ())
            drop = {label.casefold() for label in removed or ()}
            spec = with_labels(spec, tuple(x for x in labels if x.casefold() not in drop))
            self._save(spec, ["output"])
            return ["output"]
        changed: list[str] = []
        goal = answers.goal_statement(body)
        if goal is not None:
            spec = replace(spec, goal=goal)
            changed.append("goal")
        description = answers.input_statement(body)
        if description is not None:
            spec = replace(spec, input_description=description)
            changed.append("input")
        output = answers.output_statement(body)
        if output is not None:
            spec, understood = with_output(spec, output)
            changed += ["output"] if understood else []
        elif goal is not None:
            spec, hinted = with_goal_hints(spec, body)
            changed += ["output"] if hinted else []
        else:
            stated_labels = answers.labels_statement(body)
            if stated_labels is not None:
                spec = with_labels(spec, stated_labels)
                changed.append("output")
            fields = answers.json_fields_statement(body)
            if fields is not None:
                spec = replace(spec, output_kind="json", json_fields=fields)
                changed.append("output")
            rules = answers.rules_statement(body, imperatives=self._task_known())
            if rules is not None:
                spec = replace(
                    spec, constraints=_merge(() if corrected else spec.constraints, rules)
                )
                changed.append("constraints")
        style = answers.style_statement(body)
        if style is not None:
            spec = replace(spec, style=style)
            changed.append("style")
        cases = answers.cases_statement(body)
        if cases:
            spec = with_requirements(spec, cases, replace_all=corrected)
            changed.append("requirements")
        target = answers.target_statement(body)
        if target is not None:
            spec = replace(spec, target_examples=target)
            changed.append("target")
        changed = list(dict.fromkeys(changed))
        self._save(spec, changed)
        return changed

    # Examples

    def _examples_in(self, body: str) -> str | None:
        """Store the examples ``body`` holds (pairs, pasted rows, a file); None if it holds none."""
        path = answers.importable_path(body, self._cwd)
        if path is not None:
            return self._store_parsed(read_examples(path), source="imported", origin=str(path))
        records = answers.parse_pasted_records(body) or answers.parse_pasted_csv(body)
        if records is not None:
            return self._store_parsed(records, source="imported", origin="the pasted rows")
        parsed = answers.parse_pairs(body)
        if parsed is not None:
            pairs: list[NewExample] = []
            problems = list(parsed.problems)
            for prompt, response in parsed.pairs:
                try:
                    pairs.append(answers_pair(prompt, response))
                except TunesmithError as error:
                    problems.append(error.message)
            if not pairs:
                return (
                    f"I could not read that as an example: {'; '.join(problems)}. "
                    'Type it as "Input: ... Output: ..."'
                )
            result = self._add(pairs, source="typed")
            text = self._saved_line(result) + self._fit_notes(pairs)
            if problems:
                text += "\nNot saved: " + "; ".join(problems[:MAX_REPORTED_PROBLEMS])
            return text + "\n" + self._next_question()
        if self.spec.output_kind is not None:
            arrows = answers.parse_arrow_pairs(body)
            if arrows:
                try:
                    new_pairs = [answers_pair(prompt, response) for prompt, response in arrows]
                except TunesmithError as error:
                    return f"I could not read that as examples: {error.message}"
                result = self._add(new_pairs, source="typed")
                return (
                    self._saved_line(result)
                    + self._fit_notes(new_pairs)
                    + "\n"
                    + self._next_question()
                )
        return None

    def _store_parsed(self, parsed: ParsedFile, *, source: str, origin: str) -> str:
        if not parsed.examples:
            reasons = "; ".join(str(r) for r in parsed.rejected[:MAX_REPORTED_PROBLEMS])
            return f"No usable examples in {origin}" + (f": {reasons}" if reasons else ".")
        result = self._add(parsed.examples, source=source)
        text = self._saved_line(result, origin=origin) + self._fit_notes(parsed.examples)
        if parsed.rejected:
            text += f"\n{len(parsed.rejected)} rows were not usable:" + "".join(
                f"\n  {r}" for r in parsed.rejected[:MAX_REPORTED_PROBLEMS]
            )
            if len(parsed.rejected) > MAX_REPORTED_PROBLEMS:
                text += f"\n  ... and {len(parsed.rejected) - MAX_REPORTED_PROBLEMS} more"
        return text + "\n" + self._next_question()

    def _add(self, examples: Sequence[NewExample], *, source: str) -> AddResult:
        result = add_examples(self.db, self.project_id, examples, source=source)
        self._infer_output_from(examples)
        return result

    def _infer_output_from(self, examples: Sequence[NewExample]) -> None:
        """With no answer format yet (or JSON without its keys), answers that are all JSON
        objects with one key set set it."""
        json_without_keys = self.spec.output_kind == "json" and not self.spec.json_fields
        if (self.spec.output_kind is not None and not json_without_keys) or not examples:
            return
        key_sets = set()
        first: dict[str, object] | None = None
        for example in examples:
            try:
                value = json.loads(example.messages[-1].content)
            except (json.JSONDecodeError, RecursionError):
                return
            if not isinstance(value, dict) or not value:
                return
            key_sets.add(tuple(value))
            first = first or value
        if len(key_sets) == 1 and first is not None:
            sample = answers.JsonSample(
                tuple(first), json.dumps(first, ensure_ascii=False), dict(first)
            )
            self._save(with_json_sample(self.spec, sample), ["output"])

    def _saved_line(self, result: AddResult, origin: str | None = None) -> str:
        total = self._example_count()
        where = f" from {origin}" if origin else ""
        noun = "example" if result.added == 1 else "examples"
        text = f"Saved {result.added} {noun}{where}"
        if result.duplicates:
            text += f" ({result.duplicates} already there)"
        return text + f"; you have {total} of the {self.spec.example_target} to aim for."

    def _fit_notes(self, examples: Sequence[NewExample]) -> str:
        notes = []
        for example in examples:
            problem = output_problem(self.spec, example.messages[-1].content)
            if problem is not None:
                notes.append(f"{_clip(_prompt_of(example), 30)}: {problem}")
        if not notes:
            return ""
        shown = "".join(f"\n  {note}" for note in notes[:MAX_REPORTED_PROBLEMS])
        more = len(notes) - MAX_REPORTED_PROBLEMS
        return "\nCheck these answers:" + shown + (f"\n  ... and {more} more" if more > 0 else "")

    # State

    def _example_count(self) -> int:
        return sum(
            1
            for e in list_examples(self.db, self.project_id)
            if e.status in ("approved", "pending")
        )

    def _pending(self) -> str | None:
        missing = missing_parts(self.spec, self._example_count())
        return missing[0] if missing else None

    def _save(self, spec: TaskSpec, changed: Sequence[str] = ()) -> None:
        """Store ``spec``; a proposed system prompt follows the spec as it changes."""
        if changed:
            self._last_part = next(
                (part for part in reversed(changed) if part not in ("target",)), self._last_part
            )
        if any(part in spec.skipped for part in changed):
            spec = replace(spec, skipped=tuple(p for p in spec.skipped if p not in changed))
        if spec.system_prompt_origin == "proposed" and "system_prompt" not in changed:
            spec = replace(spec, system_prompt=proposed_system_prompt(spec))
        if spec != self.spec:
            save_spec(self.db, self.project_id, spec)
            self.spec = spec

    def _confirmation(
        self, changed: Sequence[str], *, corrected: bool = False, ask: bool = True
    ) -> str:
        summary = "; ".join(summarize_part(self.spec, part) for part in dict.fromkeys(changed))
        text = ("Changed. " if corrected else "Got it. ") + summary[:1].upper() + summary[1:] + "."
        if not self._hinted_correction:
            text += ' (Say "no, ..." to correct me.)'
            self._hinted_correction = True
        return text + "\n" + self._next_question() if ask else text

    def _next_question(self) -> str:
        pending = self._pending()
        if pending is None:
            count = self._example_count()
            return (
                f"The spec is complete and you have {count} of the {self.spec.example_target}"
                " examples to aim for. Add more, /draft N to have a teacher write some,"
                " /spec to review, or /train to start training."
            )
        return self._question(pending)

    def _question(self, part: str) -> str:
        if part == "output":
            if self.spec.output_kind == "labels" or (
                self.spec.output_kind is None and answers.mentions_labels(self.spec.goal or "")
            ):
                return _QUESTIONS["labels"]
            if self.spec.output_kind == "json" or (
                self.spec.output_kind is None and answers.mentions_extraction(self.spec.goal or "")
            ):
                return _QUESTIONS["json"]
            if self.spec.output_kind == "free_text":
                return 'Describe the answers it should write, e.g. "a two-sentence summary".'
            return _QUESTIONS["output"]
        if part == "input":
            proposal = proposed_input(self.spec)
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
            count = self._example_count()
            if count:
                return f"A few more examples, please ({count} so far). " + _EXAMPLES_HINT
            return "Now some examples. " + _EXAMPLES_HINT
        return _QUESTIONS[part]


def with_labels(spec: TaskSpec, labels: tuple[str, ...]) -> TaskSpec:
    """The spec with this label set: the answer is one label, or a field of a JSON answer."""
    return replace(
        spec, labels=labels, output_kind="json" if spec.output_kind == "json" else "labels"
    )


def with_json_sample(spec: TaskSpec, sample: answers.JsonSample) -> TaskSpec:
    """The spec with JSON answers shaped like ``sample``; labels stay if the sample uses one."""
    values = {value.casefold() for value in sample.values.values() if isinstance(value, str)}
    labels = spec.labels
    if labels and not any(label.casefold() in values for label in labels):
        labels = ()
    return replace(
        spec,
        output_kind="json",
        json_fields=sample.fields,
        json_sample=sample.text,
        labels=labels,
        output_description=None,
    )


def with_output(spec: TaskSpec, text: str) -> tuple[TaskSpec, bool]:
    """The spec with ``text`` read as a description of the answers, and whether it made sense."""
    sample = answers.parse_json_sample(text)
    if isinstance(sample, answers.JsonSample):
        return with_json_sample(spec, sample), True
    labels = answers.labels_statement(text) or answers.parse_label_list(text)
    fields = answers.json_fields_statement(text)
    if answers.mentions_json(text) or (fields and answers.mentions_extraction(text)):
        spec = replace(spec, output_kind="json", json_fields=fields or spec.json_fields)
        if labels is not None and fields is None:
            spec = replace(spec, labels=labels)
        return spec, True
    if labels is not None:
        return with_labels(spec, labels), True
    if answers.mentions_labels(text) and len(text.split()) <= 8:
        return replace(spec, output_kind="labels"), True
    if _junk(text, min_words=2):
        return spec, False
    description = answers.clean_phrase(text)
    return replace(spec, output_kind="free_text", output_description=description), True


def with_goal_hints(spec: TaskSpec, text: str) -> tuple[TaskSpec, bool]:
    """The spec with what a goal sentence implies about answers ("as JSON", "into a, b or c")."""
    hinted = False
    labels = answers.labels_statement(text)
    if labels is not None and not spec.labels:
        spec, hinted = with_labels(spec, labels), True
    if answers.mentions_json(text) and spec.output_kind in (None, "labels"):
        fields = answers.json_fields_statement(text)
        spec, hinted = replace(spec, output_kind="json", json_fields=fields or ()), True
    return spec, hinted


def proposed_input(spec: TaskSpec) -> str | None:
    """A guess at the input from the goal ("classify support tickets" -> one support ticket)."""
    goal = spec.goal or ""
    if not _PROPOSAL_VERBS.match(goal):
        return None
    rest = goal.split(maxsplit=1)[1] if len(goal.split()) > 1 else ""
    if rest.lower().startswith("to "):
        rest = rest[3:]
    found = re.search(r"\bfrom\s+(.+)$", rest, re.IGNORECASE)
    if found is not None:
        rest = found.group(1)
    rest = _OBJECT_STOP.split(rest, maxsplit=1)[0].strip(" ,")
    words = [w for w in rest.split() if w.lower() not in ("the", "a", "an", "each", "every")]
    if not words or len(words) > 5:
        return None
    words[-1] = _singular(words[-1])
    return "the text of one " + " ".join(words)


def answers_pair(prompt: str, response: str) -> NewExample:
    """A typed example from an input and an answer; InputError when either is unusable."""
    return NewExample(
        messages=(
            ChatMessage("user", validate_text(prompt.strip(), "input")),
            ChatMessage("assistant", validate_text(response.strip(), "output")),
        )
    )


def _singular(word: str) -> str:
    lowered = word.lower()
    if lowered.endswith("ies") and len(lowered) > 4:
        return word[:-3] + "y"
    if lowered.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if lowered.endswith("s") and not lowered.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _junk(text: str, *, min_words: int) -> bool:
    if answers.looks_like_junk(text, min_words=min_words):
        return True
    words = re.findall(r"[a-z]+", text.lower())
    mashed = [w for w in words if len(w) >= 3 and any(w in row for row in _KEYBOARD_ROWS)]
    return bool(words) and len(mashed) * 2 >= len(words)


def _merge(kept: Sequence[str], new: Sequence[str]) -> tuple[str, ...]:
    result = list(kept)
    for item in new:
        if item.casefold() not in {x.casefold() for x in result}:
            result.append(item)
    return tuple(result)


def _prompt_of(example: NewExample) -> str:
    return next((m.content for m in example.messages if m.role == "user"), "")


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"

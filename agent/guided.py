"""Guided mode: reading a message without a model, as an answer to the pending question, a
statement about the spec, a correction, or examples."""

from __future__ import annotations

from dataclasses import replace

from agent import answers, phrasing
from agent.intake import examples_in, hold_input
from agent.jsontext import JsonTextError
from agent.spec import REQUIRED_PARTS, output_known
from agent.spec_edits import (
    merge,
    with_goal_hints,
    with_json_sample,
    with_labels,
    with_output,
    with_requirements,
)
from agent.spec_session import SpecSession
from agent.spec_text import proposed_system_prompt


def guided_reply(session: SpecSession, text: str) -> str:
    """Read ``text`` without a model and apply what it says; the reply to show."""
    raw = phrasing.strip_greeting(text.strip()) or text.strip()
    pending = session.pending()
    if not raw:
        return "I did not catch anything there. " + session.next_question()
    declined = phrasing.declined_part(raw)
    if declined is not None:
        return _decline(session, *declined)
    if phrasing.is_skip(raw) and pending is not None and pending not in REQUIRED_PARTS:
        if pending == "system_prompt":
            session.save(replace(session.spec, skipped=(*session.spec.skipped, pending)))
            return (
                'OK, no system prompt. (Type "system prompt: ..." any time to set one.)\n'
                + session.next_question()
            )
        return skip(session)
    if phrasing.is_yes(raw):
        accepted = _accept_proposal(session, pending)
        if accepted is not None:
            return accepted
    corrected, body = phrasing.split_correction(raw)
    if corrected and not body:
        return 'What should I change? e.g. "no, the labels are billing, technical and account".'
    data_reply = examples_in(session, body)
    if data_reply is not None:
        return data_reply
    sample = answers.parse_json_sample(body)
    if isinstance(sample, answers.JsonSample):
        session.save(with_json_sample(session.spec, sample), ["output"])
        return session.confirmation(["output"], corrected=corrected)
    if isinstance(sample, JsonTextError):
        return (
            f"That looks like JSON, but I could not read it ({sample}). Paste one complete"
            ' object, e.g. {"name": "Ada", "order_id": "A-1017"}.'
        )
    changed = _statements(session, body, corrected)
    if changed:
        return session.confirmation(changed, corrected=corrected)
    if phrasing.is_yes(raw):
        return "OK. " + session.next_question()
    target_part = session.last_part if corrected and session.last_part else pending
    if target_part == "input" and _looks_like_labels(session, body):
        # A classifier's labels, typed before the question about them came.
        target_part = "output"
    if target_part is None:
        return hold_input(session, body) or (
            'I did not catch that. Correct the spec with e.g. "no, the labels are ...",'
            " add examples, or use /draft N, /spec or /train."
        )
    return _answer(session, target_part, body, corrected)


def skip(session: SpecSession) -> str:
    """Skip the pending question when it may be skipped, and ask the next."""
    pending = session.pending()
    if pending is None:
        return "Nothing to skip. " + session.next_question()
    if pending in REQUIRED_PARTS:
        return f"I need the {pending} to go on. " + session.question(pending)
    session.save(replace(session.spec, skipped=(*session.spec.skipped, pending)))
    return "Skipped.\n" + session.next_question()


_PART_NOUNS = {
    "style": "style",
    "constraints": "rules",
    "requirements": "special cases",
    "system_prompt": "system prompt",
}
"""How a reply names each part a person can decline."""


def _decline(session: SpecSession, part: str, rest: str) -> str:
    """Note that the spec has no ``part`` ("no style", whatever question is pending), and
    apply what ``rest`` states outright; a part the spec already has is kept."""
    noun = _PART_NOUNS[part]
    spec = session.spec
    if getattr(spec, part):
        return f"The spec already has {noun}; /spec shows them.\n" + session.next_question()
    session.save(replace(spec, skipped=merge(spec.skipped, [part])))
    changed = _statements(session, rest, corrected=False) if rest else []
    stated = " " + session.confirmation(changed, ask=False) if changed else ""
    if part == "system_prompt":
        stated += ' (Type "system prompt: ..." any time to set one.)'
    return f"OK, no {noun}.{stated}\n" + session.next_question()


def _task_known(session: SpecSession) -> bool:
    return bool(session.spec.goal) and output_known(session.spec)


def _looks_like_labels(session: SpecSession, body: str) -> bool:
    return (
        session.spec.output_kind in (None, "labels")
        and not session.spec.labels
        and answers.mentions_labels(session.spec.goal or "")
        and answers.parse_label_list(body) is not None
    )


def _accept_proposal(session: SpecSession, pending: str | None) -> str | None:
    if pending == "system_prompt":
        spec = replace(
            session.spec,
            system_prompt=proposed_system_prompt(session.spec),
            system_prompt_origin="proposed",
        )
        session.save(spec, ["system_prompt"])
        return "Saved the system prompt.\n" + session.next_question()
    if pending == "input":
        proposal = answers.proposed_input(session.spec)
        if proposal is not None:
            session.save(replace(session.spec, input_description=proposal), ["input"])
            return session.confirmation(["input"])
    return None


def _answer(session: SpecSession, part: str, body: str, corrected: bool) -> str:
    """Read ``body`` as the answer to the question about ``part``."""
    if part == "goal":
        if phrasing.is_junk_answer(body, min_words=2):
            return "Sorry, I did not understand that. " + session.question("goal")
        goal = answers.goal_statement(body) or phrasing.clean_phrase(body)
        spec, hinted = with_goal_hints(replace(session.spec, goal=goal), body)
        changed = ["goal", "output"] if hinted else ["goal"]
        session.save(spec, changed)
        return session.confirmation(changed, corrected=corrected)
    if part == "input":
        if phrasing.is_junk_answer(body, min_words=1):
            return "Sorry, I did not understand that. " + session.question("input")
        session.save(
            replace(session.spec, input_description=phrasing.clean_phrase(body)), ["input"]
        )
        return session.confirmation(["input"], corrected=corrected)
    if part == "output":
        spec, understood = with_output(session.spec, body)
        if spec.output_kind == "free_text" and session.expects_labels() and not corrected:
            # Labels were asked for: a sentence is more likely a rule about them than text.
            return (
                'I need the labels themselves, as a list, e.g. "billing, technical, account".'
                ' (If it should write text instead, say "the output is ...".)'
            )
        if not understood:
            return "Sorry, I did not understand that. " + session.question("output")
        session.save(spec, ["output"])
        return session.confirmation(["output"], corrected=corrected)
    if part == "requirements":
        cases = answers.without_examples(phrasing.split_cases(body))
        if phrasing.is_junk_answer(body, min_words=1) or not cases:
            return "Sorry, I did not understand that. " + session.question("requirements")
        session.save(with_requirements(session.spec, cases, replace_all=corrected), [part])
        return session.confirmation([part], corrected=corrected)
    if part == "constraints":
        rules = answers.without_examples(phrasing.split_sentences(body))
        if phrasing.is_junk_answer(body, min_words=2) or not rules:
            return "Sorry, I did not understand that. " + session.question("constraints")
        kept = () if corrected else session.spec.constraints
        session.save(replace(session.spec, constraints=merge(kept, rules)), [part])
        return session.confirmation([part], corrected=corrected)
    if part == "style":
        if phrasing.is_junk_answer(body, min_words=1):
            return "Sorry, I did not understand that. " + session.question("style")
        session.save(replace(session.spec, style=phrasing.clean_phrase(body)), [part])
        return session.confirmation([part], corrected=corrected)
    if part == "system_prompt":
        if phrasing.is_junk_answer(body, min_words=3):
            return "Say yes to use the proposed system prompt, or type your own (a sentence)."
        spec = replace(session.spec, system_prompt=body.strip(), system_prompt_origin="custom")
        session.save(spec, [part])
        return "Saved your system prompt.\n" + session.next_question()
    # The examples question: anything that was not example data lands here.
    if part == "examples":
        return (
            hold_input(session, body) or "I expected an example there. " + session.examples_hint()
        )
    return "Sorry, I did not understand that. " + session.next_question()


def _statements(session: SpecSession, body: str, corrected: bool) -> list[str]:
    """Apply what ``body`` states outright; return the parts that changed."""
    spec = session.spec
    system_prompt = answers.system_prompt_statement(body)
    if system_prompt is not None:
        spec = replace(spec, system_prompt=system_prompt, system_prompt_origin="custom")
        session.save(spec, ["system_prompt"])
        return ["system_prompt"]
    added, removed = answers.labels_added(body), answers.labels_removed(body)
    if added is not None or removed is not None:
        labels = merge(spec.labels, added or ())
        drop = {label.casefold() for label in removed or ()}
        spec = with_labels(spec, tuple(x for x in labels if x.casefold() not in drop))
        session.save(spec, ["output"])
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
        # Before the goal, a sentence that sorts into labels is the goal, with its hints.
        stated_labels = answers.labels_named(body) or (
            answers.labels_in_goal(body) if spec.goal else None
        )
        if stated_labels is not None:
            spec = with_labels(spec, stated_labels)
            changed.append("output")
        fields = answers.json_fields_statement(body)
        if fields is not None:
            spec = replace(spec, output_kind="json", json_fields=fields)
            changed.append("output")
        rules = answers.rules_statement(body, imperatives=_task_known(session))
        if rules is not None:
            spec = replace(spec, constraints=merge(() if corrected else spec.constraints, rules))
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
    session.save(spec, changed)
    return changed

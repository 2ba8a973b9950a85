"""The side panel of the Chat area: the task spec as the interview fills it in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.safe_text import terminal_safe

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from agent.coverage import Coverage
    from agent.spec import TaskSpec


def spec_summary(spec: TaskSpec, counts: Coverage, missing: list[str]) -> Text:
    """The spec part by part, a muted "not yet" where the interview has no answer yet.

    ``missing`` lists the parts the interview still asks about (``agent.spec.missing_parts``);
    the first of them is marked as the one asked now (``← now``).
    """
    from agent.spec_text import describe_output

    asked = missing[0] if missing else None
    parts: list[tuple[str, str, str | None]] = [
        ("goal", "Goal", spec.goal),
        ("input", "Input", spec.input_description),
        ("output", "Output", describe_output(spec) or None),
        ("requirements", "Cases", "\n".join(f"{r.id} {r.text}" for r in spec.requirements)),
        ("constraints", "Rules", "\n".join(spec.constraints)),
    ]
    if spec.output_kind in (None, "free_text") or spec.style:
        parts.append(("style", "Style", spec.style))
    text = Text(end="")
    for part, title, value in parts:
        text.append(title, style="bold")
        if not value:
            text.append("  skipped" if part in spec.skipped else "  not yet", style="dim")
        if part == asked:
            text.append("  ← now", style="italic")
        text.append("\n")
        if value:
            text.append(terminal_safe(value) + "\n")
    text.append("Examples", style="bold")
    if asked == "examples":
        text.append("  ← now", style="italic")
    text.append(
        f"\n{counts.approved} approved, {counts.pending} pending\ntarget {spec.example_target}\n"
    )
    if counts.off_spec:
        text.append(f"{counts.off_spec} off the output format\n", style="bold")
    if counts.unlabeled:
        text.append(f"{counts.unlabeled} to label (F3, l)\n")
    rows = [(label, count) for label, count in counts.by_label]
    rows += [(requirement.id, count) for requirement, count in counts.by_requirement]
    for name, count in rows:
        pending = f" +{count.pending}" if count.pending else ""
        text.append(f"  {terminal_safe(name)}: {count.approved}{pending}\n")
    text.rstrip()
    return text


class SpecPanel(VerticalScroll):
    """The task spec, refreshed after every turn of the interview."""

    def compose(self) -> ComposeResult:
        yield Static("Reading the task spec…", id="spec-text", markup=False)

    def on_mount(self) -> None:
        self.border_title = "Task spec"

    def show(self, summary: Text) -> None:
        """Show a summary made by ``spec_summary``."""
        self.query_one("#spec-text", Static).update(summary)

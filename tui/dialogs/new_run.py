"""The new-run form: the settings tunesmith would pick for this data, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rich.text import Text
from textual import events, on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from trainer.control.config import (
    Plan,
    check_setting,
    format_seconds,
    parse_duration,
    plan_run,
    setting_rule,
)
from trainer.control.distributed import cuda_device_count

if TYPE_CHECKING:
    from textual.app import ComposeResult


@dataclass(frozen=True)
class FormField:
    """One setting of the form: its config key, its label and the kind of value it takes."""

    key: str
    label: str
    kind: Literal["whole", "number", "duration", "choice"]


FIELDS: tuple[FormField, ...] = (
    FormField("method", "method", "choice"),
    FormField("epochs", "epochs", "whole"),
    FormField("learning_rate", "learning rate", "number"),
    FormField("batch_size", "batch size", "whole"),
    FormField("lora_rank", "LoRA rank", "whole"),
    FormField("max_steps", "max steps", "whole"),
    FormField("save_every", "save every", "whole"),
    FormField("budget_seconds", "time budget", "duration"),
)
"""The settings the form lets a person change, in the order shown."""

SHOWN_ONLY = (("eval_every", "check every"), ("warmup_steps", "warm-up"))
"""Settings the form shows with their reason but derives from the others."""


def parse_value(field: FormField, typed: str) -> int | float | str:
    """The typed value as the config takes it; raises ValueError with the setting's rule (the
    same the command line gives) when it is not a number within the setting's bounds, or not
    one of its choices."""
    if field.kind == "choice":
        choice = typed.strip().lower()
        check_setting(field.key, choice)
        return choice
    text = typed.strip().replace("_", "")
    value: int | float
    if field.kind == "duration":
        # As --budget takes it; "auto" (0) leaves it to the data and this machine's speed.
        if text.lower() in ("", AUTO):
            return 0
        try:
            return parse_duration(text)
        except ValueError:
            raise ValueError(f"a duration such as 90s, 10m or 1h30m, or {AUTO}") from None
    if field.kind == "whole":
        if not text.isdigit():
            raise ValueError(setting_rule(field.key))
        value = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("a number such as 1e-3") from None
    check_setting(field.key, value)
    return value


AUTO = "auto"
"""What the form shows and takes for a budget left to the data and this machine's speed."""


def field_value(field: FormField, value: object) -> str:
    """A setting's value as its box shows it: a budget as a duration, the others as numbers."""
    if field.kind == "duration" and isinstance(value, int):
        return format_seconds(value) if value else AUTO
    return shown_value(value)


def shown_value(value: object) -> str:
    """A config value as the form shows it (``1e-3`` rather than ``0.001``)."""
    if isinstance(value, float) and 0 < value < 0.01:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class NewRunScreen(ModalScreen[dict[str, Any] | None]):
    """Dismissed with the settings the person changed (``{}`` keeps every default), or None.

    A ``processes`` count above 1 comes with them where the machine has several GPUs.
    """

    CSS_PATH = "new_run.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("escape", "cancel", "Cancel"),
        # The fields' scroll area is no Tab stop, so the page keys scroll it.
        Binding("pagedown", "scroll_fields(1)", "Scroll down", show=False),
        Binding("pageup", "scroll_fields(-1)", "Scroll up", show=False),
    ]

    def __init__(
        self, project_name: str, n_train: int, n_eval: int, devices: int | None = None
    ) -> None:
        super().__init__()
        self.devices = cuda_device_count() if devices is None else devices
        """GPUs here; with more than one the form offers a process count (one per GPU)."""
        self.processes = 1
        """Training processes, under torchrun when more than one."""
        self.project_name = project_name
        """The project to train, for the title."""
        self.n_train = n_train
        """Approved train rows the run will freeze."""
        self.n_eval = n_eval
        """Approved eval rows it will measure eval loss and results on."""
        self.plan: Plan = plan_run(n_train, n_eval)
        """The plan for the settings as they stand (defaults plus the person's changes)."""
        self._changed: dict[str, int | float | str] = {}
        self._errors: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="new-run-dialog") as dialog:
            dialog.border_title = f"New run of {self.project_name}"
            dialog.border_subtitle = "Enter or ctrl+s start · esc cancel"
            eval_rows = f" and {self.n_eval} eval" if self.n_eval else ""
            yield Static(
                f"Settings picked for {self.n_train} approved train rows{eval_rows}. "
                "Change any; the others follow.",
                id="new-run-intro",
                markup=False,
            )
            with VerticalScroll(id="new-run-fields", can_focus=False):
                for field in FIELDS:
                    with Horizontal(classes="new-run-field"):
                        yield Label(field.label, classes="new-run-label")
                        yield Input(
                            field_value(field, getattr(self.plan.config, field.key)),
                            id=f"field-{field.key}",
                            classes="new-run-input",
                            compact=True,
                            select_on_focus=True,
                        )
                        yield Static(id=f"why-{field.key}", classes="new-run-why", markup=False)
                if self.devices > 1:
                    with Horizontal(classes="new-run-field"):
                        yield Label("processes", classes="new-run-label")
                        box = Input("1", id="processes", compact=True, select_on_focus=True)
                        box.styles.width = 9
                        yield box
                        yield Static(id="why-processes", classes="new-run-why", markup=False)
                for key, label in SHOWN_ONLY:
                    with Horizontal(classes="new-run-field"):
                        yield Label(label, classes="new-run-label")
                        yield Static(id=f"value-{key}", classes="new-run-value", markup=False)
                        yield Static(id=f"why-{key}", classes="new-run-why", markup=False)
            with Horizontal(id="new-run-buttons"):
                yield Button("Start", variant="primary", id="new-run-start", compact=True)
                yield Button("Cancel", id="new-run-cancel", compact=True)

    def on_mount(self) -> None:
        self._show_plan()
        self.query_one("#new-run-start", Button).focus()

    def action_scroll_fields(self, pages: int) -> None:
        """Scroll the fields a page down (``pages`` 1) or up (-1)."""
        fields = self.query_one("#new-run-fields", VerticalScroll)
        if pages > 0:
            fields.scroll_page_down(animate=False)
        else:
            fields.scroll_page_up(animate=False)

    @on(events.DescendantFocus, "#new-run-fields Input")
    def _field_focused(self, event: events.DescendantFocus) -> None:
        # Below the last box are the rows the form derives, which no Tab stop brings into view.
        fields = self.query_one("#new-run-fields", VerticalScroll)
        if event.widget is fields.query(Input).last():
            fields.scroll_end(animate=False)

    def _show_plan(self) -> None:
        reasons = self.plan.reasons
        for field in FIELDS:
            why = self.query_one(f"#why-{field.key}", Static)
            error = self._errors.get(field.key)
            why.set_class(error is not None, "-error")
            why.update(error or reasons.get(field.key, ""))
            box = self.query_one(f"#field-{field.key}", Input)
            if field.key not in self._changed and field.key not in self._errors:
                value = field_value(field, getattr(self.plan.config, field.key))
                if box.value != value:
                    with box.prevent(Input.Changed):
                        box.value = value
        for key, _ in SHOWN_ONLY:
            self.query_one(f"#value-{key}", Static).update(
                Text(shown_value(getattr(self.plan.config, key)))
            )
            self.query_one(f"#why-{key}", Static).update(reasons.get(key, ""))
        if self.devices > 1:
            self._check_processes()
        self.query_one("#new-run-start", Button).disabled = bool(self._errors)

    def _check_processes(self) -> None:
        """Show why the process count is usable, or what is wrong with it."""
        typed = self.query_one("#processes", Input).value.strip()
        batch = self.plan.config.batch_size
        self._errors.pop("processes", None)
        if not typed.isdigit() or not 1 <= int(typed) <= self.devices:
            self._errors["processes"] = f"Use a whole number from 1 to {self.devices}."
        elif batch % int(typed):
            self._errors["processes"] = f"The batch of {batch} rows must split evenly."
        else:
            self.processes = int(typed)
        why = self.query_one("#why-processes", Static)
        why.set_class("processes" in self._errors, "-error")
        why.update(
            self._errors.get("processes")
            or f"{self.devices} GPUs here: one process each, under torchrun, the batch split"
        )

    @on(Input.Changed, "#processes")
    def _processes_changed(self) -> None:
        self._show_plan()

    @on(Input.Changed, ".new-run-input")
    def _setting_changed(self, event: Input.Changed) -> None:
        key = (event.input.id or "").removeprefix("field-")
        field = next(field for field in FIELDS if field.key == key)
        self._errors.pop(key, None)
        self._changed.pop(key, None)
        try:
            value = parse_value(field, event.value)
        except ValueError as error:
            self._errors[key] = f"Use {error}."
        else:
            # Typing the value tunesmith would pick anyway keeps it a default, with its reason.
            default = getattr(plan_run(self.n_train, self.n_eval, self.overrides()).config, key)
            if value != default:
                self._changed[key] = value
        self.plan = plan_run(self.n_train, self.n_eval, self.overrides())
        self._show_plan()

    def overrides(self) -> dict[str, Any]:
        """The settings the person changed, as ``plan_for_project`` takes them."""
        # The plan makes alpha follow the rank, as on the command line.
        return dict(self._changed)

    @on(Input.Submitted, ".new-run-input")
    @on(Input.Submitted, "#processes")
    @on(Button.Pressed, "#new-run-start")
    def action_start(self) -> None:
        """Start the run with the settings shown, unless one of them is not usable."""
        if self._errors:
            self.notify("Fix the settings marked in red first.", severity="warning")
            return
        # Not a run setting: train.py starts that many processes for the run.
        processes = {"processes": self.processes} if self.processes > 1 else {}
        self.dismiss({**self.overrides(), **processes})

    @on(Button.Pressed, "#new-run-cancel")
    def action_cancel(self) -> None:
        """Close without starting a run."""
        self.dismiss(None)

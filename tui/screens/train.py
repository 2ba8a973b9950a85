"""The Train area: start LoRA runs, follow them live, stop and resume them, read their results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Static

from store.evals import Evaluation, latest_evaluation
from store.projects import Project
from store.runs import RESUMABLE_STATUSES, Run, RunMetric, list_runs, metrics
from trainer.control.distributed import Launch
from trainer.control.jobs import (
    approved_rows,
    evaluating_runs,
    plan_for_project,
    refresh_runs,
    resume_run,
    start_run,
)
from trainer.control.jobs import stop_run as request_stop
from trainer.control.sweep import project_results, table_lines, verdict_lines
from tui.dialogs.methods import MethodsScreen
from tui.dialogs.new_run import NewRunScreen
from tui.run_text import read_log_tail, stop_asked_text
from tui.screens.area import AreaScreen
from tui.services import services
from tui.widgets.train.run_view import LOG_LINES, RunView
from tui.widgets.train.runs_table import RunsTable

if TYPE_CHECKING:
    import sqlite_utils

POLL_SECONDS = 0.5
"""How often the area reads the runs and the selected run's new progress rows."""


def no_runs(project: Project, n_train: int, n_eval: int) -> str:
    """What the area says when the project has no run yet."""
    if not n_train:
        return (
            f"Nothing to train {project.name} on yet: approve some train examples in "
            "Dataset (2) first, or import a file there (i)."
        )
    eval_rows = f" and {n_eval} eval" if n_eval else " (no eval rows: no eval loss or results)"
    return (
        f"No runs yet. Press n to fine-tune on the {n_train} approved train examples{eval_rows}. "
        "The form shows the settings tunesmith picks and why."
    )


class TrainScreen(AreaScreen):
    """Runs of the current project: history on the left, the selected run on the right."""

    AREA: ClassVar[str] = "train"
    CSS_PATH = "train.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_run", "New run", tooltip="Start a run with the picked settings"),
        Binding(
            "s",
            "stop_run",
            "Stop",
            tooltip="Stop the run after its step, with a checkpoint (or end its evaluation)",
        ),
        Binding("r", "resume_run", "Resume", tooltip="Resume from the last checkpoint"),
        Binding("c", "compare_run", "Compare", tooltip="Compare this run with the base model"),
        Binding(
            "m",
            "methods",
            "Methods",
            tooltip="Every completed run side by side: what it cost and how well it did",
        ),
    ]

    runs: reactive[tuple[Run, ...]] = reactive(())
    """The project's runs, oldest first, as last read."""

    selected_run_id: reactive[int | None] = reactive(None)
    """The run shown on the right; None before there is one."""

    class RunsRead(Message):
        """The project's runs and the selected run's new progress were read."""

        def __init__(
            self,
            project: Project,
            runs: Sequence[Run],
            evaluations: Mapping[int, Evaluation | None],
            run_id: int | None,
            after_row: int,
            new_metrics: Sequence[tuple[int, RunMetric]],
            log_tail: Sequence[str],
            approved: tuple[int, int],
            evaluating: frozenset[int],
        ) -> None:
            super().__init__()
            self.project = project
            """The project read."""
            self.runs = tuple(runs)
            """Its runs, oldest first."""
            self.evaluations = dict(evaluations)
            """Newly found evaluations of completed runs, by run id."""
            self.run_id = run_id
            """The run whose progress was read."""
            self.after_row = after_row
            """The progress rows read are those after this row id (0: all of them)."""
            self.new_metrics = tuple(new_metrics)
            """Progress rows of ``run_id`` after ``after_row``, with their row ids."""
            self.log_tail = tuple(log_tail)
            """The last lines of ``run_id``'s log."""
            self.approved = approved
            """Approved (train, eval) examples, read when there is no run yet."""
            self.evaluating = evaluating
            """Completed runs whose process still runs: it evaluates them."""

    class ApprovedRowsCounted(Message):
        """The approved rows were counted, so the new-run form can open."""

        def __init__(self, project: Project, n_train: int, n_eval: int) -> None:
            super().__init__()
            self.project = project
            """The project to train."""
            self.n_train = n_train
            """Its approved train rows."""
            self.n_eval = n_eval
            """Its approved eval rows."""

    class RunLaunched(Message):
        """A run was started or resumed in its own process."""

        def __init__(self, run: Run, resumed: bool) -> None:
            super().__init__()
            self.run = run
            """The run, as it was right after its process started."""
            self.resumed = resumed
            """Whether it continues from a checkpoint."""

    class CompareRequested(Message):
        """The person asked to compare a completed run with the base model (the app opens it)."""

        def __init__(self, run_id: int) -> None:
            super().__init__()
            self.run_id = run_id
            """The run to compare."""

    class StopRequested(Message):
        """A run was asked to stop (it finishes its step and saves a checkpoint first)."""

        def __init__(self, run: Run) -> None:
            super().__init__()
            self.run = run
            """The run asked to stop."""

    def __init__(self, database: sqlite_utils.Database) -> None:
        super().__init__(database)
        self._evaluations: dict[int, Evaluation | None] = {}
        self._evaluating: frozenset[int] = frozenset()
        self._metrics: list[RunMetric] = []
        self._metrics_run: int | None = None
        self._last_row = 0
        self._log_tail: tuple[str, ...] = ()
        self._approved = (0, 0)
        self._read_once = False
        self._keys_state: tuple[object, ...] = ()

    def compose_area(self) -> Iterable[Widget]:
        with Horizontal(id="train-body"):
            with Vertical(id="train-history"):
                yield Static("Runs", id="train-history-title", markup=False)
                yield RunsTable(id="train-runs")
            yield RunView(id="train-run")

    def on_mount(self) -> None:
        self.set_interval(POLL_SECONDS, self._poll)

    def watch_project(self, project: Project | None) -> None:
        self.runs = ()
        self._evaluations = {}
        self._read_once = False
        self.selected_run_id = None
        self._forget_metrics()
        self.query_one(RunsTable).show_runs((), {})
        view = self.query_one(RunView)
        if project is None:
            view.show_message("No project chosen yet: press p to choose or create one.")
        else:
            view.show_message("Reading runs…")
            self._read(project)
        self.refresh_bindings()

    def _forget_metrics(self) -> None:
        self._metrics = []
        self._metrics_run = None
        self._last_row = 0
        self._log_tail = ()

    # Reading, twice a second while the area is on screen

    def _poll(self) -> None:
        if self.project is None or not self.is_current:
            return
        if any(w.group == "train-read" and w.is_running for w in self.workers):
            return
        self._read(self.project)

    def _read(self, project: Project) -> None:
        run_id = self.selected_run_id
        after = self._last_row if run_id == self._metrics_run else 0
        known = frozenset(run for run, found in self._evaluations.items() if found is not None)
        self._read_runs(project, run_id, after, known)

    @work(thread=True, exit_on_error=False, group="train-read")
    def _read_runs(
        self, project: Project, run_id: int | None, after_row: int, known: frozenset[int]
    ) -> None:
        with services(self).database() as database:
            refresh_runs(database)
            runs = list_runs(database, project.id)
            evaluations = {
                run.id: latest_evaluation(database, run.id)
                for run in runs
                if run.status == "completed" and run.id not in known
            }
            evaluating = evaluating_runs(runs, evaluations)
            if run_id is None and runs:
                run_id = runs[-1].id
            new_metrics = metrics(database, run_id, after_id=after_row) if run_id else []
            approved = (0, 0)
            if not runs:
                train, evaluation = approved_rows(database, project)
                approved = (len(train), len(evaluation))
        run = next((run for run in runs if run.id == run_id), None)
        tail = read_log_tail(run.log_path, LOG_LINES) if run is not None else ()
        self.post_message(
            self.RunsRead(
                project,
                runs,
                evaluations,
                run_id,
                after_row,
                new_metrics,
                tail,
                approved,
                evaluating,
            )
        )

    @on(RunsRead)
    def _runs_read(self, message: RunsRead) -> None:
        if self.project is None or message.project.id != self.project.id:
            return
        self._evaluations.update(message.evaluations)
        self._evaluating = message.evaluating
        self._approved = message.approved
        self.runs = message.runs
        self.query_one(RunsTable).show_runs(message.runs, self._evaluations, message.evaluating)
        if self.selected_run_id is None and message.run_id is not None:
            self.selected_run_id = message.run_id
            self.query_one(RunsTable).select_run(message.run_id)
        changed = False
        if message.run_id == self.selected_run_id and message.run_id is not None:
            if message.after_row == 0 or self._metrics_run != message.run_id:
                self._metrics = []
                self._metrics_run = message.run_id
                changed = True
            if message.new_metrics and (message.after_row == self._last_row or changed):
                self._metrics.extend(metric for _, metric in message.new_metrics)
                self._last_row = message.new_metrics[-1][0]
                changed = True
            self._log_tail = message.log_tail
        self._read_once = True
        self._show_selected(metrics_changed=changed)
        self._refresh_keys()

    def _refresh_keys(self) -> None:
        """Refresh the footer when what the keys act on changed (it is rebuilt each time)."""
        run = self._selected_run()
        state = (
            self.project,
            run.id if run else None,
            run.status if run else None,
            run is not None and run.id in self._evaluating,
        )
        if state != self._keys_state:
            self._keys_state = state
            self.refresh_bindings()

    def _selected_run(self) -> Run | None:
        return next((run for run in self.runs if run.id == self.selected_run_id), None)

    def _show_selected(self, *, metrics_changed: bool) -> None:
        view = self.query_one(RunView)
        run = self._selected_run()
        if self.project is None:
            return
        if run is None:
            if self._read_once and not self.runs:
                view.show_message(no_runs(self.project, *self._approved))
            return
        view.show(
            run,
            self._metrics if self._metrics_run == run.id else [],
            self._log_tail,
            self._evaluations.get(run.id),
            metrics_changed=metrics_changed,
        )

    @on(DataTable.RowHighlighted, "#train-runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        run_id = self.query_one(RunsTable).run_id_at(event.cursor_row)
        if run_id is None or run_id == self.selected_run_id:
            return
        self.selected_run_id = run_id
        self._forget_metrics()
        self._show_selected(metrics_changed=True)
        self._refresh_keys()
        if self.project is not None:
            self._read(self.project)

    # Acting

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        run = self._selected_run()
        if action == "new_run":
            return self.project is not None
        if action == "stop_run":
            return run is not None and (
                run.status in ("queued", "running") or run.id in self._evaluating
            )
        if action == "resume_run":
            return run is not None and run.status in RESUMABLE_STATUSES
        if action == "compare_run":
            return run is not None and run.status == "completed"
        if action == "methods":
            return any(run.status == "completed" for run in self.runs)
        return True

    def action_new_run(self) -> None:
        """Open the form of a new run, filled with the settings tunesmith picks."""
        if self.project is not None:
            self._count_rows(self.project)

    @work(thread=True, exclusive=True, exit_on_error=False, group="train-plan")
    def _count_rows(self, project: Project) -> None:
        with services(self).database() as database:
            # Raises a clear error when there is nothing to train on.
            plan_for_project(database, project)
            train, evaluation = approved_rows(database, project)
        self.post_message(self.ApprovedRowsCounted(project, len(train), len(evaluation)))

    @on(ApprovedRowsCounted)
    def _plan_ready(self, message: ApprovedRowsCounted) -> None:
        project = message.project

        def start(overrides: dict[str, Any] | None) -> None:
            if overrides is not None:
                self._start_run(project, overrides)

        self.app.push_screen(
            NewRunScreen(project.name, message.n_train, message.n_eval), callback=start
        )

    @work(thread=True, exit_on_error=False, group="train-launch")
    def _start_run(self, project: Project, overrides: dict[str, Any]) -> None:
        app_services = services(self)
        launch = Launch(processes=int(overrides.pop("processes", 1)))
        with app_services.database() as database:
            plan = plan_for_project(database, project, overrides)
            run = start_run(database, app_services.db_path, project, plan, launch)
        self.post_message(self.RunLaunched(run, resumed=False))

    def action_stop_run(self) -> None:
        """Ask the selected run to stop after its current step, with a checkpoint."""
        run = self._selected_run()
        if run is not None:
            self._stop(run.id)

    @work(thread=True, exit_on_error=False, group="train-launch")
    def _stop(self, run_id: int) -> None:
        with services(self).database() as database:
            run = request_stop(database, run_id)
        self.post_message(self.StopRequested(run))

    def action_resume_run(self) -> None:
        """Start the selected stopped, interrupted or failed run again from its checkpoint."""
        run = self._selected_run()
        if run is not None:
            self._resume(run.id)

    @work(thread=True, exit_on_error=False, group="train-launch")
    def _resume(self, run_id: int) -> None:
        app_services = services(self)
        with app_services.database() as database:
            run = resume_run(database, app_services.db_path, run_id)
        self.post_message(self.RunLaunched(run, resumed=True))

    @on(RunLaunched)
    def _run_launched(self, message: RunLaunched) -> None:
        run = message.run
        verb = f"resumes from step {run.checkpoint_step or 0}" if message.resumed else "started"
        self.notify(
            f"Run {run.id} {verb}. It trains in the background, even if you quit.",
            title="Training",
            markup=False,
        )
        self.selected_run_id = run.id
        self._forget_metrics()
        if self.project is not None:
            self._read(self.project)

    @on(StopRequested)
    def _stop_requested(self, message: StopRequested) -> None:
        self.notify(
            stop_asked_text(message.run),
            title="Training",
            markup=False,
        )

    def action_methods(self) -> None:
        """Show the completed runs side by side, as ``tunesmith sweep`` does."""
        if self.project is not None:
            self._read_methods(self.project)

    @work(thread=True, exclusive=True, exit_on_error=False, group="train-methods")
    def _read_methods(self, project: Project) -> None:
        with services(self).database() as database:
            results = project_results(database, project.id)
        screen = MethodsScreen(table_lines(results), verdict_lines(results))
        self.app.call_from_thread(self.app.push_screen, screen)

    def action_compare_run(self) -> None:
        """Open the Compare area on the selected run."""
        run = self._selected_run()
        if run is not None:
            self.post_message(self.CompareRequested(run.id))

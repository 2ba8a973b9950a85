"""The history of a project's runs: id, status and result, newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

from store.evals import Evaluation
from store.runs import Run
from tui.run_text import result_cell, status_style
from tui.widgets.key_table import KeyTable


class RunsTable(KeyTable):
    """One row per run, newest first; the row key is the run id."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[tuple[int, str, str], ...] = ()

    def on_mount(self) -> None:
        self.add_column("run", key="run")
        self.add_column("status", key="status")
        self.add_column("result", key="result")

    def show_runs(
        self,
        runs: Sequence[Run],
        evaluations: Mapping[int, Evaluation | None],
        evaluating: frozenset[int] = frozenset(),
    ) -> None:
        """Show ``runs`` (oldest first, as the store lists them), keeping the cursor's run;
        ``evaluating`` holds the completed runs still being evaluated."""
        rows = tuple(
            (
                run.id,
                run.status,
                result_cell(run, evaluations.get(run.id), evaluating=run.id in evaluating),
            )
            for run in reversed(runs)
        )
        if rows == self._shown:
            return
        colors = self.app.theme_variables
        if [row[0] for row in rows] == [row[0] for row in self._shown]:
            # The same runs: change the cells that moved on, keeping the table's layout.
            for (run_id, status, result), old in zip(rows, self._shown, strict=True):
                if (status, result) != old[1:]:
                    style = status_style(colors, status)
                    # Widen the column when needed: "running" becomes "completed".
                    self.update_cell(
                        str(run_id), "status", Text(status, style=style), update_width=True
                    )
                    self.update_cell(str(run_id), "result", Text(result), update_width=True)
            self._shown = rows
            return
        current = self.run_id_at(self.cursor_row)
        self._shown = rows
        self.clear()
        for run_id, status, result in rows:
            self.add_row(
                Text(str(run_id), justify="right"),
                Text(status, style=status_style(colors, status)),
                Text(result),
                key=str(run_id),
            )
        ids = [row[0] for row in rows]
        if current in ids:
            self.move_cursor(row=ids.index(current))

    def run_id_at(self, row: int) -> int | None:
        """The id of the run in row ``row``, if there is such a row."""
        return self._shown[row][0] if 0 <= row < len(self._shown) else None

    def select_run(self, run_id: int) -> None:
        """Put the cursor on run ``run_id`` if it is listed."""
        ids = [row[0] for row in self._shown]
        if run_id in ids:
            self.move_cursor(row=ids.index(run_id))

"""The Chat area: the agent's interview with the spec filling in beside it, and the models.

Talking to the agent collects the task spec and examples (``agent.interview``). Talking to
the base model, a tuned run, or both at once streams each answer into its own column.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Select, Static
from textual.worker import Worker, WorkerState

from store.database import open_database
from store.errors import one_line_reason
from store.projects import Project
from tui.chat_agent import OpenedInterview, open_interview, spec_panel_text
from tui.chat_targets import AGENT, ModelTalk, Target, targets_for
from tui.screens.area import AreaScreen
from tui.services import AppServices, completed_run_ids, services
from tui.streaming import AnswerStreamed, ServerStatusChanged, stream_to
from tui.widgets.chat.message_box import MessageBox
from tui.widgets.chat.spec_panel import SpecPanel
from tui.widgets.chat.transcript import AgentMessage, ModelTurn, PersonMessage, message_widgets
from tui.widgets.compare.prompt_box import PromptBox

if TYPE_CHECKING:
    import sqlite_utils

    from agent.interview import Interview, Reply
    from agent.work import Work

AGENT_HINT = (
    "Enter sends · ctrl+j new line · ctrl+t talks to the models instead · "
    '/help lists commands · "Input: … Output: …" adds an example'
)
MODELS_HINT = "Enter asks · ctrl+j new line · ctrl+t switches model · ctrl+n new conversation"


class ChatScreen(AreaScreen):
    """Describe the task to the agent; talk to the base model, a tuned run, or both."""

    AREA: ClassVar[str] = "chat"
    TYPING: ClassVar[bool] = True
    CSS_PATH = "chat.tcss"
    AUTO_FOCUS = "#chat-input"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+t",
            "next_target",
            "Talk to",
            tooltip="Switch between the agent, the base model, tuned runs and base + tuned",
        ),
        Binding(
            "ctrl+n", "new_conversation", "New talk", tooltip="Forget the talk with the models"
        ),
    ]

    target: reactive[Target] = reactive(AGENT)
    """Who the typed messages go to."""

    busy: reactive[bool] = reactive(False)
    """Whether the agent is working on the last message."""

    class InterviewOpened(Message):
        """The interview of a project is ready, with its earlier messages."""

        def __init__(self, opening_id: int, opened: OpenedInterview) -> None:
            super().__init__()
            self.opening_id = opening_id
            """Which opening of a project this is; an older one's result is dropped."""
            self.opened = opened

    class AgentReplied(Message):
        """The agent answered a message."""

        def __init__(self, project_id: int, reply: Reply, summary: Text) -> None:
            super().__init__()
            self.project_id = project_id
            self.reply = reply
            self.summary = summary
            """The spec panel's text after the turn."""

    class AgentWorking(Message):
        """The agent's long work moved on ("drafted 4/10")."""

        def __init__(self, project_id: int, line: str) -> None:
            super().__init__()
            self.project_id = project_id
            self.line = line

    class RunsRead(Message):
        """The project's completed runs were read: they can be talked to."""

        def __init__(self, project_id: int, run_ids: Sequence[int]) -> None:
            super().__init__()
            self.project_id = project_id
            self.run_ids = tuple(run_ids)

    def __init__(self, database: sqlite_utils.Database) -> None:
        super().__init__(database)
        self._interview: Interview | None = None
        self._greeted: set[int] = set()
        # The interview gets a connection of its own: a turn can wait minutes on a teacher
        # model, and the app's shared connection must not be held that long.
        self._connection: sqlite_utils.Database | None = None
        self._connection_lock = threading.Lock()
        self._run_ids: tuple[int, ...] = ()
        self._talk = ModelTalk()
        self._turn: ModelTurn | None = None
        self._openings = 0
        self._work: Work | None = None
        """The long work of the agent's current turn, which esc cancels."""
        self._notice = ""
        self._unsent: deque[str] = deque()
        """Messages to the agent sent while it worked on an earlier one, oldest first."""

    def compose_area(self) -> Iterable[Widget]:
        with Horizontal(id="chat-top"):
            yield Static("Talk to", id="chat-to")
            yield Select[str](
                [(AGENT.label, AGENT.key)],
                value=AGENT.key,
                allow_blank=False,
                id="chat-target",
                compact=True,
            )
            yield Static(id="chat-status", markup=False)
        with Horizontal(id="chat-body"):
            yield VerticalScroll(id="chat-log", can_focus=True)
            yield VerticalScroll(id="chat-models", can_focus=True)
            yield SpecPanel(id="chat-spec")
        yield MessageBox(id="chat-input", placeholder="Describe your task…")
        yield Static(AGENT_HINT, id="chat-hint", markup=False)

    def on_mount(self) -> None:
        self._show_target()

    def on_unmount(self) -> None:
        with self._connection_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # Opening a project

    def watch_project(self, project: Project | None) -> None:
        self._interview = None
        self.busy = False
        self._unsent.clear()
        self._talk.forget()
        self._turn = None
        self._run_ids = ()
        self.target = AGENT
        self._show_targets()
        log = self.query_one("#chat-log", VerticalScroll)
        log.remove_children()
        self.query_one("#chat-models", VerticalScroll).remove_children()
        if project is None:
            log.mount(AgentMessage("No project chosen yet: press ctrl+o to choose or create one."))
            return
        self._set_status("Opening the interview…")
        self._openings += 1
        self._open_interview(project, self._openings)
        self._read_runs(project)

    def on_screen_resume(self) -> None:
        # A run may have completed while the person was in another area.
        if self.project is not None:
            self._read_runs(self.project)

    def _chat_database(self, app_services: AppServices) -> sqlite_utils.Database:
        """The interview's own connection (call with ``_connection_lock`` held)."""
        if self._connection is None:
            self._connection = open_database(app_services.db_path)
        return self._connection

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-agent")
    def _open_interview(self, project: Project, opening_id: int) -> None:
        app_services = services(self)
        with self._connection_lock:
            database = self._chat_database(app_services)
            greeted = project.id in self._greeted
            opened = open_interview(database, project.id, app_services, greeted=greeted)
        self.post_message(self.InterviewOpened(opening_id, opened))

    @on(InterviewOpened)
    def _interview_opened(self, message: InterviewOpened) -> None:
        if message.opening_id != self._openings:
            return
        opened = message.opened
        self._interview = opened.interview
        self._greeted.add(opened.project.id)
        log = self.query_one("#chat-log", VerticalScroll)
        widgets: list[Widget] = list(message_widgets(opened.earlier))
        if opened.opening:
            widgets.append(AgentMessage(opened.opening))
        log.mount_all(widgets)
        log.scroll_end(animate=False)
        self.query_one(SpecPanel).show(opened.summary)
        self._notice = opened.notice
        self._set_status(opened.notice)
        self._send_next()

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-runs")
    def _read_runs(self, project: Project) -> None:
        with services(self).database() as database:
            run_ids = completed_run_ids(database, project)
        self.post_message(self.RunsRead(project.id, run_ids))

    @on(RunsRead)
    def _runs_read(self, message: RunsRead) -> None:
        if self.project is not None and message.project_id == self.project.id:
            self._run_ids = message.run_ids
            self._show_targets()

    # Choosing who to talk to

    def _targets(self) -> list[Target]:
        return targets_for(self._run_ids)

    def _show_targets(self) -> None:
        select = self.query_one("#chat-target", Select)
        targets = self._targets()
        keys = [target.key for target in targets]
        if self.target.key not in keys:
            self.target = AGENT
        with select.prevent(Select.Changed):
            select.set_options([(target.label, target.key) for target in targets])
            select.value = self.target.key

    @on(Select.Changed, "#chat-target")
    def _target_chosen(self, event: Select.Changed) -> None:
        for target in self._targets():
            if target.key == event.value:
                self.target = target

    def action_next_target(self) -> None:
        """Talk to the next in the list: agent, base, base + tuned, tuned, older runs."""
        targets = self._targets()
        keys = [target.key for target in targets]
        index = keys.index(self.target.key) if self.target.key in keys else -1
        self.target = targets[(index + 1) % len(targets)]
        with self.query_one("#chat-target", Select).prevent(Select.Changed):
            self.query_one("#chat-target", Select).value = self.target.key
        if len(targets) == 2 and self.target.is_agent is False:
            self.notify(
                "Only the base model until a run completes: train one in Train (F4).",
                markup=False,
            )

    def watch_target(self) -> None:
        self._show_target()
        self.refresh_bindings()

    def _show_target(self) -> None:
        agent = self.target.is_agent
        self.query_one("#chat-log").display = agent
        self.query_one("#chat-spec").display = agent
        self.query_one("#chat-models").display = not agent
        box = self.query_one("#chat-input", MessageBox)
        box.placeholder = (
            "Describe your task…"
            if agent
            else "Ask " + " and ".join(side.title for side in self.target.sides) + "…"
        )
        self.query_one("#chat-hint", Static).update(AGENT_HINT if agent else MODELS_HINT)
        if not agent and not self._talk.exchanges and self._turn is None:
            models = self.query_one("#chat-models", VerticalScroll)
            if not models.children:
                models.mount(
                    AgentMessage(
                        "Ask anything: each model answers in its own column. The talk with"
                        " the models is not stored and does not change the dataset.",
                        classes="agent note",
                    )
                )
        box.focus()

    # Sending

    @on(PromptBox.Submitted, "#chat-input")
    def _submitted(self, event: PromptBox.Submitted) -> None:
        # The box empties itself on Enter (the keys after it are the next message).
        if self.project is None:
            event.prompt_box.text = event.prompt
            self.notify("Choose a project first: ctrl+o.", markup=False)
        elif not self.target.is_agent:
            self._ask_models(self.project, event.prompt)
        else:
            # A message sent while the interview opens or the agent works waits its turn:
            # lines pasted or typed fast (an input, then its output) all reach the agent, in
            # order.
            self._unsent.append(event.prompt)
            self._send_next()

    def _send_next(self) -> None:
        """Send the oldest message waiting for the agent, unless it is still working."""
        interview = self._interview
        if interview is None or self.busy or not self._unsent:
            return
        text = self._unsent.popleft()
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(PersonMessage(text))
        log.scroll_end(animate=False)
        self.busy = True
        self._agent_turn(interview, text)

    @work(thread=True, exit_on_error=False, group="chat-turn")
    def _agent_turn(self, interview: Interview, text: str) -> None:
        from agent.work import Work

        def report(line: str) -> None:
            self.post_message(self.AgentWorking(interview.project_id, line))

        work = Work(report=report)
        self._work = work
        try:
            with self._connection_lock:
                reply = interview.handle(text, work)
                summary = spec_panel_text(interview)
        finally:
            self._work = None
        self.post_message(self.AgentReplied(interview.project_id, reply, summary))

    def watch_busy(self, busy: bool) -> None:
        if busy:
            self._set_status("The agent is thinking…")
        elif self._interview is not None:
            self._set_status(self._notice)

    @on(AgentWorking)
    def _agent_working(self, message: AgentWorking) -> None:
        if self.busy and self.project is not None and message.project_id == self.project.id:
            self._set_status(f"{message.line} · esc stops")

    @on(AgentReplied)
    def _agent_replied(self, message: AgentReplied) -> None:
        self.busy = False
        if self.project is None or message.project_id != self.project.id:
            return
        reply = message.reply
        log = self.query_one("#chat-log", VerticalScroll)
        if reply.text:
            log.mount(AgentMessage(reply.text))
            log.scroll_end(animate=False)
        self.query_one(SpecPanel).show(message.summary)
        if reply.action == "train":
            self._open_training()
        elif reply.action == "quit":
            self.app.exit()
            return
        self._send_next()

    def _open_training(self) -> None:
        from tui.screens.train import TrainScreen

        async def switch() -> None:
            await self.app.switch_mode("train")
            screen = self.app.screen
            if isinstance(screen, TrainScreen):
                screen.action_new_run()

        self.app.call_later(switch)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        error = event.worker.error
        if event.state is not WorkerState.ERROR or error is None:
            return
        if event.worker.group == "chat-turn":
            self.busy = False
            self.query_one("#chat-log", VerticalScroll).mount(
                AgentMessage(
                    f"Something went wrong: {one_line_reason(error)}", classes="agent error"
                )
            )
            self._send_next()
        elif event.worker.group == "chat-ask":
            self._finish_turn(f"No answer: {one_line_reason(error)}", error=True)
            self._set_status("")

    # The models

    def _ask_models(self, project: Project, prompt: str) -> None:
        target = self.target
        self._finish_turn("(stopped: asked again)")
        conversations = self._talk.ask(target, prompt)
        turn = ModelTurn(prompt, [(side.side, side.title) for side in target.sides])
        self._turn = turn
        models = self.query_one("#chat-models", VerticalScroll)
        models.mount(turn)
        models.scroll_end(animate=False)
        # The tuned answer first, as in Compare: it is the one being judged and usually short.
        in_order = sorted(target.sides, key=lambda side: side.side != "tuned")
        self._stream(
            project,
            {side.side: side.model for side in in_order},
            conversations,
            self._talk.request,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-ask")
    def _stream(
        self,
        project: Project,
        models: dict[str, str],
        conversations: dict[str, list[dict[str, str]]],
        request: int,
    ) -> None:
        stream_to(self, project, models, conversations, request)

    @on(ServerStatusChanged)
    def _server_status(self, message: ServerStatusChanged) -> None:
        if message.request == self._talk.request:
            self._set_status(f"Starting the model server: {message.status}")

    @on(AnswerStreamed)
    def _answer_streamed(self, message: AnswerStreamed) -> None:
        turn = self._turn
        if turn is None or message.request != self._talk.request:
            return
        self._set_status("The server answers one model at a time.")
        models = self.query_one("#chat-models", VerticalScroll)
        # Follow the answer only while the person has not scrolled up to read.
        following = models.scroll_y >= models.max_scroll_y - 1
        turn.answer(message.side).show(message.text, note="(empty answer)")
        if message.done and self._talk.answered(message.side, message.text):
            self._turn = None
            self._set_status("")
        if following:
            models.scroll_end(animate=False)

    def _finish_turn(self, note: str, *, error: bool = False) -> None:
        """Mark the columns of the current turn that got no complete answer."""
        turn = self._turn
        if turn is None:
            return
        for side in self._talk.unanswered():
            turn.answer(side.side).show("", note=note, error=error)
        self._turn = None

    def action_new_conversation(self) -> None:
        """Forget the talk with the models: the next prompt starts afresh."""
        self._finish_turn("(stopped)")
        self.workers.cancel_group(self, "chat-ask")
        self._talk.forget()
        self.query_one("#chat-models", VerticalScroll).remove_children()
        self._show_target()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "new_conversation":
            return not self.target.is_agent
        return True

    def action_leave_prompt(self) -> None:
        """Stop the agent's long work (a draft) after its current step; else move from the
        message box to the transcript, to scroll it."""
        work = self._work
        if work is not None and self.busy:
            work.cancel.set()
            self._set_status("Stopping after the current model call…")
            return
        self.query_one("#chat-log" if self.target.is_agent else "#chat-models").focus()

    def _set_status(self, text: str) -> None:
        self.query_one("#chat-status", Static).update(text)

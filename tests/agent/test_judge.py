"""The LLM judge through the real OpenAI client, against a stand-in endpoint on loopback (the
remote API is outside our reach; tests/trainer/test_serve.py judges with our own server):
grades become scores, a reply that is no verdict stays unjudged, a dead endpoint and a cancel
end judging, and the spec's rules and a JSON schema are in the request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent.judge import JudgedRow, judge_instructions, judge_rows
from agent.models import Endpoint, openai_chat_model
from agent.spec import TaskSpec
from agent.work import Work
from store.errors import CancelledError, ModelError
from store.evals import JudgeVerdict
from tests.openai_stand_in import StandIn, stand_in_endpoint

SPEC = TaskSpec(
    goal="answer questions about our return policy",
    output_kind="free_text",
    constraints=("Never promise a refund after 30 days.",),
    style="two sentences at most",
)


@pytest.fixture
def endpoint() -> Iterator[StandIn]:
    with stand_in_endpoint() as stand_in:
        yield stand_in


ROW = JudgedRow(
    item_id=7,
    prompt="Can I return shoes after six weeks?",
    reference="No: returns close after 30 days.",
    answers={"base": "Yes, any time!", "tuned": "No, returns close after 30 days."},
)


def judge(base_url: str, rows: list[JudgedRow], work: Work | None = None) -> Any:
    model = openai_chat_model(Endpoint("judge", base_url, "key"), max_tokens=100, max_retries=0)
    return judge_rows(model, SPEC, rows, work or Work())


def test_grades_become_scores_with_their_rationale(endpoint: StandIn) -> None:
    stand_in, url = endpoint, endpoint.base_url
    stand_in.answers = [
        '{"grade": 1, "rationale": "It promises a refund the policy forbids."}',
        '{"grade": 5, "rationale": "Right,\\n  and short."}',
    ]
    progress: list[str] = []
    verdicts = judge(url, [ROW], Work(report=progress.append))
    assert verdicts == {
        7: {
            "base": JudgeVerdict(0.0, "It promises a refund the policy forbids."),
            "tuned": JudgeVerdict(1.0, "Right, and short."),
        }
    }
    assert progress == ["judged 1/2", "judged 2/2"]
    request = stand_in.requests[0]
    # Held to a JSON schema, so that a server that constrains decoding can keep the judge to it.
    assert request["response_format"]["type"] == "json_schema"
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["grade"]["enum"] == [1, 2, 3, 4, 5]
    system, user = request["messages"]
    assert "Never promise a refund after 30 days." in system["content"]
    assert "Style: two sentences at most." in system["content"]
    assert "<answer>\nYes, any time!\n</answer>" in user["content"]


def test_a_reply_that_is_no_verdict_is_left_unjudged(endpoint: StandIn) -> None:
    stand_in, url = endpoint, endpoint.base_url
    stand_in.answers = ["I think it is fine.", '{"grade": 9, "rationale": "great"}']
    verdicts = judge(url, [ROW])[7]
    assert verdicts["base"].score is None and verdicts["tuned"].score is None
    assert verdicts["base"].rationale.startswith("not judged: the reply was no verdict")


def test_a_dead_endpoint_ends_judging_with_one_error() -> None:
    # A port nothing listens on: the first call fails and nothing is returned.
    with pytest.raises(ModelError, match=r"^the judge stopped answering: "):
        judge("http://127.0.0.1:9/v1", [ROW])


def test_a_cancel_stops_between_calls(endpoint: StandIn) -> None:
    stand_in, url = endpoint, endpoint.base_url
    stand_in.answers = ['{"grade": 3, "rationale": "partly"}']
    work = Work()
    work = Work(report=lambda line: work.cancel.set(), cancel=work.cancel)
    with pytest.raises(CancelledError):
        judge(url, [ROW], work)
    assert len(stand_in.requests) == 1


def test_without_rules_the_instructions_still_name_the_task() -> None:
    text = judge_instructions(TaskSpec())
    assert "The task: answer the user's message" in text and "Rules" not in text

"""Human approval inside the flow: pause before promote and wait for a person's decision through
Prefect's own input mechanism (the UI's resume form, or `resume_flow_run` with a run input).

Asked only when `promote.approval.required` and the gate would replace the champion; the
answer is written to the cycle's approval.json (tasks/engine/approval.py), which the promote
step reads. A paused run that is killed asks the same question again when rerun.
"""

from __future__ import annotations

import os
import time

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from tasks.engine import approval, dvcrepo
from tasks.engine.config import ApprovalParams, Config
from tasks.engine.files import read_json
from tasks.engine.layout import Layout, stage_name
from tasks.engine.records import Evaluated, Promotion
from tasks.steps import promote

POLL_SECONDS = 2


class PromotionDecision(RunInput):
    """What the person answers: promote the candidate or keep the champion, who, and why."""

    promote: bool
    by: str
    comment: str = ""


def ask(cfg: Config, cycle: str) -> str:
    """Pause for the person's decision on `cycle` when one is needed and not yet recorded."""
    layout = Layout(cfg.root)
    if not cfg.params.promote.approval.required:
        return "not required"
    if dvcrepo.is_current(dvcrepo.open_repo(cfg.root), stage_name("promote", cycle)):
        return "promote is current"
    previous = Promotion.from_json(read_json(layout.promotion(cfg.prev_of(cycle))))
    candidate, _, decision = promote.propose(cfg, cycle, previous)
    if not promote.asks_a_person(cfg, decision, previous):
        return "not needed"
    assert isinstance(candidate, Evaluated)  # the gate promotes no other
    if (recorded := approval.read(layout, cycle, candidate.model_id)) is not None:
        return _said(recorded)  # answered before the run asked (or by an earlier run)
    rules = cfg.params.promote.approval
    question = (
        f"promote@{cycle}: the gate would promote {candidate.model_id}: {decision.reason}. "
        f"Promote it? Answer in the Prefect UI, or `flywheel approve --cycle {cycle} "
        "--promote|--keep --by NAME [--comment TEXT]`"
    )
    get_run_logger().warning("%s (waiting up to %g minutes)", question, rules.timeout_minutes)
    if not os.environ.get("PREFECT_API_URL"):  # a temporary API: no UI to answer in
        record = _answer_file(layout, cycle, candidate.model_id, rules)
        approval.write(layout, cycle, record)
        return _said(record)
    _cancel_stale(f"approve-{cycle}")
    try:
        answer = pause_flow_run(
            wait_for_input=PromotionDecision.with_initial_data(
                description=question, promote=True, by="", comment=""
            ),
            timeout=max(1, round(rules.timeout_minutes * 60)),
            poll_interval=POLL_SECONDS,
            key=f"approve-{cycle}",
        )
        assert answer is not None
        record = approval.Approval.now(
            answer.promote, answer.by, answer.comment, "prefect", candidate.model_id
        )
    except FlowPauseTimeout:
        _running_again()
        record = _timed_out(rules, candidate.model_id)
    approval.write(layout, cycle, record)
    return _said(record)


def _said(record: approval.Approval) -> str:
    return f"{'promote' if record.promote else 'keep'} ({record.by})"


def _timed_out(rules: ApprovalParams, candidate: str) -> approval.Approval:
    why = f"no decision within {rules.timeout_minutes:g} minutes (on_timeout: {rules.on_timeout})"
    return approval.Approval.now(rules.on_timeout == "promote", "nobody", why, "timeout", candidate)


def _answer_file(
    layout: Layout, cycle: str, candidate: str, rules: ApprovalParams
) -> approval.Approval:
    """Without a Prefect server to pause on, wait for `flywheel approve` to write the answer."""
    deadline = time.monotonic() + rules.timeout_minutes * 60
    while time.monotonic() < deadline:
        if (found := approval.read(layout, cycle, candidate)) is not None:
            return found
        time.sleep(POLL_SECONDS)
    return _timed_out(rules, candidate)


def _cancel_stale(key: str) -> None:
    """Cancel this flow's earlier runs left paused at the same question: the workspace lock
    means their processes are gone (killed while waiting), so only this run can go on."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    me = context.flow_run
    paused = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=paused):
            stale = run.id != me.id and run.parameters == me.parameters
            if stale and run.state and run.state.state_details.pause_key == key:
                message = f"superseded by flow run {me.id}: its process was gone, the rerun asks"
                client.set_flow_run_state(run.id, Cancelled(message=message), force=True)


def _running_again() -> None:
    """After a pause timed out, the run goes on with the default: mark it running again."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Running(), force=True)

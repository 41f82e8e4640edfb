"""The invoice grace per stage: with ``invoice_grace_days`` the scheduled closes at month
end write drafts and a second schedule finalizes them when the grace ends (no sleep)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_infra_stack import synthesize

pytestmark = pytest.mark.infra


def test_a_grace_makes_the_first_close_drafts_and_schedules_the_finalization(
    tmp_path: Path,
) -> None:
    synth = synthesize(
        tmp_path, {"invoice_grace_days": "3", "require_billing_profile": "true"}, nag=False
    )
    machine_id, _ = synth.only("MonthCloseStateMachine", "AWS::StepFunctions::StateMachine")
    _, drafts = synth.only("MonthCloseSchedule", "AWS::Events::Rule")
    _, final = synth.only("InvoiceFinalizeSchedule", "AWS::Events::Rule")
    assert drafts["Properties"]["ScheduleExpression"] == "cron(0/15 * 1-2,28-31 * ? *)"
    assert final["Properties"]["ScheduleExpression"] == "cron(0/15 * 3-5 * ? *)"
    (draft_target,) = drafts["Properties"]["Targets"]
    (final_target,) = final["Properties"]["Targets"]
    assert json.loads(draft_target["Input"]) == {
        "trigger": "schedule",
        "grace_hours": 6,
        "draft": True,
    }
    # each time zone's group is finalized 3 days (+ the close grace) after its local end
    assert json.loads(final_target["Input"]) == {"trigger": "finalize", "grace_hours": 6 + 72}
    assert draft_target["Arn"] == final_target["Arn"] == {"Ref": machine_id}
    for function in synth.of_type("AWS::Lambda::Function").values():
        assert function["Properties"]["Environment"]["Variables"]["REQUIRE_BILLING_PROFILE"] == (
            "true"
        )

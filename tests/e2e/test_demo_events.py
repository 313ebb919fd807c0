"""End to end: the demo's event-driven part (demo.run_event_story) tells what the Lambda
handlers did on the emulator: a task starts and its findings appear, a security group is
opened and a Config change re-audits the task (history and finding update), the task
stops and its findings are archived."""

from __future__ import annotations

import re

import pytest
from fargate_audit.app import lambda_handlers
from fargate_audit.local import demo, estate
from support.demo import tell


@pytest.fixture(scope="module")
def story():
    with pytest.MonkeyPatch.context() as patch:
        return tell(demo.run_event_story, patch)


def _step(text: str, number: int) -> str:
    start = text.index(f"  {number}. ")
    end = text.find(f"  {number + 1}. ", start)
    return text[start : end if end >= 0 else None]


def test_the_running_task_is_audited_from_its_event_and_its_findings_appear(story):
    first = _step(story["text"], 1)
    assert "RUNNING: audited from the event itself" in first
    reads = int(re.search(r"\((\d+) AWS reads\)", first).group(1))
    assert 0 < reads <= 11  # the VPC facts, the definition, the cluster, the target groups
    assert re.search(r"(\d+) findings imported into Security Hub \(NET-03 PASSED", first)


def test_the_config_change_reaudits_the_task_and_the_history_and_finding_show_it(story):
    second = _step(story["text"], 2)
    assert "AWS Config reports the change" in second and "1 task depending on it" in second
    history = second[second.index("history of arn:aws:ecs:") :]
    assert history.index("ecs-event") < history.index("config-event")
    assert "rule NET-03: PASSED -> FAILED" in history
    assert '{"from":22,"protocol":"tcp","to":22}' in history
    before, after = re.search(r"UpdatedAt (\S+) -> (\S+)\.", second).groups()
    assert "NET-03: PASSED -> FAILED" in second and after > before


def test_the_stopped_task_archives_the_workload_findings(story):
    third = _step(story["text"], 3)
    archived = int(re.search(r"so its (\d+) findings are archived", third).group(1))
    assert archived > 0 and "(NET-03 now ARCHIVED)" in third


def test_the_story_leaves_no_environment_runtime_or_frozen_task_state_behind(story):
    from moto.moto_api import state_manager

    assert story["after"] == story["before"]
    assert lambda_handlers._RUNTIME is None
    assert state_manager.get_transition(estate.TASK_STATE_MODEL) != estate.FROZEN

"""Faults of the load-balancer reads (rules.md "Ingress through load balancers", issue 15
"Bad input and faults"), through the Lambda handlers on an emulated account with front
doors (``build_estate(front_doors=True)``, fault_harness._front_doors): the ``web`` tasks
behind an internet-facing ALB (HTTPS with a web ACL; HTTP redirected, a weight-0 rule),
the ``api`` and ``api-open`` tasks behind an internet-facing NLB that preserves client
addresses, the ``etl`` task behind nothing.

Each scenario ends with the suite's checks (conftest ``report``: no ERROR reported as
PASSED, no canary in an output, nothing lost) and is a row of the README's reliability
table (declared with ``reliability.scenario``).
"""

from __future__ import annotations

import fault_harness
import pytest
from fargate_audit.core import report as reports
from fargate_audit.local import estate
from fault_harness import T0, expected_statuses, sqs_record, sweep_body, weighted_forward
from moto import mock_aws
from reliability import scenario
from support.env import ACCOUNT, REGION

LB_FACTS = {"load_balancers"}
_DECLARED = {  # key -> reliability.scenario's arguments (name, category, the outcome asserted)
    "target_health_denied": (
        "AccessDenied on elasticloadbalancing:DescribeTargetHealth",
        "aws-fault",
        "NET-11/NET-12 ERROR naming the call for every task of the VPC, exposures null; "
        "every other rule unchanged",
    ),
    "web_acl_denied": (
        "AccessDenied on wafv2:GetWebACLForResource",
        "aws-fault",
        "NET-12 ERROR only for the task exposed through the ALB (its exposures null); "
        "NET-11 and the others unchanged",
    ),
    "deleted": (
        "Load balancer deleted before its listeners are read (LoadBalancerNotFound)",
        "aws-fault",
        "that front door is gone, not an error: NET-11/NET-12 NOT_APPLICABLE where it was the only one",
    ),
    "deleted_batch": (
        "Load balancer deleted within a DescribeLoadBalancers batch (LoadBalancerNotFound)",
        "aws-fault",
        "described one load balancer at a time; the gone one is no front door, the others unchanged",
    ),
    "failed_alb": (
        "ALB in state failed",
        "aws-fault",
        "no front door (listeners and web ACL not read): NET-11/NET-12 NOT_APPLICABLE",
    ),
    "weighted": (
        "Listener rule forwarding with weight 0, then 1",
        "aws-fault",
        "weight 0 is no front door (NET-11 PASSED); weight 1 makes the HTTP listener one (NET-11 FAILED)",
    ),
    "preserved": (
        "NLB preserving client addresses",
        "aws-fault",
        "a task admitting only the VPC's CIDR is not reached through it; admitting the world, it is",
    ),
}
SCENARIOS = {key: scenario(*args) for key, args in _DECLARED.items()}


@pytest.fixture(scope="module")
def world():
    """The module's emulated account: conftest's, with the front doors."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        built = fault_harness.build_estate(monkeypatch, front_doors=True)
        try:
            yield built
        finally:
            estate.release_task_states(built.client("ecs"))


# --------------------------------------------------------------------------- helpers


def _everyone(world) -> list:
    return [world.web[0], world.etl[0], world.api[0], world.api_open[0]]


def _audit(run, tasks, version: int = 4) -> None:
    for task in tasks:
        outcome = run.task_events(run.running(task, version=version))
        assert outcome["status"] == "audited", outcome


def _posture(run, task) -> dict:
    return run.latest(task)["posture"]


def _exposures(run, task) -> list[dict]:
    return _posture(run, task)["network"]["exposures"]


def _baseline_exposures(world, task) -> list[dict]:
    return world.baseline[task.arn]["posture"]["network"]["exposures"]


def _evidence_errors(run, task) -> dict[str, str]:
    return {r["rule_id"]: r["evidence"].get("error", "") for r in run.latest(task)["results"]}


def _report_entry(run, task) -> dict:
    """The task's entry in a scan report of what was recorded for it."""
    latest = run.latest(task)
    (entry,) = reports.build_report([latest["posture"]], latest["results"], now=T0)["tasks"]
    return entry


def _without_front_door(world, task) -> dict[str, str]:
    return world.baseline[task.arn]["statuses"] | {"NET-11": "NOT_APPLICABLE", "NET-12": "NOT_APPLICABLE"}


def _finding_id(workload: str, rule_id: str) -> str:
    return f"fargate-audit/{ACCOUNT}/{REGION}/{workload}/{rule_id}"


def _calls(run, service: str) -> dict[str, int]:
    return dict(run.calls.operations([service]))


# --------------------------------------------------------------------------- the world


def test_the_world_has_the_front_doors_the_scenarios_change(world):
    web, etl, api, api_open = _everyone(world)
    (https,) = _baseline_exposures(world, web)
    assert (https["listener_arn"], https["web_acl_arn"], https["families"]) == (
        world.front["https"],
        world.front["web_acl"],
        ["ipv4"],
    )
    assert _baseline_exposures(world, etl) == _baseline_exposures(world, api) == []
    (tcp,) = _baseline_exposures(world, api_open)
    assert (tcp["listener_arn"], tcp["target_port"], tcp["web_acl_arn"]) == (world.front["tcp"], 8443, None)
    statuses = {
        t.group: {r: world.baseline[t.arn]["statuses"][r] for r in ("NET-11", "NET-12")}
        for t in _everyone(world)
    }
    assert statuses == {
        "service:web": {"NET-11": "PASSED", "NET-12": "PASSED"},
        "family:etl": {"NET-11": "NOT_APPLICABLE", "NET-12": "NOT_APPLICABLE"},
        "service:api": {"NET-11": "NOT_APPLICABLE", "NET-12": "NOT_APPLICABLE"},
        "service:api-open": {"NET-11": "PASSED", "NET-12": "NOT_APPLICABLE"},
    }
    assert all(not world.baseline[t.arn]["errors"] for t in _everyone(world))


# --------------------------------------------------------------------------- denied reads


def test_access_denied_on_describe_target_health(run, report):
    tasks = _everyone(run.world)
    run.faults.deny("elbv2", "DescribeTargetHealth")

    _audit(run, tasks)

    for task in tasks:  # its targets spoil every task of the VPC, registered or not
        assert run.statuses(task) == expected_statuses(run.world, task, LB_FACTS), task.group
        errors = _evidence_errors(run, task)
        assert "DescribeTargetHealth: AccessDenied" in errors["NET-11"], errors
        assert "DescribeTargetHealth: AccessDenied" in errors["NET-12"], errors
        assert "DescribeTargetHealth" in _posture(run, task)["errors"]["load_balancers"]
        assert _report_entry(run, task)["exposures"] is None
    assert _calls(run, "elasticloadbalancing").get("elasticloadbalancing.DescribeLoadBalancers") is None
    report(SCENARIOS["target_health_denied"], run.tasks_lost(running=tasks) + run.findings_lost())


def test_access_denied_on_get_web_acl_for_resource(run, report):
    world = run.world
    web = world.web[0]
    tasks = _everyone(world)
    run.faults.deny("wafv2", "GetWebACLForResource")

    _audit(run, tasks)

    assert run.statuses(web) == world.baseline[web.arn]["statuses"] | {"NET-12": "ERROR"}
    assert "GetWebACLForResource: AccessDeniedException" in _evidence_errors(run, web)["NET-12"]
    errors = _posture(run, web)["errors"]
    assert "web_acl" in errors and "load_balancers" not in errors
    assert _posture(run, web)["network"]["unknown_web_acls"] == [world.front["alb"]]
    assert _report_entry(run, web)["exposures"] is None  # its NET-12 is ERROR
    for task in tasks[1:]:  # no exposure through an ALB: untouched
        assert run.statuses(task) == world.baseline[task.arn]["statuses"], task.group
        assert _report_entry(run, task)["exposures"] == _baseline_exposures(world, task)
    assert _calls(run, "wafv2") == {"wafv2.GetWebACLForResource": 1}  # the web task's ALB only
    finding = run.findings()[_finding_id("prod-web/service:web", "NET-12")]
    assert finding["Compliance"]["Status"] == "NOT_AVAILABLE"
    report(SCENARIOS["web_acl_denied"], run.tasks_lost(running=tasks) + run.findings_lost())


# --------------------------------------------------------------------------- throttling

NEW_CALLS = [
    ("elbv2", "DescribeTargetGroups"),
    ("elbv2", "DescribeTargetHealth"),
    ("elbv2", "DescribeLoadBalancers"),
    ("elbv2", "DescribeListeners"),
    ("elbv2", "DescribeRules"),
    ("elbv2", "DescribeTargetGroupAttributes"),
    ("ec2", "DescribeSubnets"),
    ("wafv2", "GetWebACLForResource"),
]


THROTTLED = {
    operation: scenario(
        f"Throttling on {'elasticloadbalancing' if service == 'elbv2' else service}:{operation} (x3)",
        "aws-fault",
        "retried with backoff, then the same exposures and results as without the fault",
    )
    for service, operation in NEW_CALLS
}


@pytest.mark.parametrize(("service", "operation"), NEW_CALLS, ids=lambda v: v)
def test_throttling_on_a_load_balancer_read_is_retried(run, report, service, operation):
    world = run.world
    tasks = [world.web[0], world.api_open[0]]  # between them, every read above is made
    run.faults.throttle(service, operation, times=3)

    for task in tasks:
        outcome = run.task_events(run.running(task))
        assert outcome["status"] == "audited" and outcome["errors"] == {}, outcome

    assert run.faults.injected[f"{service}.{operation}"] == 3 and len(run.clock.slept) == 3
    for task in tasks:
        assert run.statuses(task) == world.baseline[task.arn]["statuses"], task.group
        assert _exposures(run, task) == _baseline_exposures(world, task)
        assert _posture(run, task)["errors"] == {}
    report(THROTTLED[operation], run.tasks_lost(running=tasks) + run.findings_lost())


# --------------------------------------------------------------------------- gone, failed


def test_a_load_balancer_deleted_before_its_listeners_is_no_front_door(run, report):
    world = run.world
    web = world.web[0]
    alb = world.front["alb"]
    run.faults.fail(
        "elbv2", "DescribeListeners", "LoadBalancerNotFound", when=lambda p: p.get("LoadBalancerArn") == alb
    )

    _audit(run, [web])

    assert run.faults.injected["elbv2.DescribeListeners"] == 1
    assert run.statuses(web) == _without_front_door(world, web)
    assert _exposures(run, web) == [] and _posture(run, web)["errors"] == {}
    assert _report_entry(run, web)["exposures"] == []
    assert _calls(run, "wafv2") == {}  # a gone ALB's web ACL is not read
    report(SCENARIOS["deleted"], run.tasks_lost(running=[web]) + run.findings_lost())


def test_a_load_balancer_deleted_before_its_batch_is_described_alone_and_left_out(run, report):
    world = run.world
    alb = world.front["alb"]
    run.faults.fail(
        "elbv2",
        "DescribeLoadBalancers",
        "LoadBalancerNotFound",
        when=lambda p: alb in p.get("LoadBalancerArns", []),
    )

    swept = run.sweep_worker([sqs_record("sweep-1", sweep_body(world, "prod-web"))])  # one collection

    assert swept == {"batchItemFailures": []}
    pair = sorted([alb, world.front["nlb"]])
    described = [p["LoadBalancerArns"] for _, op, p in run.calls.calls if op == "DescribeLoadBalancers"]
    assert described == [pair, pair[:1], pair[1:]]  # the batch, then one by one
    for task in world.web:
        assert run.statuses(task) == _without_front_door(world, task)
        assert _exposures(run, task) == [] and _posture(run, task)["errors"] == {}
    for task in (world.api[0], world.api_open[0]):  # the network load balancer is still there
        assert run.statuses(task) == world.baseline[task.arn]["statuses"], task.group
        assert _exposures(run, task) == _baseline_exposures(world, task)
    report(
        SCENARIOS["deleted_batch"],
        run.tasks_lost(running=world.web + world.api + world.api_open) + run.findings_lost(),
    )


def test_an_alb_in_state_failed_is_no_front_door(run, report):
    """moto cannot put a load balancer in ``failed``: the answer of DescribeLoadBalancers is
    rewritten (botocore ``after-call``) as AWS would give it."""
    world = run.world
    web = world.web[0]
    alb = world.front["alb"]

    def failed(parsed, _):
        for item in parsed.get("LoadBalancers", []):
            if item["LoadBalancerArn"] == alb:
                item["State"] = {"Code": "failed", "Reason": "injected"}

    run.faults.rewrite("elbv2", "DescribeLoadBalancers", on_parsed=failed)

    _audit(run, [web])

    assert run.statuses(web) == _without_front_door(world, web)
    assert _exposures(run, web) == [] and _posture(run, web)["errors"] == {}
    calls = _calls(run, "elasticloadbalancing")
    assert calls["elasticloadbalancing.DescribeLoadBalancers"] == 1
    assert "elasticloadbalancing.DescribeListeners" not in calls  # a failed one's listeners are not read
    assert _calls(run, "wafv2") == {}
    report(SCENARIOS["failed_alb"], run.tasks_lost(running=[web]) + run.findings_lost())


# --------------------------------------------------------------------------- weights, NLB


def test_a_rule_forwarding_with_weight_0_is_no_front_door_and_with_weight_1_is(run, report):
    world = run.world
    web = world.web[0]
    elbv2 = world.client("elbv2")
    front = world.front

    _audit(run, [web])  # weight 0 on the HTTP listener's rule: HTTPS is the one front door

    assert [e["listener_arn"] for e in _exposures(run, web)] == [front["https"]]
    assert run.statuses(web)["NET-11"] == "PASSED"

    elbv2.modify_rule(
        RuleArn=front["weighted_rule"],
        Actions=[weighted_forward({front["web_group"]: 1, front["canary_group"]: 1})],
    )
    try:
        _audit(run, [web], version=5)
    finally:
        elbv2.modify_rule(
            RuleArn=front["weighted_rule"],
            Actions=[weighted_forward({front["web_group"]: 0, front["canary_group"]: 1})],
        )

    assert [(e["listener_port"], e["listener_protocol"]) for e in _exposures(run, web)] == [
        (80, "HTTP"),
        (443, "HTTPS"),
    ]
    assert run.statuses(web) == world.baseline[web.arn]["statuses"] | {"NET-11": "FAILED"}
    result = next(r for r in run.latest(web)["results"] if r["rule_id"] == "NET-11")
    assert [e["listener_arn"] for e in result["evidence"]["exposures"]] == [front["http"]]
    finding = run.findings()[_finding_id("prod-web/service:web", "NET-11")]
    assert finding["Compliance"]["Status"] == "FAILED"
    assert [r["Id"] for r in finding["Resources"] if r["Type"] == "AwsElbv2LoadBalancer"] == [front["alb"]]
    report(SCENARIOS["weighted"], run.tasks_lost(running=[web]) + run.findings_lost())


def test_an_nlb_preserving_client_addresses_reaches_only_a_task_admitting_the_world(run, report):
    world = run.world
    api, api_open = world.api[0], world.api_open[0]
    elbv2 = world.client("elbv2")
    group = world.front["api_group"]

    _audit(run, [api, api_open])  # preserved: api admits the VPC's CIDR only, api-open the world

    assert _exposures(run, api) == []
    assert run.statuses(api)["NET-11"] == "NOT_APPLICABLE"
    (exposure,) = _exposures(run, api_open)
    assert (exposure["load_balancer_arn"], exposure["listener_protocol"], exposure["target_port"]) == (
        world.front["nlb"],
        "TCP",
        8443,
    )
    assert (
        run.statuses(api_open)["NET-11"] == "PASSED" and run.statuses(api_open)["NET-12"] == "NOT_APPLICABLE"
    )

    preserve = [{"Key": "preserve_client_ip.enabled", "Value": "false"}]
    elbv2.modify_target_group_attributes(TargetGroupArn=group, Attributes=preserve)
    try:  # not preserved: the NLB's own addresses, inside the VPC's CIDR, reach api too
        _audit(run, [api], version=5)
    finally:
        preserve[0]["Value"] = "true"
        elbv2.modify_target_group_attributes(TargetGroupArn=group, Attributes=preserve)

    assert [e["listener_arn"] for e in _exposures(run, api)] == [world.front["tcp"]]
    assert run.statuses(api)["NET-11"] == "PASSED"
    report(SCENARIOS["preserved"], run.tasks_lost(running=[api, api_open]) + run.findings_lost())

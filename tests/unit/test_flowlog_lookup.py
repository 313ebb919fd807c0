"""The flow logs of a log group (edge/flowlog_lookup.py) against botocore's Stubber on a
real EC2 client: the filter, every page (moto ignores MaxResults), a failed call, and the
warm-container cache with its two lifetimes."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from fargate_audit.edge import flowlog_lookup
from fargate_audit.edge.flowlog_lookup import FlowLogCache, FlowLogLookupError

GROUP = "/vpc/flow-logs/prod"
CUSTOM = "${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${bytes} ${start} ${action}"


def ec2_client():
    return boto3.client(
        "ec2", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def request(token: str | None = None) -> dict:
    params = {"Filters": [{"Name": "log-group-name", "Values": [GROUP]}], "MaxResults": 1000}
    return params | ({"NextToken": token} if token else {})


def test_every_page_of_the_groups_flow_logs_is_read_by_the_log_group_filter():
    ec2 = ec2_client()
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_flow_logs",
            {"FlowLogs": [{"FlowLogId": "fl-2", "LogFormat": CUSTOM}], "NextToken": "page-2"},
            request(),
        )
        stub.add_response("describe_flow_logs", {"FlowLogs": [{"FlowLogId": "fl-1"}]}, request("page-2"))

        found = flowlog_lookup.group_flow_logs(ec2, GROUP)

        stub.assert_no_pending_responses()
    assert found == [{"FlowLogId": "fl-1"}, {"FlowLogId": "fl-2", "LogFormat": CUSTOM}]


@pytest.mark.parametrize(
    "code, status",
    [("UnauthorizedOperation", 403), ("AccessDenied", 403), ("RequestLimitExceeded", 503)],
)
def test_a_failed_call_raises_naming_the_action_and_the_group(code, status):
    ec2 = ec2_client()
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_flow_logs", code, "not for you", http_status_code=status)

        with pytest.raises(FlowLogLookupError) as raised:
            flowlog_lookup.group_flow_logs(ec2, GROUP)

    message = str(raised.value)
    assert message.startswith(f"ec2:DescribeFlowLogs (log-group-name {GROUP}): {code}: not for you")
    assert "no format is guessed" in message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_settled_answer_is_kept_an_hour_and_an_unsettled_one_five_minutes():
    clock, reads = Clock(), []
    cache = FlowLogCache(clock=clock)
    answers = {"/settled": [{"FlowLogId": "fl-1"}], "/none": []}

    class Ec2:
        def get_paginator(self, _name):
            return self

        def paginate(self, Filters, PaginationConfig):  # noqa: N803 - botocore's names
            group = Filters[0]["Values"][0]
            reads.append(group)
            return [{"FlowLogs": answers[group]}]

    def lookup(group):
        return flowlog_lookup.cached_group_flow_logs(cache, Ec2, group, lambda found: bool(found))

    for _ in range(3):
        assert lookup("/settled") == [{"FlowLogId": "fl-1"}] and lookup("/none") == []
    assert reads == ["/settled", "/none"]
    clock.now += flowlog_lookup.UNSETTLED_TTL_SECONDS
    answers["/none"] = [{"FlowLogId": "fl-9"}]  # a flow log created since
    assert lookup("/none") == [{"FlowLogId": "fl-9"}] and lookup("/settled") == [{"FlowLogId": "fl-1"}]
    assert reads == ["/settled", "/none", "/none"]
    clock.now += flowlog_lookup.SETTLED_TTL_SECONDS
    lookup("/settled")
    assert reads[-1] == "/settled" and len(reads) == 4


def test_a_failed_read_is_not_cached():
    cache, calls = FlowLogCache(clock=Clock()), []
    ec2 = ec2_client()

    def ec2_for():
        calls.append(1)
        return ec2

    with Stubber(ec2) as stub:
        stub.add_client_error("describe_flow_logs", "RequestLimitExceeded", "slow down", http_status_code=503)
        stub.add_response("describe_flow_logs", {"FlowLogs": [{"FlowLogId": "fl-1"}]}, request())
        with pytest.raises(FlowLogLookupError):
            flowlog_lookup.cached_group_flow_logs(cache, ec2_for, GROUP, bool)
        assert flowlog_lookup.cached_group_flow_logs(cache, ec2_for, GROUP, bool) == [{"FlowLogId": "fl-1"}]
    assert len(calls) == 2


def test_the_cache_keeps_at_most_its_bound_dropping_the_oldest(monkeypatch):
    monkeypatch.setattr(FlowLogCache, "MAX_ENTRIES", 2)
    cache = FlowLogCache(clock=Clock())
    for group in ("/a", "/b", "/c"):
        cache.put(group, [], 60)
    assert cache.get("/a") is None and cache.get("/b") == [] and cache.get("/c") == []

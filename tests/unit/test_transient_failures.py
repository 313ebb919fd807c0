"""Failures a later try may not meet (throttling past the SDK's retries, a transient 5xx):
what a Config event's handling does with them. Config sends no second event for a change,
so such a failure retries the event (RetryLater) instead of leaving old verdicts standing
until the next sweep."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from fargate_audit.app import service
from fargate_audit.edge.aws import describe_error, transient_failure


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "try later"}}, operation)


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        (describe_error(_error("ThrottlingException", "DescribeTasks"), "DescribeTasks"), True),
        # a dependent task in another audited account: its role throttled
        (describe_error(_error("Throttling", "AssumeRole"), "sts:AssumeRole"), True),
        (describe_error(_error("ServiceUnavailable", "DescribeTasks"), "DescribeTasks"), True),
        (describe_error(_error("AccessDeniedException", "DescribeTasks"), "DescribeTasks"), False),
        ("DescribeTasks: task of account 111111111111 in eu-west-1, not read by this stack", False),
        ("MISSING", False),
        # AWS gave no message: the role follows the code
        ("sts:AssumeRole: Throttling (arn:aws:iam::111111111111:role/fargate-audit-member)", True),
        ("DescribeTasks: 503", True),  # a 5xx whose body botocore could not parse
    ],
)
def test_which_failures_are_transient(message, transient):
    assert transient_failure(message) is transient


class _Clients:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def get(self, service_name: str, region: str):
        return self

    def ec2(self, region: str):
        return self

    def __getattr__(self, name: str):
        def call(**_):
            raise self.exc

        return call


PARSED = {
    "event_id": "6f0a2c4e",
    "account_id": "123456789012",
    "region": "eu-west-1",
    "resource_type": "AWS::EC2::VPCEndpoint",
    "resource_id": "vpce-0123456789abcdef0",
    "arn": None,
}


def test_an_oversized_notification_whose_describe_is_throttled_says_so(monkeypatch):
    """Before, the describe's failure found no dependent task: "ignored", and NET-09/NET-10
    stood stale until the next sweep. The failure is returned, named by the API call, so
    that the event is retried once the tasks the resource's own id finds are audited."""
    monkeypatch.setattr(
        service, "scope_clients", lambda rt, a, r: _Clients(_error("RequestLimitExceeded", "x"))
    )
    related, failure = service._oversized_related(None, PARSED)
    assert related == [] and failure == "DescribeVpcEndpoints: RequestLimitExceeded: try later"
    assert transient_failure(failure)


@pytest.mark.parametrize("code", ["InvalidVpcEndpointId.NotFound", "UnauthorizedOperation"])
def test_an_oversized_notification_of_a_resource_gone_or_unreadable_names_nothing_more(monkeypatch, code):
    monkeypatch.setattr(service, "scope_clients", lambda rt, a, r: _Clients(_error(code, "x")))
    assert service._oversized_related(None, PARSED) == ([], None)

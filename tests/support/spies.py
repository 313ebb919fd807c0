"""Stand-ins around the handlers: a Powertools-like logger and metrics recorder, a log of
every AWS call a session's clients make, a Lambda context and an SQS record."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable

from support.env import ACCOUNT, REGION


class Spy:
    """A Powertools-like logger and metrics recorder (every line kept)."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str, dict]] = []
        self.metrics: Counter[str] = Counter()

    def _log(self, level, message, *args, extra=None, **_):
        self.logs.append((level, message % args if args else message, dict(extra or {})))

    def debug(self, *a, **k):
        self._log("debug", *a, **k)

    def info(self, *a, **k):
        self._log("info", *a, **k)

    def warning(self, *a, **k):
        self._log("warning", *a, **k)

    def error(self, *a, **k):
        self._log("error", *a, **k)

    def exception(self, *a, **k):
        self._log("error", *a, **k)

    def add_metric(self, name, unit, value, **_):
        assert unit == "Count"
        self.metrics[name] += value

    def lines(self, level: str | None = None) -> list[tuple[str, str, dict]]:
        return [line for line in self.logs if level is None or line[0] == level]


class CallLog:
    """Calls (botocore's ``before-parameter-build``: once per call, not per retry; with the
    API parameters, where ``before-call`` would give the serialised request) and attempts
    (``before-send``: once per HTTP attempt, retries included) of a session's clients."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.attempts: Counter[str] = Counter()

    def on_call(self, params=None, model=None, **_):
        # the signing name is the IAM service prefix (dynamodb, ec2, ecs, securityhub, sqs)
        self.calls.append((model.service_model.signing_name, model.name, copy.deepcopy(params or {})))

    def on_send(self, event_name: str = "", **_):
        _, _, rest = event_name.partition(".")
        self.attempts[rest] += 1

    def attach(self, session) -> None:
        session.events.register("before-parameter-build", self.on_call)
        session.events.register("before-send", self.on_send)

    def operations(self, services: Iterable[str] | None = None) -> Counter:
        services = set(services) if services is not None else None
        return Counter(f"{s}.{op}" for s, op, _ in self.calls if services is None or s in services)

    def reset(self) -> None:
        self.calls.clear()
        self.attempts.clear()


class LambdaContext:
    function_name = "fargate-audit-test"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fargate-audit-test"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sqs_record(message_id: str, body: str, receive_count: int = 1) -> dict:
    """An SQS record as Lambda's event source mapping delivers it (the sweep queue's)."""
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1795176001204"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:fargate-audit-SweepQueue",
        "awsRegion": REGION,
    }


def control_message() -> dict:
    """The CONTROL_MESSAGE CloudWatch Logs sends when a subscription filter is created
    (documented shape), as a Lambda event: the log functions ignore it."""
    from fargate_audit.app import dnslogs

    return dnslogs.encode_subscription(
        {
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "logEvents": [],
        }
    )

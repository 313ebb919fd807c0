"""The emulated account's ids and the Lambda functions' environment, in one place.

``ENV`` is what template.yaml gives every function (table, rule parameters, publishing,
cache TTL, Powertools) plus moto's credentials and region; ``UNSET`` names what must not
leak in from the shell (a profile, an endpoint, the queues a world sets itself).
"""

from __future__ import annotations

REGION, ACCOUNT = "eu-west-1", "123456789012"
TABLE = "fargate-audit-posture"  # the template's table name (fargate_audit.cli.template.DEFAULT_TABLE_NAME)
WORLD4 = "0.0.0.0/0"

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "TABLE_NAME": TABLE,
    "RULE_PARAMS": "{}",
    "PUBLISH_FINDINGS": "true",
    "VPC_CACHE_TTL_SECONDS": "300",
    "POWERTOOLS_SERVICE_NAME": "fargate-audit",
    "POWERTOOLS_METRICS_NAMESPACE": "FargateAudit",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "SWEEP_QUEUE_URL", "EVENTS_DLQ_URL")


def apply(monkeypatch, env: dict | None = None, unset: tuple[str, ...] = UNSET) -> None:
    """``ENV | env`` set and ``unset`` removed, through ``monkeypatch`` (undone after)."""
    for name, value in (ENV | (env or {})).items():
        monkeypatch.setenv(name, value)
    for name in unset:
        monkeypatch.delenv(name, raising=False)

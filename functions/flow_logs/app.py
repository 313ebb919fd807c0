"""Lambda entry point for VPC flow logs (CloudWatch Logs subscription filter).

Thin on purpose: logging and metrics set-up, then one call into the layer's
fargate_audit.app.lambda_handlers, which owns decoding, attribution by ENI and aggregation.
"""

from aws_lambda_powertools import Logger, Metrics
from fargate_audit.app import lambda_handlers

logger = Logger()  # service name and level from POWERTOOLS_SERVICE_NAME / LOG_LEVEL
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE (EMF in the logs)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    return lambda_handlers.flow_logs(event, context, logger=logger, metrics=metrics)

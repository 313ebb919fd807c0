"""``python -m fargate_audit``: the same command line as the ``fargate-audit`` script."""

from fargate_audit.cli.commands import run

run()

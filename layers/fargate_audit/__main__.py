"""``python -m fargate_audit``: the same command line as the ``fargate-audit`` script."""

from .cli import run

run()

"""``python -m fargate_audit``: the same command line as the ``fargate-audit`` script."""

import sys

from .cli import main

sys.exit(main())

"""fargate-audit: network-posture auditor for ECS tasks on Fargate.

Modules (I/O at the edges, pure middle):
  collect  all AWS reads (batched, paginated)          -> raw task bundles
  posture  raw bundles -> JSON-serialisable postures    [pure]
  netalgebra  port intervals, world CIDRs, NACL walks   [pure]
  rules / engine / params  catalog + evaluation         [pure]; the catalog is catalog/
  report / asff / table  output builders                [pure]
  scan     the one pipeline: collect -> posture -> engine
  cli, views  the command line and its table views
  local    emulator estates, the demo, local invoke (the [local] extra; not in the layer)
"""

__version__ = "0.1.0"

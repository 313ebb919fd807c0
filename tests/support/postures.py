"""Postures for the store and publisher tests: the documented example (tests/fixtures/
base_posture.json) and the one change they all make to it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from support.env import ACCOUNT, REGION

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE_POSTURE = json.loads((FIXTURES / "base_posture.json").read_text())


def task_posture(task_arn: str, cluster: str, group: str, connectivity_at: str, **network) -> dict:
    """BASE_POSTURE as task ``task_arn`` of workload ``cluster``/``group`` (``service:NAME``
    or ``family:NAME``) in the test account and region, its ENI attached at
    ``connectivity_at``; ``network`` updates its network part (a copy)."""
    posture = copy.deepcopy(BASE_POSTURE)
    posture.update(
        task_arn=task_arn,
        cluster_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}",
        cluster_name=cluster,
        account_id=ACCOUNT,
        region=REGION,
        group=group,
        workload=f"{cluster}/{group}",
        service_name=group.split(":", 1)[1],
        connectivity_at=connectivity_at,
    )
    posture["network"].update(network)
    return posture


def open_port_22(posture: dict) -> dict:
    """``posture`` with TCP 22 open to the world beside 443 (a copy)."""
    changed = copy.deepcopy(posture)
    ports = [{"protocol": "tcp", "from": 22, "to": 22}, {"protocol": "tcp", "from": 443, "to": 443}]
    changed["network"]["world_ingress"]["ipv4"] = ports
    changed["network"]["world_ingress_rules"][0]["ports"] = ports
    return changed

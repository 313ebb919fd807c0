"""Postures for the store and publisher tests: the documented example (tests/fixtures/
base_posture.json) and the one change they all make to it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE_POSTURE = json.loads((FIXTURES / "base_posture.json").read_text())


def open_port_22(posture: dict) -> dict:
    """``posture`` with TCP 22 open to the world beside 443 (a copy)."""
    changed = copy.deepcopy(posture)
    ports = [{"protocol": "tcp", "from": 22, "to": 22}, {"protocol": "tcp", "from": 443, "to": 443}]
    changed["network"]["world_ingress"]["ipv4"] = ports
    changed["network"]["world_ingress_rules"][0]["ports"] = ports
    return changed

"""End to end: the demo's egress-discovery part (demo.run_dns_story): Resolver query logs
of the demo estate through the dns_logs handler, the `discovered` view, EGR-01 both FAILED
and PASSED, a redelivery counted once, and allow-list exports written and valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fargate_audit.app import lambda_handlers
from fargate_audit.cli import egress
from fargate_audit.local import demo, estate
from support.demo import tell


@pytest.fixture(scope="module")
def story():
    with pytest.MonkeyPatch.context() as patch:
        return tell(demo.run_dns_story, patch)


def test_the_batch_is_attributed_to_the_tasks_including_their_image_pulls(story):
    text = story["text"]
    match = re.search(r"batch of (\d+) records: (\d+) attributed .*?, (\d+) unattributed", text, re.S)
    total, attributed, unattributed = map(int, match.groups())
    assert total == attributed + unattributed and unattributed == 1  # the EC2 instance
    assert "between connectivityAt and startedAt" in text


def test_a_redelivered_batch_changes_nothing(story):
    assert "the same batch delivered again: duplicate" in story["text"]
    assert "nothing counted twice" in story["text"]


def test_the_discovered_view_lists_each_workloads_sites_with_approval(story):
    text = story["text"]
    assert "Discovered 3 visited sites from prod-web/service:edge-proxy (3 not approved)" in text
    assert "Discovered 7 visited sites from prod-web/service:checkout-api\n" in text
    assert re.search(r"registry-1\.docker\.io\s+DNS A/AAAA \(HTTPS\?\)\s+\S+ \S+\s+\S+ \S+\s+4\s+NO", text)
    assert re.search(r"telemetry\.insights-vendor\.example\s+DNS A \(HTTPS\?\).*\s+NO\n", text)
    assert "from unattributed sources" in text and "ntp.ubuntu.com" in text
    assert "the protocol column is a hint" in text


def test_egr_01_is_both_failed_and_passed(story):
    section = story["text"][story["text"].index("EGR-01 findings") :]
    assert "prod-web/service:edge-proxy: FAILED" in section and "registry-1.docker.io" in section
    assert "batch/family:report-worker: FAILED" in section
    assert "telemetry.insights-vendor.example" in section
    assert "prod-web/service:checkout-api: PASSED" in section


def test_the_exports_are_written_and_valid(story):
    nfw = Path(re.search(r"(\S+checkout-api\.network-firewall\.json)", story["text"]).group(1))
    dnsfw = Path(re.search(r"(\S+checkout-api\.dns-firewall\.txt)", story["text"]).group(1))
    request = json.loads(nfw.read_text())
    egress.validate_rule_group_request(request)
    source = request["RuleGroup"]["RulesSource"]["RulesSourceList"]
    assert source["GeneratedRulesType"] == "ALLOWLIST" and source["TargetTypes"] == ["TLS_SNI", "HTTP_HOST"]
    assert "dynamodb.eu-west-1.amazonaws.com" in source["Targets"]
    lines = dnsfw.read_text().splitlines()
    assert lines == sorted(source["Targets"]) and "registry-1.docker.io" not in lines
    assert lines[0] in story["text"]


def test_the_story_leaves_no_environment_runtime_or_frozen_task_state_behind(story):
    from moto.moto_api import state_manager

    assert story["after"] == story["before"]
    assert lambda_handlers._RUNTIME is None
    assert state_manager.get_transition(estate.TASK_STATE_MODEL) != estate.FROZEN


def test_the_flow_log_part_names_addresses_with_ports_and_shows_a_rejected_attempt(story):
    text = story["text"][story["text"].index("Egress with ports and bytes") :]
    match = re.search(
        r"one batch of (\d+) records: (\d+) of internet egress \((\d+) rejected\), (\d+) to private", text
    )
    total, egress_records, rejected, private = map(int, match.groups())
    assert total == egress_records + private and rejected >= 1 and private >= 1
    edge = text[text.index("Internet egress of prod-web/service:edge-proxy") :]
    # the registry's address is named by the DNS answer seen before the flow
    assert re.search(r"\n\s+registry-1\.docker\.io\s+tcp\s+443\s+ACCEPT\s+\d+\s+\d+\s.*\sNO\n", edge)
    assert re.search(r"\n\s+198\.51\.100\.77\s+tcp\s+22\s+REJECT\s", edge)
    worker = text[text.index("Internet egress of batch/family:report-worker") :]
    assert re.search(r"\n\s+192\.0\.2\.66\s+tcp\s+8443\s+ACCEPT\s.*\s-\n", worker)  # nobody resolved it
    assert re.search(r"\n\s+telemetry\.insights-vendor\.example\s+tcp\s+443\s+ACCEPT\s", worker)


def test_egr_03_fails_for_the_direct_to_ip_connection_only(story):
    section = story["text"][story["text"].index("EGR-03 findings") :]
    assert re.search(r"batch/family:report-worker: FAILED \(192\.0\.2\.66 tcp/8443 \(\d+ bytes\)\)", section)
    assert "prod-web/service:edge-proxy: PASSED" in section  # its rejected SSH attempt sent nothing
    assert "prod-web/service:checkout-api: PASSED" in section  # its database is in the VPC

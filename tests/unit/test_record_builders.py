"""The recorder's pure part (record.py): keys, dependencies, the diff of two audits and the
write plans (ordering rules), with no table."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fargate_audit.findings.state import finding_state, finding_state_item
from fargate_audit.stores import keys, record
from fargate_audit.stores import table as dynamo

BASE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "base_posture.json").read_text())
TASK = BASE["task_arn"]
NOW = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
WL = "WL#123456789012#eu-west-1#prod#service:web"
PASSING = {"NET-01": "PASSED", "NET-03": "PASSED", "NET-10": "PASSED"}


def posture(**network) -> dict:
    p = copy.deepcopy(BASE)
    p["network"].update(network)
    return p


def ecs_event(version: int, event_id: str = "ev-1") -> dict:
    return {
        "type": "ecs-event",
        "id": event_id,
        "task_version": version,
        "event_time": "2026-03-04T05:06:00Z",
    }


SWEEP = {"type": "sweep", "id": "sweep-1", "task_version": None, "event_time": None}


def stored_after(plan: record.WritePlan) -> dict:
    """The decoded LATEST as the table would return it after the plan was written."""
    return record.decode_latest(dynamo.from_attributes(dynamo.to_attributes(plan.latest)))


# --------------------------------------------------------------------------- keys


def test_workload_key_joins_account_region_cluster_and_group():
    assert keys.workload_key(BASE) == WL


def test_workload_key_from_a_stopped_event_matches_the_posture_key():
    assert keys.workload_key_from_cluster_arn(BASE["cluster_arn"], BASE["group"]) == WL


def test_workload_key_refuses_a_posture_without_group():
    with pytest.raises(ValueError, match="group"):
        keys.workload_key({**BASE, "group": None})


def test_finding_ids_map_back_to_their_workload_key():
    finding_id = "fargate-audit/123456789012/eu-west-1/prod/service:web/NET-03"
    assert keys.workload_key_of_finding(finding_id) == WL
    assert finding_id.startswith(keys.finding_id_prefix(WL))
    assert not "fargate-audit/123456789012/eu-west-1/prod/service:web2/NET-03".startswith(
        keys.finding_id_prefix(WL)
    )


@pytest.mark.parametrize("group", ["nightly-etl", "team/etl", "a#b", "100%/x#y", "family:etl/2"])
def test_a_custom_group_round_trips_through_keys_and_finding_ids_without_splitting_them(group):
    """A custom task group (RunTask `group`, up to 255 of any characters) keeps five key
    parts and six Id parts: "/", "#" and "%" are written %2F, %23, %25."""
    from fargate_audit.findings.asff import finding_id

    key = keys.workload_key_for("123456789012", "eu-west-1", "batch", group)
    fid = finding_id("123456789012", "eu-west-1", "batch", group, "NET-03")

    assert key.count("#") == 4 and fid.count("/") == 5
    assert keys.workload_parts(key) == ("123456789012", "eu-west-1", "batch", group)
    assert keys.workload_key_of_finding(fid) == key
    assert fid.startswith(keys.finding_id_prefix(key))


def test_a_group_that_begins_like_another_shares_no_finding_id_prefix_with_it():
    team = keys.workload_key_for("123456789012", "eu-west-1", "batch", "team")
    team_etl = keys.workload_key_for("123456789012", "eu-west-1", "batch", "team/etl")

    from fargate_audit.findings.asff import finding_id

    assert not finding_id("123456789012", "eu-west-1", "batch", "team/etl", "NET-03").startswith(
        keys.finding_id_prefix(team)
    )
    assert keys.finding_id_prefix(team) != keys.finding_id_prefix(team_etl)


def test_a_finding_id_stays_within_asffs_512_characters_for_the_longest_names():
    """ECS allows 255 characters in a cluster name and in a group (a service name, or a
    custom group whose "/" are written %2F): the group is cut and ends in its hash."""
    from fargate_audit.findings.asff import finding_id

    cluster = "c" * 255
    groups = ["service:" + "s" * 247, "team/" * 51, "family:" + "f" * 248]
    ids = {g: finding_id("123456789012", "ap-southeast-3", cluster, g, "NET-03") for g in groups}

    assert all(len(i) <= 512 for i in ids.values()) and len(set(ids.values())) == 3
    for group, fid in ids.items():
        key = keys.workload_key_for("123456789012", "ap-southeast-3", cluster, group)
        assert keys.workload_key_of_finding(fid) == key and fid.startswith(keys.finding_id_prefix(key))
    assert finding_id("123456789012", "eu-west-1", "prod", "service:web", "NET-03").endswith(
        "/service:web/NET-03"
    )


def test_service_and_family_groups_are_written_as_they_are():
    assert keys.workload_key_for("123456789012", "eu-west-1", "prod", "service:web") == WL


def test_history_keys_sort_by_observation_time_then_rev():
    early, late = dynamo.iso(NOW), dynamo.iso(NOW + timedelta(microseconds=1))
    keys = [record.history_sk(late, 2), record.history_sk(early, 10), record.history_sk(early, 9)]
    assert sorted(keys) == [
        record.history_sk(early, 9),
        record.history_sk(early, 10),
        record.history_sk(late, 2),
    ]


# --------------------------------------------------------------------------- dependencies


def test_dependencies_list_every_network_resource_the_posture_names_sorted():
    assert record.dependencies(BASE) == [
        "acl-0b1c2d3e4f5061728",
        "eni-0a1b2c3d4e5f60718",
        "fl-0123456789abcdef0",
        "nat-0f1e2d3c4b5a69788",
        "rtb-0a9b8c7d6e5f40312",
        "sg-0123456789abcdef0",
        "subnet-0c1d2e3f405162738",
        "vpc-0e1f2a3b4c5d6e7f8",
        "vpce-0a1a2a3a4a5a6a7a8",
        "vpce-0b1b2b3b4b5b6b7b8",
        "vpce-0c1c2c3c4c5c6c7c8",
        "vpce-0d4c3b2a190817263",
        "vpce-0e1e2e3e4e5e6e7e8",
    ]


def test_dependencies_include_igw_and_tgw_egress_targets_once():
    egress = {
        "ipv4": {"path": "transit-gateway", "targets": ["tgw-1"]},
        "ipv6": {"path": "internet-gateway", "targets": ["igw-1"]},
    }
    deps = record.dependencies(posture(egress=egress))
    assert {"tgw-1", "igw-1"} <= set(deps)
    assert "nat-0f1e2d3c4b5a69788" not in deps
    assert len(deps) == len(set(deps))


def test_dependencies_of_a_posture_without_network_ids_are_empty():
    empty = posture(eni_id=None, subnet_id=None, vpc_id=None, route_table_id=None, security_groups=[])
    empty["network"]["nacl"] = {"id": None, "inbound_world_allowed": {"ipv4": [], "ipv6": []}}
    empty["network"]["egress"] = {
        "ipv4": {"path": None, "targets": []},
        "ipv6": {"path": None, "targets": []},
    }
    empty["network"]["vpc_endpoints"] = []
    empty["network"]["flow_logs"] = []
    assert record.dependencies(empty) == []


# --------------------------------------------------------------------------- diff


def test_first_audit_is_a_change_from_nothing():
    change = record.diff(None, None, BASE, PASSING)
    assert change["rules"] == {rule: [None, "PASSED"] for rule in PASSING}
    facts = {f["path"]: f for f in change["facts"]}
    assert all(f["before"] is None for f in change["facts"])
    assert facts["network.security_groups"]["after"] == ["sg-0123456789abcdef0"]
    assert facts["platform_version"]["after"] == "1.4.0"
    assert "network.public_ipv4" not in facts  # None before and after: no change


def test_a_rule_status_change_lists_only_the_changed_rule():
    after = {**PASSING, "NET-03": "FAILED"}
    change = record.diff(BASE, PASSING, BASE, after)
    assert change == {"rules": {"NET-03": ["PASSED", "FAILED"]}, "facts": []}


def test_a_rule_that_disappears_goes_to_none():
    change = record.diff(BASE, PASSING, BASE, {"NET-01": "PASSED", "NET-03": "PASSED"})
    assert change["rules"] == {"NET-10": ["PASSED", None]}


def test_a_fact_change_names_the_path_with_before_and_after():
    opened = [{"protocol": "tcp", "from": 22, "to": 22}, {"protocol": "tcp", "from": 443, "to": 443}]
    after = posture(world_ingress={"ipv4": opened, "ipv6": []}, public_ipv4="203.0.113.7")
    change = record.diff(BASE, PASSING, after, PASSING)
    assert change["rules"] == {}
    assert change["facts"] == [
        {"path": "network.public_ipv4", "before": None, "after": "203.0.113.7"},
        {
            "path": "network.world_ingress",
            "before": BASE["network"]["world_ingress"],
            "after": {"ipv4": opened, "ipv6": []},
        },
    ]


def test_container_image_and_registry_changes_are_facts():
    after = copy.deepcopy(BASE)
    after["containers"][0].update(image="nginx:1.27", registry="docker.io")
    paths = [f["path"] for f in record.diff(BASE, {}, after, {})["facts"]]
    assert paths == ["containers.images", "containers.registries"]


def test_identical_audits_have_no_diff():
    assert record.diff(BASE, PASSING, copy.deepcopy(BASE), dict(PASSING)) == {"rules": {}, "facts": []}


def test_diff_takes_engine_result_lists_as_well_as_status_maps():
    listed = [{"task_arn": TASK, "rule_id": rule, "status": status} for rule, status in PASSING.items()]
    assert record.diff(BASE, listed, BASE, PASSING) == {"rules": {}, "facts": []}


# --------------------------------------------------------------------------- ordering (stale_reason)


def test_an_older_task_version_is_stale():
    stored = {
        "lifecycle": "RUNNING",
        "task_version": 5,
        "observed_at": dynamo.iso(NOW),
        "cause": ecs_event(5),
    }
    reason = record.stale_reason(stored, ecs_event(3, "ev-3"), dynamo.iso(NOW + timedelta(minutes=1)))
    assert reason and "older" in reason


def test_a_newer_task_version_wins_even_when_observed_earlier():
    stored = {
        "lifecycle": "RUNNING",
        "task_version": 3,
        "observed_at": dynamo.iso(NOW),
        "cause": ecs_event(3),
    }
    assert record.stale_reason(stored, ecs_event(4, "ev-4"), dynamo.iso(NOW - timedelta(seconds=1))) is None


def test_equal_versions_keep_the_newer_observation():
    stored = {"lifecycle": "RUNNING", "task_version": 3, "observed_at": dynamo.iso(NOW), "cause": SWEEP}
    config = {"type": "config-event", "id": "cfg-1", "task_version": 3}
    assert record.stale_reason(stored, config, dynamo.iso(NOW - timedelta(seconds=1)))
    assert record.stale_reason(stored, config, dynamo.iso(NOW + timedelta(seconds=1))) is None


def test_a_task_event_of_a_version_already_audited_is_stale_whenever_it_is_observed():
    """A sweep or Config re-audit recorded version 3 from fresh facts; the RUNNING event of
    version 3 arriving after it (late, or delivered again) tells nothing new of the task and
    would audit it from its container's older cache, moving the posture back."""
    for previous in (SWEEP, {"type": "config-event", "id": "cfg-1", "task_version": 3}, ecs_event(3, "ev-0")):
        stored = {
            "lifecycle": "RUNNING",
            "task_version": 3,
            "observed_at": dynamo.iso(NOW),
            "cause": previous,
        }
        reason = record.stale_reason(stored, ecs_event(3), dynamo.iso(NOW + timedelta(minutes=5)))
        assert reason and "already audited" in reason


def test_the_same_ecs_event_delivered_twice_is_stale():
    stored = {
        "lifecycle": "RUNNING",
        "task_version": 3,
        "observed_at": dynamo.iso(NOW),
        "cause": ecs_event(3),
    }
    reason = record.stale_reason(stored, ecs_event(3), dynamo.iso(NOW + timedelta(minutes=5)))
    assert reason and "duplicate" in reason


def test_without_versions_the_newer_observation_wins():
    stored = {
        "lifecycle": "RUNNING",
        "task_version": 3,
        "observed_at": dynamo.iso(NOW),
        "cause": ecs_event(3),
    }
    assert record.stale_reason(stored, SWEEP, dynamo.iso(NOW - timedelta(seconds=1)))
    assert record.stale_reason(stored, SWEEP, dynamo.iso(NOW + timedelta(seconds=1))) is None


def test_a_stopped_task_is_never_revived():
    stored = {
        "lifecycle": "STOPPED",
        "task_version": 3,
        "observed_at": dynamo.iso(NOW),
        "cause": ecs_event(3),
    }
    assert record.stale_reason(stored, ecs_event(9, "ev-9"), dynamo.iso(NOW + timedelta(hours=1)))


# --------------------------------------------------------------------------- plans


def test_first_audit_plan_writes_latest_history_and_every_dependency():
    plan = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    assert plan.status == "created" and plan.expected_rev is None
    assert plan.latest["gsi1pk"] == WL and plan.latest["gsi1sk"] == TASK
    assert plan.latest["rev"] == 1 and plan.latest["task_version"] == 2
    assert json.loads(plan.history["rules"]) == {rule: [None, "PASSED"] for rule in PASSING}
    assert [i["resource_id"] for i in plan.dep_puts] == record.dependencies(BASE)
    assert len(plan.writes) == 4 + len(record.dependencies(BASE))  # LATEST, history, IP and ENI index


def test_unchanged_plan_writes_only_latest_with_a_later_observed_at():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    later = NOW + timedelta(hours=6)
    plan = record.plan_audit(stored_after(first), copy.deepcopy(BASE), PASSING, SWEEP, later)
    assert plan.status == "unchanged"
    assert [kind for kind, _ in plan.writes] == ["put"]
    assert plan.latest["observed_at"] == dynamo.iso(later)
    assert plan.latest["task_version"] == 2  # a sweep without version keeps the event's
    assert plan.expected_rev == 1 and plan.latest["rev"] == 2


def test_changed_plan_moves_dependencies_and_writes_history():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    swapped = posture(security_groups=[{"id": "sg-new", "name": "web-v2"}])
    plan = record.plan_audit(stored_after(first), swapped, PASSING, ecs_event(3, "ev-3"), NOW + timedelta(1))
    assert plan.status == "changed"
    assert [i["resource_id"] for i in plan.dep_puts] == ["sg-new"]
    assert plan.dep_deletes == [{"pk": "DEP#sg-0123456789abcdef0", "sk": f"TASK#{TASK}"}]
    assert json.loads(plan.history["facts"])[0]["path"] == "network.security_groups"


def test_stop_plan_ends_every_rule_and_drops_every_dependency():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    plan = record.plan_stop(stored_after(first), TASK, 7, "2026-03-04T06:00:00Z", ecs_event(7, "ev-7"), NOW)
    assert plan.latest["lifecycle"] == "STOPPED"
    assert "gsi1pk" not in plan.latest and "gsi1sk" not in plan.latest
    assert plan.latest["ttl"] == dynamo.ttl_after(NOW, 30)
    assert json.loads(plan.history["rules"]) == {rule: ["PASSED", None] for rule in PASSING}
    assert len(plan.dep_deletes) == len(record.dependencies(BASE))


def test_stop_before_any_audit_plans_a_tombstone_under_the_given_workload():
    plan = record.plan_stop(None, TASK, 4, None, ecs_event(4), NOW, key=WL)
    assert plan.latest["lifecycle"] == "STOPPED" and plan.latest["workload"] == WL
    assert plan.history is None and plan.writes == [("put", plan.latest)]


def test_results_of_another_task_are_refused():
    other = [{"task_arn": TASK + "x", "rule_id": "NET-01", "status": "PASSED"}]
    with pytest.raises(ValueError, match="not"):
        record.plan_audit(None, BASE, other, ecs_event(1), NOW)


def test_an_unknown_cause_type_is_refused():
    with pytest.raises(ValueError, match="cause type"):
        record.plan_audit(None, BASE, PASSING, {"type": "guess", "id": "x"}, NOW)


# --------------------------------------------------------------------------- codec


def test_items_round_trip_through_dynamodb_attribute_values_without_floats():
    plan = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    encoded = dynamo.to_attributes(plan.latest)
    assert encoded["task_version"] == {"N": "2"}
    assert all(set(value) <= {"S", "N", "BOOL"} for value in encoded.values())
    assert dynamo.from_attributes(encoded) == {k: v for k, v in plan.latest.items() if v is not None}
    with pytest.raises(TypeError):
        dynamo.to_attributes({"x": 1.5})


def test_archived_finding_state_leaves_the_active_index_and_expires():
    finding = {
        "Id": "fargate-audit/123456789012/eu-west-1/prod/service:web/NET-03",
        "UpdatedAt": "2026-03-04T05:06:07.891Z",
        "RecordState": "ARCHIVED",
        "Compliance": {"Status": "PASSED"},
        "ProductFields": {"fargate-audit/RuleId": "NET-03", "fargate-audit/Workload": "prod/service:web"},
    }
    item = finding_state_item(WL, finding_state(finding))
    assert item["gsi1pk"] == "FINDINGS"
    assert item["gsi1sk"] == "ARCHIVED#" + finding["Id"]
    assert item["ttl"] == dynamo.ttl_after(datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC), 90)
    active = finding_state_item(WL, finding_state({**finding, "RecordState": "ACTIVE"}))
    assert active["gsi1sk"].startswith("ACTIVE#") and active["ttl"] is None


def test_a_newer_version_observed_a_moment_earlier_keeps_history_in_write_order():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(3), NOW)
    earlier = NOW - timedelta(milliseconds=300)
    plan = record.plan_audit(
        stored_after(first), BASE, {**PASSING, "NET-03": "FAILED"}, ecs_event(4, "e4"), earlier
    )
    assert plan.status == "changed"
    assert plan.latest["observed_at"] == dynamo.iso(NOW)
    assert plan.history["sk"] > first.history["sk"]


# --------------------------------------------------------------------------- IP index


def test_the_first_audit_opens_the_ip_range_at_connectivity_to_the_second():
    plan = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    item = plan.ip_index
    assert (item["pk"], item["sk"]) == (
        "IP#vpc-0e1f2a3b4c5d6e7f8#10.20.12.34",
        f"2025-06-02T08:14:03Z#{TASK}",  # connectivity_at, not started_at; floored to the second
    )
    assert item["from"] == "2025-06-02T08:14:03Z" and item["to"] is None and item["workload"] == WL
    assert "ttl" not in dynamo.to_attributes(item)  # kept while the task runs
    assert stored_after(plan)["ip_index"] == {"pk": item["pk"], "sk": item["sk"]}


def test_without_connectivity_the_range_starts_at_the_first_observation():
    plan = record.plan_audit(None, dict(copy.deepcopy(BASE), connectivity_at=None), PASSING, SWEEP, NOW)
    assert plan.ip_index["from"] == "2026-03-04T05:06:07Z"


def test_later_audits_open_no_new_range_and_keep_the_key():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    unchanged = record.plan_audit(stored_after(first), BASE, PASSING, SWEEP, NOW + timedelta(hours=1))
    changed = record.plan_audit(
        stored_after(first), posture(security_groups=[]), PASSING, ecs_event(3, "e3"), NOW + timedelta(1)
    )
    for plan in (unchanged, changed):
        assert plan.ip_index is None
        assert stored_after(plan)["ip_index"] == stored_after(first)["ip_index"]


def test_a_task_recorded_before_the_index_existed_gets_its_range_on_its_next_audit():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    legacy = dict(stored_after(first), ip_index=None)
    plan = record.plan_audit(legacy, BASE, PASSING, SWEEP, NOW + timedelta(hours=1))
    assert plan.status == "unchanged" and plan.ip_index is not None
    assert [kind for kind, _ in plan.writes] == ["put", "put"]  # LATEST and the range


def test_no_range_without_an_address_or_a_vpc():
    assert record.plan_audit(None, posture(private_ip=None), PASSING, SWEEP, NOW).ip_index is None
    assert record.plan_audit(None, posture(vpc_id=None), PASSING, SWEEP, NOW).ip_index is None


def test_stopping_closes_the_range_at_stopped_at_and_lets_it_expire():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    plan = record.plan_stop(
        stored_after(first), TASK, 7, "2026-03-04T06:00:00.250Z", ecs_event(7, "ev-7"), NOW
    )
    closed = plan.ip_index
    assert (closed["pk"], closed["sk"]) == (first.ip_index["pk"], first.ip_index["sk"])
    assert (closed["from"], closed["to"]) == ("2025-06-02T08:14:03Z", "2026-03-04T06:00:00Z")
    assert closed["ttl"] == dynamo.ttl_after(NOW, 30)
    swept = record.plan_stop(stored_after(first), TASK, None, None, SWEEP, NOW)  # no stoppedAt
    assert swept.ip_index["to"] == "2026-03-04T05:06:07Z"


# --------------------------------------------------------------------------- ENI index


def test_the_first_audit_opens_the_eni_range_with_the_enis_vpc_and_addresses():
    plan = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    item, eni = plan.eni_index, BASE["network"]["eni_id"]
    assert (item["pk"], item["sk"]) == (f"ENI#{eni}", f"2025-06-02T08:14:03Z#{TASK}")
    assert item["to"] is None and item["workload"] == WL
    assert (item["vpc_id"], item["ip"]) == ("vpc-0e1f2a3b4c5d6e7f8", "10.20.12.34")
    assert "ttl" not in dynamo.to_attributes(item)
    assert stored_after(plan)["eni_index"] == {"pk": item["pk"], "sk": item["sk"]}
    assert ("put", item) in plan.writes
    decoded = record.decode_eni_range(item)
    assert decoded["eni_id"] == eni and decoded["ipv6"] == sorted(BASE["network"]["ipv6_addresses"])


def test_later_audits_keep_the_eni_key_and_a_task_recorded_before_the_eni_index_gets_one():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    later = record.plan_audit(stored_after(first), BASE, PASSING, SWEEP, NOW + timedelta(hours=1))
    assert later.eni_index is None and stored_after(later)["eni_index"] == stored_after(first)["eni_index"]
    legacy = dict(stored_after(first), eni_index=None)
    plan = record.plan_audit(legacy, BASE, PASSING, SWEEP, NOW + timedelta(hours=1))
    assert plan.status == "unchanged" and plan.eni_index["pk"] == first.eni_index["pk"]
    assert record.plan_audit(None, posture(eni_id=None), PASSING, SWEEP, NOW).eni_index is None


def test_stopping_closes_the_eni_range_at_stopped_at():
    first = record.plan_audit(None, BASE, PASSING, ecs_event(2), NOW)
    plan = record.plan_stop(
        stored_after(first), TASK, 7, "2026-03-04T06:00:00.250Z", ecs_event(7, "ev-7"), NOW
    )
    closed = plan.eni_index
    assert (closed["pk"], closed["sk"]) == (first.eni_index["pk"], first.eni_index["sk"])
    assert (closed["from"], closed["to"]) == ("2025-06-02T08:14:03Z", "2026-03-04T06:00:00Z")
    assert closed["ttl"] == dynamo.ttl_after(NOW, 30)
    assert stored_after(plan)["eni_index"] == stored_after(first)["eni_index"]

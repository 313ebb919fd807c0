"""The pure part of the flow_logs function (app/flowlogs.py): the format, records,
attribution by ENI and time, the filter and the aggregation."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fargate_audit.app import flowlogs
from fargate_audit.app.events import EventError
from fargate_audit.app.lambda_handlers import _flow_log_settings
from fargate_audit.core.errors import ConfigError

FIELDS = flowlogs.parse_format(flowlogs.DOCUMENTED_FORMAT)
ENI = "eni-0a1b2c3d4e5f60718"
OWNER = {"from": "2026-01-01T00:00:00Z", "to": None, "workload_key": "WL#1#r#c#service:web",
         "workload": "c/service:web", "ip": "10.0.0.5", "ipv6": []}  # fmt: skip


def line(dst="52.1.2.3", port=443, proto=6, start=1767225600, action="ACCEPT", direction="egress") -> str:
    return (
        f"5 123456789012 {ENI} 10.0.0.5 {dst} 50000 {port} {proto} 3 300 {start} {start + 10} "
        f"{action} OK vpc-1 {direction}"
    )


def test_the_documented_format_has_every_needed_field_and_custom_orders_are_read():
    assert set(flowlogs.NEEDED) <= set(FIELDS) and "flow-direction" in FIELDS
    fields = flowlogs.parse_format(
        "${action} ${start} ${bytes} ${protocol} ${dstport} ${dstaddr} ${srcaddr} ${interface-id}"
    )
    rec = flowlogs.parse_record(f"REJECT 1767225600 99 17 53 8.8.8.8 10.0.0.5 {ENI}", fields)
    assert (rec.action, rec.protocol, rec.dstport, rec.bytes, rec.packets) == ("REJECT", "udp", 53, 99, None)
    assert rec.start == rec.end == "2026-01-01T00:00:00Z" and rec.direction is None


def test_a_format_lacking_needed_fields_is_one_error_naming_them_all():
    with pytest.raises(flowlogs.FlowFormatError, match="lacks the needed fields: dstport, bytes, start$"):
        flowlogs.parse_format("${interface-id} ${srcaddr} ${dstaddr} ${protocol} ${action}")
    with pytest.raises(EventError, match="not a list of"):
        flowlogs.parse_format("interface-id srcaddr")


# --------------------------------------------------------------------------- the format of a log group

CUSTOM = "${action} ${start} ${bytes} ${protocol} ${dstport} ${dstaddr} ${srcaddr} ${interface-id}"


def test_one_flow_log_gives_its_format_and_the_parameter_does_not_override_it():
    choice = flowlogs.choose_format("/vpc/a", [{"FlowLogId": "fl-1", "LogFormat": CUSTOM}], "${x}")
    assert (choice.text, choice.source) == (CUSTOM, "flow log fl-1")
    assert flowlogs.parse_format(choice.text, choice.what)[0] == "action"


def test_a_flow_log_without_a_log_format_is_read_by_the_aws_default_format():
    choice = flowlogs.choose_format("/vpc/a", [{"FlowLogId": "fl-1"}], None)
    assert choice.text == flowlogs.AWS_DEFAULT_FORMAT
    fields = flowlogs.parse_format(choice.text)
    assert len(fields) == 14 and fields[-1] == "log-status" and "flow-direction" not in fields


def test_several_flow_logs_of_one_format_are_one_format_whitespace_aside():
    same = [
        {"FlowLogId": "fl-2", "LogFormat": flowlogs.AWS_DEFAULT_FORMAT.replace(" ", "  ")},
        {"FlowLogId": "fl-1"},  # no LogFormat: the same default format
    ]
    choice = flowlogs.choose_format("/vpc/a", same, None)
    assert (choice.text, choice.source) == (flowlogs.AWS_DEFAULT_FORMAT, "flow logs fl-1, fl-2")
    assert flowlogs.settled(same)


def test_no_flow_log_falls_back_to_the_parameter_else_the_documented_format():
    choice = flowlogs.choose_format("/vpc/a", [], CUSTOM)
    assert (choice.text, choice.what) == (CUSTOM, "FLOW_LOG_FORMAT")
    assert choice.source == "parameter (no flow log found for the log group)"
    default = flowlogs.choose_format("/vpc/a", [], None)
    assert default.text == flowlogs.DOCUMENTED_FORMAT and default.source.startswith("documented format")
    assert not flowlogs.settled([])


def test_flow_logs_of_different_formats_are_one_error_naming_the_group_and_them():
    mixed = [{"FlowLogId": "fl-b", "LogFormat": CUSTOM}, {"FlowLogId": "fl-a"}]
    assert not flowlogs.settled(mixed)
    with pytest.raises(flowlogs.FlowFormatError, match=r"^log group /vpc/a: flow logs fl-a, fl-b deliver"):
        flowlogs.choose_format("/vpc/a", mixed, None)
    chosen = flowlogs.choose_format("/vpc/a", mixed, CUSTOM)  # FLOW_LOG_FORMAT says which to read
    assert chosen.text == CUSTOM and chosen.source.startswith("parameter (flow logs fl-a, fl-b deliver")


def test_a_format_error_names_whose_format_lacks_the_fields():
    choice = flowlogs.choose_format("/vpc/a", [{"FlowLogId": "fl-1", "LogFormat": "${interface-id}"}], None)
    with pytest.raises(flowlogs.FlowFormatError, match=r"^the LogFormat of flow log fl-1 lacks the needed"):
        flowlogs.parse_format(choice.text, choice.what)


def test_protocols_are_named_or_numbered():
    assert [flowlogs.parse_record(line(proto=p), FIELDS).protocol for p in (1, 6, 17, 58, 47)] == [
        "icmp", "tcp", "udp", "58", "47"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "message, reason",
    [
        (line().rsplit(" ", 1)[0], "15 fields where the format has 16"),
        (line(dst="nope"), "dstaddr is not an IP address"),
        (line(port=70000), "dstport is not a number from 0 to 65535"),
        (line(action="DROP"), "action is not ACCEPT or REJECT"),
        (line(direction="sideways"), "flow-direction is not ingress or egress"),
        (line().replace(ENI, "i-0123"), "interface-id is not a network interface id"),
        (None, "message is not a string"),
    ],
)
def test_malformed_records_name_a_reason(message, reason):
    with pytest.raises(ValueError, match=reason):
        flowlogs.parse_record(message, FIELDS)


def test_a_record_without_data_is_no_data_even_in_a_format_without_log_status():
    """AWS writes "-" in every data field of a NODATA/SKIPDATA record: without a
    ${log-status} field such a record was 'malformed' (MalformedFlowRecords, a warning)."""
    fields = flowlogs.parse_format("${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${bytes} "
                                   "${start} ${action}")  # fmt: skip
    skipped = flowlogs.parse_record(f"{ENI} - - - - - 1767225600 -", fields, "e-1")
    assert isinstance(skipped, flowlogs.Skipped)
    with pytest.raises(ValueError, match="action is not ACCEPT or REJECT"):
        flowlogs.parse_record(f"{ENI} 10.0.0.5 52.1.2.3 443 6 300 1767225600 -", fields, "e-2")


def test_aggregation_sums_per_destination_and_keeps_the_time_span():
    records = [flowlogs.parse_record(line(start=1767225600 + i * 60), FIELDS) for i in range(3)]
    out = flowlogs.aggregate(records, {ENI: [OWNER]})
    (agg,) = out.aggregates.values()
    assert (agg.flows, agg.packets, agg.bytes_out) == (3, 9, 900)
    assert (agg.first_seen, agg.last_seen) == ("2026-01-01T00:00:00Z", "2026-01-01T00:02:10Z")
    assert flowlogs.plan_chunks(out, datetime(2026, 1, 2, tzinfo=UTC))[0][1]["Update"]["Key"]["sk"] == {
        "S": "FLOW#52.1.2.3#tcp#443#ACCEPT"
    }


def test_the_vpcs_own_cidrs_are_not_internet():
    records = [flowlogs.parse_record(line(dst="44.0.0.9"), FIELDS)]
    assert flowlogs.aggregate(records, {ENI: [OWNER]}).egress == 1
    networks = flowlogs.private_networks(["44.0.0.0/16"])
    assert flowlogs.aggregate(records, {ENI: [OWNER]}, networks).private == 1


def test_the_function_settings_leave_the_format_unset_by_default_and_check_cidrs():
    text, networks = _flow_log_settings({})
    assert text is None and networks == flowlogs.PRIVATE_NETWORKS
    assert _flow_log_settings({"FLOW_LOG_FORMAT": "  "})[0] is None
    assert _flow_log_settings({"FLOW_LOG_FORMAT": " ${a} ${b} "})[0] == "${a} ${b}"
    assert len(_flow_log_settings({"FLOW_LOG_VPC_CIDRS": "44.0.0.0/16, 2a05:d018::/56"})[1]) == 9
    with pytest.raises(ConfigError, match="FLOW_LOG_VPC_CIDRS: 'ten' is not a CIDR"):
        _flow_log_settings({"FLOW_LOG_VPC_CIDRS": "ten"})


def test_a_snapshot_of_the_attribution_round_trips():
    ranges = {ENI: [dict(OWNER, task_arn="arn:t", vpc_id="vpc-1", vpc_cidrs=["44.0.0.0/16"])]}
    assert flowlogs.decode_snapshot(flowlogs.encode_snapshot(ranges)) == ranges


def test_the_enis_own_vpc_cidrs_are_not_internet_egress():
    """rules.md EGR-03: not in the VPC's CIDRs (a VPC may use public space, e.g. 44.0.0.0/16)."""
    ranges = flowlogs.with_vpc_cidrs(
        {ENI: [dict(OWNER, task_arn="arn:t", vpc_id="vpc-1")]},
        {"vpc-1": ["44.0.0.0/16", "2600:1f18:aa::/56"]},
    )
    assert flowlogs.range_vpcs(ranges) == ["vpc-1"]
    fields = flowlogs.parse_format(flowlogs.DOCUMENTED_FORMAT)
    records = [
        flowlogs.parse_record(message, fields)
        for message in (
            f"5 1 {ENI} 10.0.0.5 44.0.3.9 49152 443 6 2 100 1767225600 1767225660 ACCEPT OK vpc-1 egress",
            f"5 1 {ENI} 10.0.0.5 44.1.3.9 49152 443 6 2 100 1767225600 1767225660 ACCEPT OK vpc-1 egress",
        )
    ]
    out = flowlogs.aggregate(records, ranges)
    assert (out.private, out.egress) == (1, 1)
    assert [key[1] for key in out.aggregates] == ["44.1.3.9"]  # outside the VPC: internet
    bare = flowlogs.aggregate(records, {ENI: [dict(OWNER, task_arn="arn:t", vpc_id="vpc-1")]})
    assert (bare.private, bare.egress) == (0, 2)  # without the VPC's CIDRs both would count


def test_a_snapshot_written_before_the_vpc_was_kept_still_decodes():
    ranges = {ENI: [dict(OWNER, task_arn="arn:t", vpc_id="vpc-1")]}
    doc = json.loads(zlib.decompress(base64.b64decode(flowlogs.encode_snapshot(ranges))))
    old = base64.b64encode(zlib.compress(json.dumps({ENI: [row[:-2] for row in doc[ENI]]}).encode())).decode()
    assert flowlogs.decode_snapshot(old) == {
        ENI: [dict(OWNER, task_arn="arn:t", vpc_id=None, vpc_cidrs=None)]
    }


def test_the_flow_log_template_logs_every_flow_in_the_documented_format():
    from fargate_audit.cli.template import load_template

    template = load_template(Path(__file__).resolve().parents[2] / "templates" / "vpc-flow-log.yaml")
    props = template["Resources"]["FlowLog"]["Properties"]
    assert props["LogFormat"] == flowlogs.DOCUMENTED_FORMAT
    assert (props["TrafficType"], props["ResourceType"], props["LogDestinationType"]) == (
        "ALL",
        "VPC",
        "cloud-watch-logs",
    )
    assert props["MaxAggregationInterval"] == 60  # a flow is seen within a minute

"""The dns_logs function's pure part (fargate_audit.app.dnslogs) and the EGR-01 name matching:
subscription decoding, record parsing, name normalisation, attribution over IP ranges,
aggregation bounds, chunk planning, the attribution snapshot."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fargate_audit.app import dnslogs
from fargate_audit.app.events import EventError
from fargate_audit.core.checks import domain_approved, domain_matches
from fargate_audit.stores.record import range_at
from fargate_audit.stores.table import utc_second

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "events" / "resolver-query-logs.json"
NOW = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
VPC, IP = "vpc-0a1b2c3d4e5f67890", "10.20.1.37"


def record(name="registry-1.docker.io.", at="2026-06-02T08:14:05Z", ip=IP, qtype="A", **extra) -> dict:
    """Route 53 developer guide, "Resolver query log example" (values ours)."""
    doc = {
        "version": "1.100000",
        "account_id": "123456789012",
        "region": "eu-west-1",
        "vpc_id": VPC,
        "query_timestamp": at,
        "query_name": name,
        "query_type": qtype,
        "query_class": "IN",
        "rcode": "NOERROR",
        "answers": [{"Rdata": "203.0.113.9", "Type": qtype, "Class": "IN"}],
        "srcaddr": ip,
        "srcport": "56067",
        "transport": "UDP",
        "srcids": {"instance": "i-0d15cd0d3example"},
    }
    doc.update(extra)
    return doc


def payload(*messages, message_type="DATA_MESSAGE") -> dict:
    return {
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": "/aws/route53resolver/prod",
        "logStream": "vpc-0a1b2c3d4e5f67890_i-0d15cd0d3example",
        "subscriptionFilters": ["fargate-audit-dns-logs"],
        "logEvents": [
            {
                "id": str(36_000_000 + i),
                "timestamp": 1_780_000_000_000,
                "message": m if isinstance(m, str) else json.dumps(m),
            }
            for i, m in enumerate(messages)
        ],
    }


# --------------------------------------------------------------------------- decoding


def test_a_subscription_event_is_base64_of_gzipped_json():
    sent = payload(record())
    data = base64.b64encode(gzip.compress(json.dumps(sent).encode())).decode()
    assert dnslogs.decode_subscription({"awslogs": {"data": data}}) == sent
    assert dnslogs.decode_subscription(dnslogs.encode_subscription(sent)) == sent


def test_the_sample_event_decodes_to_documented_records():
    decoded = dnslogs.decode_subscription(json.loads(SAMPLE.read_text()))
    assert decoded["messageType"] == "DATA_MESSAGE" and decoded["subscriptionFilters"]
    records, malformed = dnslogs.parse_records(decoded)
    assert records and malformed == []
    first = json.loads(decoded["logEvents"][0]["message"])
    documented = {
        "version", "account_id", "region", "vpc_id", "query_timestamp", "query_name", "query_type",
        "query_class", "rcode", "answers", "srcaddr", "srcport", "transport", "srcids",
    }  # fmt: skip
    assert documented <= set(first)
    assert first["query_name"].endswith(".")


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({}, "no awslogs object"),
        ({"awslogs": {}}, "awslogs.data: missing"),
        ({"awslogs": {"data": "***"}}, "not base64 of gzipped JSON"),
        ({"awslogs": {"data": base64.b64encode(b"plain").decode()}}, "not base64 of gzipped JSON"),
        (dnslogs.encode_subscription({"messageType": "X"}), "messageType 'X'"),
        (dnslogs.encode_subscription({"messageType": "DATA_MESSAGE"}), "logEvents"),
        ({"awslogs": {"data": base64.b64encode(gzip.compress(b"[1]")).decode()}}, "not a JSON object"),
    ],
)
def test_an_undecodable_event_is_one_event_error(event, fragment):
    with pytest.raises(EventError, match=fragment.replace("(", r"\(").replace("'", "'")):
        dnslogs.decode_subscription(event)


def test_control_messages_decode_and_carry_no_records():
    decoded = dnslogs.decode_subscription(
        dnslogs.encode_subscription(payload(message_type="CONTROL_MESSAGE"))
    )
    assert decoded["messageType"] == dnslogs.CONTROL_MESSAGE


def test_the_batch_id_ignores_event_order_and_changes_with_any_event():
    batch = payload(record(), record(name="a.example."))
    reordered = dict(batch, logEvents=list(reversed(batch["logEvents"])))
    assert dnslogs.batch_id(batch) == dnslogs.batch_id(reordered)
    fewer = dict(batch, logEvents=batch["logEvents"][:1])
    other_stream = dict(batch, logStream="another")
    assert len({dnslogs.batch_id(b) for b in (batch, fewer, other_stream)}) == 3


# --------------------------------------------------------------------------- records


def test_a_record_is_parsed_and_its_name_normalised():
    parsed = dnslogs.parse_record(json.dumps(record(name="Registry-1.Docker.IO.")), "e1")
    assert parsed == dnslogs.QueryRecord(
        event_id="e1",
        account_id="123456789012",
        region="eu-west-1",
        vpc_id=VPC,
        srcaddr=IP,
        at="2026-06-02T08:14:05Z",
        name="registry-1.docker.io",
        query_type="A",
        answers=("203.0.113.9",),
        addresses=("203.0.113.9",),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-06-02T08:14:05Z", "2026-06-02T08:14:05Z"),
        ("2026-06-02T08:14:05.999Z", "2026-06-02T08:14:05Z"),
        ("2026-06-02T10:14:05+02:00", "2026-06-02T08:14:05Z"),
        ("2017-03-16T19:20:177Z", "2017-03-16T19:20:17Z"),  # the documentation's own example
    ],
)
def test_query_timestamps_become_utc_seconds(value, expected):
    assert dnslogs.parse_record(json.dumps(record(at=value))).at == expected


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("{oops", "message is not JSON"),
        ("[1, 2]", "message is not a JSON object"),
        (json.dumps(record(name=None)), "query_name is not a string"),
        (json.dumps(record(name=".")), "query_name is empty"),
        (json.dumps(record(name="a" * 254 + ".")), "longer than 253"),
        (json.dumps(record(name="bad name.example.")), "whitespace or control"),
        (json.dumps(record(name="bell\x07.example.")), "whitespace or control"),
        (json.dumps(record(at="yesterday")), "query_timestamp"),
        (json.dumps(record(vpc_id="")), "vpc_id missing"),
        (json.dumps({k: v for k, v in record().items() if k != "srcaddr"}), "srcaddr missing"),
        (json.dumps(record(query_type="X" * 40)), "query_type longer"),
        (json.dumps(record(at=1e300)), "query_timestamp"),
        # times the tables cannot hold failed the whole batch later (its TTL, its hour):
        (json.dumps(record(at="9999-12-31T23:59:59Z")), "query_timestamp is outside the years"),
        (json.dumps(record(at="0001-01-01T00:00:00Z")), "query_timestamp is outside the years"),
        (json.dumps(record(at="0999-01-01T00:00:00Z")), "query_timestamp is outside the years"),
        (json.dumps(record(at=12345)), "query_timestamp is not an ISO 8601 time"),  # not epoch 1970
        (json.dumps(record() | {"account_id": "1" * 3000}), "account_id is not a 12-digit account id"),
        (json.dumps(record() | {"account_id": "x"}), "account_id is not a 12-digit account id"),
    ],
)
def test_a_malformed_record_is_reported_by_reason_never_by_content(message, reason):
    records, malformed = dnslogs.parse_records(payload(record(), message))
    assert len(records) == 1
    (bad,) = malformed
    assert bad["id"] == "36000001" and reason in bad["reason"]
    assert "bad name" not in bad["reason"] and "yesterday" not in bad["reason"]


def test_a_log_event_that_is_not_an_object_is_malformed_not_fatal():
    batch = payload(record())
    batch["logEvents"].append("just a string")
    records, malformed = dnslogs.parse_records(batch)
    assert len(records) == 1 and malformed == [{"id": "", "reason": "log event is not an object"}]


def test_answers_are_deduplicated_and_bounded():
    answers = [{"Rdata": f"203.0.113.{i % 20}", "Type": "A", "Class": "IN"} for i in range(50)]
    parsed = dnslogs.parse_record(json.dumps(record(answers=answers)))
    assert len(parsed.answers) == dnslogs.MAX_ANSWERS and len(set(parsed.answers)) == dnslogs.MAX_ANSWERS


def test_every_answer_address_is_kept_so_a_flow_to_any_of_them_is_named():
    """A name answered with many addresses (a CDN, S3): a flow to the last one is as named
    as to the first (EGR-03 would otherwise call it resolved by nobody)."""
    answers = [{"Rdata": f"52.95.{i // 250}.{i % 250}", "Type": "A", "Class": "IN"} for i in range(200)]
    parsed = dnslogs.parse_record(json.dumps(record(answers=answers)))

    assert len(parsed.addresses) == 200 and parsed.addresses[-1] == "52.95.0.199"


@pytest.mark.parametrize("answers", [5, True, "203.0.113.9", {"Rdata": "203.0.113.9"}])
def test_answers_that_are_not_a_list_make_the_record_malformed_not_the_batch_fail(answers):
    batch = payload(record(answers=answers), record())
    records, malformed = dnslogs.parse_records(batch)

    assert len(records) == 1 and [m["reason"] for m in malformed] == ["answers is not a list"]


# --------------------------------------------------------------------------- EGR-01 patterns


@pytest.mark.parametrize(
    ("name", "pattern", "matches"),
    [
        ("a.example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),  # not the domain itself
        ("evilexample.com", "*.example.com", False),  # a label boundary
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", False),  # a plain name only itself
        ("WWW.Example.COM.", "www.example.com", True),  # case and trailing dot
        ("www.example.com", "*.EXAMPLE.com.", True),
        ("", "*.example.com", False),
        ("", "", False),
    ],
)
def test_domain_pattern_semantics(name, pattern, matches):
    assert domain_matches(name, pattern) is matches


def test_registry_hosts_are_approved_with_their_own_semantics_and_ports_dropped():
    registries = [
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "registry.example.com:5000",
        "*.mirror.example",
    ]
    assert domain_approved("registry.example.com", [], registries)
    assert domain_approved("eu.mirror.example.", [], registries)
    assert not domain_approved("a.eu.mirror.example", [], registries)  # * is one label there
    assert not domain_approved("registry.example.com.evil", [], registries)


# --------------------------------------------------------------------------- attribution


def ranges(*entries):
    return [
        {"from": f, "to": t, "task_arn": arn, "workload_key": f"WL#123456789012#eu-west-1#prod#{group}",
         "workload": f"prod/{group}", "task_definition_arn": None}
        for f, t, arn, group in entries
    ]  # fmt: skip


def test_range_at_picks_the_range_holding_the_moment():
    found = ranges(
        ("2026-06-02T08:00:00Z", "2026-06-02T08:30:00Z", "task/a", "service:a"),
        ("2026-06-02T08:45:00Z", None, "task/b", "service:b"),
    )
    assert range_at(found, "2026-06-02T08:00:00Z")["task_arn"] == "task/a"
    assert range_at(found, "2026-06-02T08:30:00Z")["task_arn"] == "task/a"
    assert range_at(found, "2026-06-02T08:31:00Z") is None  # between the two tasks
    assert range_at(found, "2026-06-02T09:00:00Z")["task_arn"] == "task/b"
    assert range_at(found, "2026-06-02T07:59:59Z") is None
    assert range_at([], "2026-06-02T09:00:00Z") is None


def test_utc_second_reads_every_form_a_task_time_comes_in():
    assert utc_second("2026-06-02T08:14:03.512000+00:00") == "2026-06-02T08:14:03Z"
    assert utc_second("2026-06-02T08:14:03.512Z") == "2026-06-02T08:14:03Z"
    assert utc_second(1_780_388_043.5) == utc_second(datetime.fromtimestamp(1_780_388_043, tz=UTC))
    assert utc_second(None) is None and utc_second("soon") is None


def parse_all(*docs):
    records, malformed = dnslogs.parse_records(payload(*docs))
    assert malformed == []
    return records


def test_aggregation_attributes_by_time_and_keeps_the_unknown():
    records = parse_all(
        record(name="a.example.", at="2026-06-02T08:10:00Z"),
        record(name="A.example", at="2026-06-02T08:20:00Z"),
        record(name="a.example.", at="2026-06-02T08:40:00Z"),  # gap: nobody held the address
        record(name="b.example.", at="2026-06-02T08:50:00Z", qtype="AAAA"),
        record(name="c.example.", at="2026-06-02T08:50:00Z", ip="10.20.9.9"),
    )
    index = {
        (VPC, IP): ranges(
            ("2026-06-02T08:00:00Z", "2026-06-02T08:30:00Z", "task/a", "service:a"),
            ("2026-06-02T08:45:00Z", None, "task/b", "service:b"),
        )
    }
    out = dnslogs.aggregate(records, index)
    assert (out.attributed, out.unattributed) == (3, 2)
    by_key = {(k[0].rsplit("#", 1)[-1], k[1], k[2]): a for k, a in out.aggregates.items()}
    a = by_key[("service:a", "a.example", "A")]
    assert (a.count, a.first_seen, a.last_seen) == (2, "2026-06-02T08:10:00Z", "2026-06-02T08:20:00Z")
    assert by_key[("service:b", "b.example", "AAAA")].count == 1
    unknown = {k[1]: v for k, v in out.aggregates.items() if not v.attributed}
    assert set(unknown) == {"a.example", "c.example"} and unknown["c.example"].sources == ["10.20.9.9"]
    assert out.workloads(attributed_only=True) == [
        "WL#123456789012#eu-west-1#prod#service:a",
        "WL#123456789012#eu-west-1#prod#service:b",
    ]


def test_aggregation_is_bounded_by_destinations_not_records():
    records = parse_all(*[record(name=f"n{i % 5}.example.", ip=f"10.0.0.{i % 40}") for i in range(2000)])
    out = dnslogs.aggregate(records, {})
    assert len(out.aggregates) == 5 and sum(a.count for a in out.aggregates.values()) == 2000
    assert all(len(a.sources) == dnslogs.MAX_SOURCES for a in out.aggregates.values())
    assert all(len(a.answers) <= dnslogs.MAX_ANSWERS for a in out.aggregates.values())


# --------------------------------------------------------------------------- chunks


def test_chunks_hold_at_most_99_updates_and_a_summary_before_each_workloads_first_destination():
    records = parse_all(*[record(name=f"n{i}.example.", ip=f"10.0.{i % 3}.1") for i in range(300)])
    index = {
        (VPC, f"10.0.{n}.1"): ranges(("2026-06-02T00:00:00Z", None, f"task/{n}", f"service:s{n}"))
        for n in range(3)
    }
    aggregation = dnslogs.aggregate(records, index)
    chunks = dnslogs.plan_chunks(aggregation, NOW)
    flat = [action for chunk in chunks for action in chunk]
    # 300 destinations, 3 summaries, then 300 answer items (one address, 300 names)
    assert len(flat) == 300 + 3 + 300 and [len(c) for c in chunks] == [99] * 6 + [9]
    summaries = [i for i, a in enumerate(flat) if a["Update"]["Key"]["sk"]["S"] == "SUMMARY"]
    assert summaries == [0, 101, 202]
    assert all(a["Update"]["Key"]["pk"]["S"].startswith("ANSWER#") for a in flat[303:])
    assert (
        dnslogs.plan_chunks(dnslogs.aggregate(list(reversed(records)), index), NOW) == chunks
    )  # deterministic


def test_destination_updates_add_counts_and_keep_first_seen_and_samples():
    (agg,) = dnslogs.aggregate(parse_all(record()), {}).aggregates.values()
    update = dnslogs.destination_update(agg, NOW)["Update"]
    assert update["UpdateExpression"].startswith("ADD #c :n SET first_seen = if_not_exists(first_seen, :fs)")
    assert "answers = if_not_exists(answers, :ans)" in update["UpdateExpression"]
    assert update["ExpressionAttributeValues"][":n"] == {"N": "1"}
    assert update["Key"] == {
        "pk": {"S": "DISC#UNATTRIBUTED#123456789012#eu-west-1"},
        "sk": {"S": "DEST#registry-1.docker.io#A"},
    }


def test_the_attribution_snapshot_round_trips_and_refuses_to_outgrow_an_item():
    index = {(VPC, IP): ranges(("2026-06-02T08:00:00Z", None, "task/a", "service:a"))}
    assert dnslogs.decode_snapshot(dnslogs.encode_snapshot(index)) == index
    huge = {
        (VPC, f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"): ranges(
            (f"2026-06-02T08:{i % 60:02d}:00Z", None, f"task/{i:032x}", f"service:s{i}")
        )
        for i in range(20000)
    }
    assert dnslogs.encode_snapshot(huge) is None


# --------------------------------------------------------------------------- DNS answers kept


def answers_record(name, answers, at="2026-06-02T08:14:05Z", ip=IP, qtype="A"):
    return record(name=name, at=at, ip=ip, qtype=qtype, answers=[
        {"Rdata": rdata, "Type": rtype, "Class": "IN"} for rtype, rdata in answers
    ])  # fmt: skip


def test_the_queried_name_owns_the_final_addresses_of_its_cname_chain():
    (parsed,) = parse_all(
        answers_record(
            "bucket.s3.eu-west-1.amazonaws.com.",
            [
                ("CNAME", "s3-r-w.eu-west-1.amazonaws.com."),
                ("CNAME", "s3-3-w.amazonaws.com."),
                ("A", "52.218.1.10"),
                ("A", "52.218.1.11"),
            ],
        )
    )
    assert parsed.addresses == ("52.218.1.10", "52.218.1.11")
    aggregation = dnslogs.aggregate([parsed], {})
    assert {(a.address, a.name) for a in aggregation.answers.values()} == {
        ("52.218.1.10", "bucket.s3.eu-west-1.amazonaws.com"),
        ("52.218.1.11", "bucket.s3.eu-west-1.amazonaws.com"),
    }  # the CNAME targets own nothing


def test_aaaa_answers_are_kept_in_the_compressed_form_flow_logs_write_and_bad_rdata_is_not():
    (parsed,) = parse_all(
        answers_record(
            "registry-1.docker.io.",
            [
                ("AAAA", "2600:1F18:04A3:6900:0000:0000:0000:0005"),
                ("AAAA", "203.0.113.7"),  # an IPv4 Rdata in an AAAA answer
                ("A", "2001:db8::1"),  # and the reverse
                ("A", "not-an-address"),
                ("TXT", "198.51.100.1"),
            ],
            qtype="AAAA",
        )
    )
    assert parsed.addresses == ("2600:1f18:4a3:6900::5",)


def test_answer_items_are_one_per_vpc_address_hour_name_and_source():
    index = {(VPC, IP): ranges(("2026-06-02T00:00:00Z", None, "task/1", "service:web"))}
    records = parse_all(
        answers_record("a.example.", [("A", "198.51.100.7")], at="2026-06-02T08:10:00Z"),
        answers_record("a.example.", [("A", "198.51.100.7")], at="2026-06-02T08:50:00Z"),
        answers_record("a.example.", [("A", "198.51.100.7")], at="2026-06-02T09:05:00Z"),
        answers_record("a.example.", [("A", "198.51.100.7")], at="2026-06-02T08:20:00Z", ip="10.20.9.9"),
    )
    answers = dnslogs.aggregate(records, index).answers
    web = "WL#123456789012#eu-west-1#prod#service:web"
    assert {key: (a.first_seen, a.last_seen, a.task_arn) for key, a in answers.items()} == {
        (VPC, "198.51.100.7", "2026-06-02T08", "a.example", web): (
            "2026-06-02T08:10:00Z",
            "2026-06-02T08:50:00Z",
            "task/1",
        ),
        (VPC, "198.51.100.7", "2026-06-02T09", "a.example", web): (
            "2026-06-02T09:05:00Z",
            "2026-06-02T09:05:00Z",
            "task/1",
        ),
        (VPC, "198.51.100.7", "2026-06-02T08", "a.example", "UNATTRIBUTED#123456789012#eu-west-1"): (
            "2026-06-02T08:20:00Z",
            "2026-06-02T08:20:00Z",
            None,
        ),
    }
    update = dnslogs.answer_update(answers[(VPC, "198.51.100.7", "2026-06-02T08", "a.example", web)], NOW)
    assert update["Update"]["Key"] == {
        "pk": {"S": f"ANSWER#{VPC}#198.51.100.7"},
        "sk": {"S": f"AT#2026-06-02T08#a.example#{web}"},
    }
    assert "first_seen = if_not_exists(first_seen, :fs)" in update["Update"]["UpdateExpression"]


OWN, OTHER = "WL#1#r#c#service:web", "WL#1#r#c#service:other"
FLOW_AT = "2026-06-02T12:00:00Z"
DAY = 24 * 3600


def answer(name, first, last=None, workload=OWN):
    return {"name": name, "workload_key": workload, "first_seen": first, "last_seen": last or first}


@pytest.mark.parametrize(
    ("seen", "named"),
    [
        ("2026-06-01T12:00:00Z", "a.example"),  # exactly the lookback before the flow
        ("2026-06-01T11:59:59Z", None),  # one second earlier
        (FLOW_AT, "a.example"),  # the same second
        ("2026-06-02T12:00:01Z", None),  # after the flow started
    ],
)
def test_an_answer_names_a_flow_within_the_lookback_before_it(seen, named):
    assert dnslogs.name_for([answer("a.example", seen)], FLOW_AT, OWN, DAY) == named


def test_the_latest_answer_before_the_flow_wins_when_an_address_had_two_names():
    answers = [
        answer("old.example", "2026-06-02T09:00:00Z"),
        answer("new.example", "2026-06-02T11:00:00Z"),
        answer("later.example", "2026-06-02T12:30:00Z"),  # after the flow: names nothing
    ]
    assert dnslogs.name_for(answers, FLOW_AT, OWN, DAY) == "new.example"
    assert dnslogs.name_for(answers, "2026-06-02T10:00:00Z", OWN, DAY) == "old.example"


def test_the_flows_own_workload_is_preferred_over_a_later_answer_from_another_source():
    answers = [
        answer("mine.example", "2026-06-02T08:00:00Z"),
        answer("theirs.example", "2026-06-02T11:59:00Z", workload=OTHER),
        answer("unknown.example", "2026-06-02T11:59:30Z", workload="UNATTRIBUTED#1#r"),
    ]
    assert dnslogs.name_for(answers, FLOW_AT, OWN, DAY) == "mine.example"
    # the own answer out of the lookback: any source in the VPC, the latest
    assert dnslogs.name_for(answers, FLOW_AT, OWN, 3600) == "unknown.example"


def test_an_hour_item_seen_before_and_after_the_flow_names_it_by_its_first_answer():
    answers = [answer("a.example", "2026-06-02T11:10:00Z", "2026-06-02T11:50:00Z")]
    assert dnslogs.name_for(answers, "2026-06-02T11:30:00Z", OWN, DAY) == "a.example"
    assert dnslogs.name_for(answers, "2026-06-02T11:05:00Z", OWN, DAY) is None


def test_the_flow_namer_reads_the_lookback_window_of_the_flows_vpc_and_address():
    reads = []

    def answers_of(vpc, address, since, until):
        reads.append((vpc, address, since, until))
        return [answer("a.example", "2026-06-02T11:00:00Z")]

    name_of = dnslogs.flow_namer(answers_of, OWN, DAY)
    flow = {"vpc_id": VPC, "address": "198.51.100.7", "first_seen": FLOW_AT}
    assert name_of(flow) == "a.example"
    assert reads == [(VPC, "198.51.100.7", "2026-06-01T12:00:00Z", FLOW_AT)]
    assert name_of(flow | {"vpc_id": None}) is None and len(reads) == 1  # no VPC kept: unnamed
    # another row of the address (port, action) starting in the same hour: the same Query
    assert name_of(flow | {"port": 8443, "first_seen": "2026-06-02T12:40:00Z"}) == "a.example"
    assert len(reads) == 1
    # an hour later the window differs: read again
    assert name_of(flow | {"first_seen": "2026-06-02T13:05:00Z"}) == "a.example" and len(reads) == 2


def test_a_row_that_started_before_the_answers_retention_is_not_read_again_on_every_batch():
    """Every batch re-read the answers of every unnamed row of its workloads: a destination
    a service has called for weeks cost a Query on each batch. The answers before a flow
    that started ANSWER_TTL_DAYS ago were delivered within hours and have expired since."""
    from datetime import UTC, datetime, timedelta

    reads = []

    def answers_of(vpc, address, since, until):
        reads.append(until)
        return []

    now = datetime(2026, 6, 20, 12, 0, tzinfo=UTC)
    answers = dnslogs.flow_answers(answers_of, DAY, now)
    old = (now - timedelta(days=dnslogs.ANSWER_TTL_DAYS, seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = (now - timedelta(days=dnslogs.ANSWER_TTL_DAYS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    flow = {"vpc_id": VPC, "address": "198.51.100.7"}
    assert answers(flow | {"first_seen": old}) == [] and reads == []
    assert answers(flow | {"first_seen": recent}) == [] and reads == [recent]
    assert dnslogs.flow_answers(answers_of, DAY)(flow | {"first_seen": old}) == [] and reads[-1] == old


def test_a_name_kept_on_the_row_for_its_first_flow_needs_no_answer_read():
    reads = []

    def answers_of(vpc, address, since, until):
        reads.append(until)
        return []

    name_of = dnslogs.flow_namer(answers_of, OWN, DAY)
    flow = {"vpc_id": VPC, "address": "198.51.100.7", "first_seen": FLOW_AT, "named": "a.example"}
    assert name_of(flow | {"named_first_seen": FLOW_AT, "named_own": True}) == "a.example" and reads == []
    # kept for another first flow (a late batch moved first_seen earlier): read the answers
    assert name_of(flow | {"named_first_seen": "2026-06-02T12:30:00Z", "named_own": True}) is None
    assert reads == [FLOW_AT]
    # another workload's answer kept it: the answers are read (an own one comes first), and
    # the kept name stands when they no longer name it
    reads.clear()
    fresh = dnslogs.flow_namer(answers_of, OWN, DAY)
    assert fresh(flow | {"named_first_seen": FLOW_AT, "named_own": False}) == "a.example"
    assert reads == [FLOW_AT]


def test_a_query_timestamp_past_the_calendar_in_utc_does_not_fail_the_batch():
    """ "9999-12-31T23:59:59-01:00" overflowed when converted to UTC: the batch raised."""
    records, malformed = dnslogs.parse_records(
        payload(record(), json.dumps(record(at="9999-12-31T23:59:59-01:00")))
    )
    assert len(records) + len(malformed) == 2


def test_every_in_order_update_has_a_form_that_lowers_first_seen_of_a_batch_ending_after_the_row():
    """The in-order form kept an existing first_seen: a batch that ended after the row
    but began before it never moved first_seen earlier (DNS rows and flow rows alike)."""
    from fargate_audit.stores import discovery

    update = {
        "Update": {
            "Key": {},
            "UpdateExpression": "ADD #c :n SET first_seen = if_not_exists(first_seen, :fs), last_seen = :ls",
        }
    } | discovery.in_order("ADD #c :n SET {first}#ttl = :ttl")
    own = discovery._in_form(update, 0)["Update"]
    assert (
        "first_seen <= :fs" in own["ConditionExpression"] and "last_seen <= :ls" in own["ConditionExpression"]
    )
    lowered = discovery._in_form(update, 1)["Update"]
    assert lowered["UpdateExpression"] == "ADD #c :n SET first_seen = :fs, last_seen = :ls"
    assert lowered["ConditionExpression"] == "last_seen <= :ls AND first_seen > :fs"
    forms = [discovery._in_form(update, k)["Update"]["ConditionExpression"] for k in range(4)]
    assert len(set(forms)) == 4  # the four orders of (start, end) against the row's

"""Ingress through load balancers (shared/spec/rules.md, "Ingress through load balancers"),
proved sentence by sentence on the pure code: raw bundles (tests/support/raw.py, in the
shapes boto3 returns; the ELBv2 ones checked against botocore's model below) through
``build_posture``, the rules through ``engine.evaluate``, the report through ``task_entry``.

The baseline: the task (10.0.1.25, private subnet, group ``web``) is registered at port
8080 in the ip target group ``web`` (port 80) of an internet-facing ALB in a public subnet
(default route to the internet gateway, default NACL), whose HTTPS 443 listener forwards
to it and whose HTTP 80 listener redirects to HTTPS; the ALB's group admits the world on
80 and 443, the task's group admits TCP 8080 from the ALB's group; the ALB has a web ACL.
"""

import copy
import json
import random

import botocore.session
import pytest
from fargate_audit.core import ingress
from fargate_audit.core.engine import evaluate
from fargate_audit.core.posture import build_posture
from fargate_audit.core.report import task_entry
from fargate_audit.core.rules import load_catalog
from support.raw import (
    ALB,
    ALB_B,
    DEFAULT_ACL_ENTRIES,
    EIGW,
    GWLB,
    IGW,
    LB_SUBNET,
    LB_SUBNET_B,
    NAT,
    NLB,
    OTHER_VPC,
    RTB_PUBLIC,
    SG_ALB,
    SG_DEFAULT,
    SG_NLB,
    SG_WEB,
    TASK_IP,
    TASK_IPV6,
    TG_API,
    TG_EDGE,
    TG_OTHER,
    TG_WEB,
    VPC,
    WEB_ACL,
    acl_entry,
    bundle,
    fixed_response,
    forward,
    listener,
    listener_rule,
    load_balancer,
    load_balancing,
    network_acl,
    perm,
    redirect_to_https,
    route,
    route_table,
    rt,
    security_group,
    sg,
    target,
    target_group,
    weighted_forward,
)

CATALOG = load_catalog()
W4, W6 = "0.0.0.0/0", "::/0"
ACL_LB = "acl-0lb000000000000003"
ACL_LB_B = "acl-0lbb00000000000004"
RTB_LB_B = "rtb-0lbb0000000000004"
NAT_IN_LB_SUBNET_B = "nat-0ffeeffeeffeeffee"


# --- the baseline and its variations ----------------------------------------------------------


def elb_bundle():
    """The baseline (module docstring): exactly one exposure, HTTPS 443 -> 8080."""
    raw = bundle()
    vpc = raw["vpc"]
    sg(raw, SG_WEB)["IpPermissions"] = [perm("tcp", 8080, 8080, groups=[SG_ALB])]
    vpc["security_groups"].append(
        security_group(
            SG_ALB,
            "web-prod-alb",
            ingress=[perm("tcp", 443, 443, v4=[W4], v6=[W6]), perm("tcp", 80, 80, v4=[W4], v6=[W6])],
        )
    )
    rt(raw, RTB_PUBLIC)["Routes"].append(route("::/0", ipv6=True, GatewayId=IGW))
    vpc["load_balancing"] = load_balancing(
        target_groups=[
            target_group(TG_WEB, "HTTP", 80, targets=[target(TASK_IP, 8080), target("10.0.1.77", 8080)])
        ],
        load_balancers=[
            load_balancer(
                ALB,
                listeners=[
                    listener(ALB, 80, "HTTP", [redirect_to_https()]),
                    listener(ALB, 443, "HTTPS", [forward(TG_WEB)]),
                ],
            )
        ],
        web_acls={ALB: WEB_ACL},
    )
    return raw


def elb(raw):
    return raw["vpc"]["load_balancing"]


def lb(raw, arn=ALB):
    return elb(raw)["load_balancers"][arn]


def tg(raw, arn=TG_WEB):
    return next(g for g in elb(raw)["target_groups"] if g["TargetGroupArn"] == arn)


def port_listener(raw, port, arn=ALB):
    return next(item for item in lb(raw, arn)["Listeners"] if item["Port"] == port)


def task_admits(raw, *permissions):
    """The task's group admits exactly these."""
    sg(raw, SG_WEB)["IpPermissions"] = list(permissions)


def alb_group_admits(raw, *permissions):
    sg(raw, SG_ALB)["IpPermissions"] = list(permissions)


def with_ipv6_task(raw, address=TASK_IPV6):
    raw["eni"]["Ipv6Addresses"] = [{"Ipv6Address": address, "IsPrimaryIpv6": True}]
    return raw


def lb_subnet_acl(raw, entries, subnet=LB_SUBNET, acl_id=ACL_LB):
    """A custom NACL on a load-balancer subnet (in place of the default one)."""
    for acl in raw["vpc"]["network_acls"]:
        acl["Associations"] = [a for a in acl["Associations"] if a["SubnetId"] != subnet]
    raw["vpc"]["network_acls"].append(network_acl(acl_id, entries, subnets=[subnet]))


def nlb_bundle(
    protocol="TCP",
    port=443,
    target_port=8443,
    group_protocol=None,
    preserve=None,
    security_groups=(),
    ip_address_type="ipv4",
    task_rules=None,
):
    """The ALB replaced by an internet-facing NLB (listener ``protocol`` on ``port``,
    forwarding to the ip group ``edge``, the task at ``target_port``). ``preserve``: the
    group's ``preserve_client_ip.enabled`` attribute (None: the key absent). Without
    ``task_rules`` the task's group admits all traffic from 10.0.0.0/16, which contains
    the NLB's subnet (10.0.0.0/24) but is not the world."""
    raw = elb_bundle()
    group_protocol = group_protocol or protocol
    attributes = {}
    if group_protocol in ("TCP", "TLS"):
        attributes[TG_EDGE] = {
            "deregistration_delay.timeout_seconds": "300",
            "deregistration_delay.connection_termination.enabled": "false",
            "stickiness.enabled": "false",
            "stickiness.type": "source_ip",
            "proxy_protocol_v2.enabled": "false",
            "load_balancing.cross_zone.enabled": "use_load_balancer_configuration",
        }
        if preserve is not None:
            attributes[TG_EDGE]["preserve_client_ip.enabled"] = preserve
    raw["vpc"]["load_balancing"] = load_balancing(
        target_groups=[
            target_group(
                TG_EDGE, group_protocol, port, load_balancers=[NLB], targets=[target(TASK_IP, target_port)]
            )
        ],
        load_balancers=[
            load_balancer(
                NLB,
                "network",
                ip_address_type=ip_address_type,
                security_groups=security_groups,
                listeners=[listener(NLB, port, protocol, [forward(TG_EDGE)])],
            )
        ],
        attributes=attributes,
    )
    if security_groups:
        raw["vpc"]["security_groups"].append(
            security_group(SG_NLB, "edge-nlb", ingress=[perm("-1", v4=[W4], v6=[W6])])
        )
    task_admits(raw, *(task_rules if task_rules is not None else [perm("-1", v4=["10.0.0.0/16"])]))
    return raw


def posture_of(raw):
    return build_posture(raw)


def exposures(raw):
    """The task's exposures, asserting that they are known."""
    p = build_posture(raw)
    assert "load_balancers" not in p["errors"], p["errors"]
    return p["network"]["exposures"]


def doors(raw):
    """(load balancer, listener port, target group, target port, families) of each exposure."""
    return [
        (e["load_balancer_arn"], e["listener_port"], e["target_group_arn"], e["target_port"], e["families"])
        for e in exposures(raw)
    ]


BASE_DOOR = (ALB, 443, TG_WEB, 8080, ["ipv4"])


def verdicts(posture):
    """NET-11 and NET-12 results of the posture: {rule id: (status, evidence)}."""
    return {
        r["rule_id"]: (r["status"], r["evidence"])
        for r in evaluate(CATALOG, [posture]).results
        if r["rule_id"] in ("NET-11", "NET-12")
    }


# --- the builders are AWS's documented response shapes ------------------------------------------


def _check_shape(value, shape, path):
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), path
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{path}: {sorted(unknown)} not in {shape.name}"
        for key, item in value.items():
            _check_shape(item, shape.members[key], f"{path}.{key}")
    elif kind == "list":
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            _check_shape(item, shape.member, f"{path}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), path
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in {shape.enum}"
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), path
    elif kind == "boolean":
        assert isinstance(value, bool), path
    elif kind == "timestamp":
        assert isinstance(value, str), path  # the collector's own_jsonable gives ISO text


def test_elb_builders_follow_the_botocore_response_shapes():
    session = botocore.session.get_session()
    elbv2, ec2 = session.get_service_model("elbv2"), session.get_service_model("ec2")
    facts = copy.deepcopy(elb(elb_bundle()))
    facts["target_groups"].append(
        target_group(TG_API, targets=[target(TASK_IP, 9000, state) for state in ("initial", "unused")])
    )
    alb_with_rules = load_balancer(
        ALB_B,
        ip_address_type="dualstack-without-public-ipv4",
        state="failed",
        listeners=[
            listener(ALB_B, 443, "HTTPS", [fixed_response()], rules=[(10, [weighted_forward((TG_API, 0))])])
        ],
    )
    nlb = load_balancer(NLB, "network", security_groups=(), listeners=[listener(NLB, 53, "TCP_UDP", [])])
    for group in facts["target_groups"]:
        _check_shape({k: v for k, v in group.items() if k != "Targets"}, elbv2.shape_for("TargetGroup"), "tg")
        for description in group["Targets"]:
            _check_shape(description, elbv2.shape_for("TargetHealthDescription"), "target")
    for item in [*facts["load_balancers"].values(), alb_with_rules, nlb]:
        _check_shape(
            {k: v for k, v in item.items() if k != "Listeners"}, elbv2.shape_for("LoadBalancer"), "lb"
        )
        for entry in item["Listeners"]:
            _check_shape({k: v for k, v in entry.items() if k != "Rules"}, elbv2.shape_for("Listener"), "l")
            for rule in entry.get("Rules", []):
                _check_shape(rule, elbv2.shape_for("Rule"), "rule")
    for item in facts["subnets"].values():
        _check_shape(item, ec2.shape_for("Subnet"), "subnet")
    _check_shape(with_ipv6_task(bundle())["eni"], ec2.shape_for("NetworkInterface"), "eni")


# --- the baseline ---------------------------------------------------------------------------------


def test_baseline_exposure_in_full():
    p = posture_of(elb_bundle())
    assert p["errors"] == {}
    https = port_listener(elb_bundle(), 443)
    assert p["network"]["exposures"] == [
        {
            "load_balancer_arn": ALB,
            "load_balancer_type": "application",
            "listener_arn": https["ListenerArn"],
            "listener_port": 443,
            "listener_protocol": "HTTPS",
            "target_group_arn": TG_WEB,
            "target_port": 8080,
            "families": ["ipv4"],
            "web_acl_arn": WEB_ACL,
        }
    ]
    assert p["network"]["unknown_web_acls"] == []
    # what can change the exposures: group, load balancer, listeners, its groups and subnet's
    # route table and NACL (the re-audit index)
    assert set(p["network"]["load_balancer_resources"]) >= {
        TG_WEB,
        ALB,
        https["ListenerArn"],
        SG_ALB,
        LB_SUBNET,
        RTB_PUBLIC,
        "acl-0def00000000000001",
    }
    assert verdicts(p) == {
        "NET-11": ("PASSED", {"exposures": []}),
        "NET-12": ("PASSED", {"exposures": []}),
    }


def test_bundle_without_load_balancers_has_no_exposure_and_no_error():
    p = posture_of(bundle())
    assert p["errors"] == {} and p["network"]["exposures"] == []
    assert verdicts(p) == {"NET-11": ("NOT_APPLICABLE", {}), "NET-12": ("NOT_APPLICABLE", {})}


# --- Target groups of a task ------------------------------------------------------------------


@pytest.mark.parametrize(
    "target_type, exposed",
    [("ip", True), ("IP", True), ("instance", False), ("lambda", False), ("alb", False)],
)
def test_only_ip_target_groups_are_the_tasks(target_type, exposed):
    """TargetType ``ip`` only; ``alb`` (an ALB behind an NLB) is out of scope."""
    raw = elb_bundle()
    tg(raw)["TargetType"] = target_type
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


def test_a_target_group_in_another_vpc_holding_the_same_address_is_not_the_tasks():
    raw = elb_bundle()
    tg(raw)["VpcId"] = OTHER_VPC
    assert doors(raw) == []


def test_the_group_of_the_tasks_vpc_counts_beside_one_of_another_vpc_holding_the_same_address():
    raw = elb_bundle()
    other = target_group(TG_OTHER, "HTTP", 80, vpc=OTHER_VPC, targets=[target(TASK_IP, 9090)])
    elb(raw)["target_groups"].insert(0, other)
    https = port_listener(raw, 443)
    https["DefaultActions"] = [weighted_forward((TG_OTHER, 1), (TG_WEB, 1))]
    https["Rules"][-1]["Actions"] = https["DefaultActions"]
    task_admits(raw, perm("tcp", 8080, 9090, groups=[SG_ALB]))
    assert doors(raw) == [BASE_DOOR]


def test_an_address_of_another_task_is_not_the_tasks():
    raw = elb_bundle()
    tg(raw)["Targets"] = [target("10.0.1.77", 8080), target("10.0.1.250", 8080)]
    assert doors(raw) == []


def test_registered_by_ipv6_address():
    raw = with_ipv6_task(elb_bundle())
    tg(raw)["IpAddressType"] = "ipv6"
    tg(raw)["Targets"] = [target(TASK_IPV6, 8080)]
    assert doors(raw) == [(ALB, 443, TG_WEB, 8080, ["ipv4"])]


@pytest.mark.parametrize(
    "registered, on_the_eni",
    [
        ("2a05:d018:abcd:0001:0000:0000:0000:0025", TASK_IPV6),  # exploded text
        ("2A05:D018:ABCD:1::25", TASK_IPV6),  # upper case
        ("2a05:d018:abcd:1:0:0:0:25", TASK_IPV6),  # zeros not compressed
        (TASK_IPV6, "2a05:d018:abcd:0001:0000:0000:0000:0025"),  # the ENI's text exploded
    ],
)
def test_ipv6_addresses_are_compared_as_addresses_not_text(registered, on_the_eni):
    raw = with_ipv6_task(elb_bundle(), on_the_eni)
    tg(raw)["IpAddressType"] = "ipv6"
    tg(raw)["Targets"] = [target(registered, 8080)]
    assert doors(raw) == [(ALB, 443, TG_WEB, 8080, ["ipv4"])]


def test_an_ipv6_address_of_another_task_is_not_the_tasks():
    raw = with_ipv6_task(elb_bundle())
    tg(raw)["Targets"] = [target("2a05:d018:abcd:1::26", 8080)]
    assert doors(raw) == []


@pytest.mark.parametrize(
    "state, exposed",
    [
        ("initial", True),  # ECS registers a task while it is ACTIVATING
        ("healthy", True),
        ("unhealthy", True),
        ("unavailable", True),
        ("unhealthy.draining", True),  # a state other than draining and unused
        ("draining", False),
        ("unused", False),
    ],
)
def test_target_states_other_than_draining_and_unused_count(state, exposed):
    raw = elb_bundle()
    tg(raw)["Targets"] = [target(TASK_IP, 8080, state)]
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


def test_the_target_port_is_the_registered_targets_not_the_groups():
    raw = elb_bundle()
    assert tg(raw)["Port"] == 80
    assert doors(raw) == [BASE_DOOR]  # target_port 8080, not the group's 80
    task_admits(raw, perm("tcp", 80, 80, groups=[SG_ALB]))  # the group's port only
    assert doors(raw) == []


def test_each_port_at_which_the_task_is_registered_is_its_own_exposure():
    raw = elb_bundle()
    tg(raw)["Targets"] = [target(TASK_IP, 9090), target(TASK_IP, 8080, "initial")]
    task_admits(raw, perm("tcp", 8000, 9999, groups=[SG_ALB]))
    assert doors(raw) == [BASE_DOOR, (ALB, 443, TG_WEB, 9090, ["ipv4"])]


# --- Front door ---------------------------------------------------------------------------------


def test_a_default_action_forward_is_a_front_door():
    raw = elb_bundle()
    assert port_listener(raw, 443)["DefaultActions"][0]["Type"] == "forward"
    assert doors(raw) == [BASE_DOOR]


def test_a_rules_forward_is_a_front_door():
    raw = elb_bundle()
    https = port_listener(raw, 443)
    https["DefaultActions"] = [fixed_response()]
    https["Rules"] = [
        listener_rule(https["ListenerArn"], 5, [forward(TG_OTHER)], "/other/*"),
        listener_rule(https["ListenerArn"], 10, [forward(TG_WEB)], "/api/*"),
        listener_rule(https["ListenerArn"], "default", [fixed_response()]),
    ]
    assert doors(raw) == [BASE_DOOR]


@pytest.mark.parametrize("action", [redirect_to_https(), fixed_response("503")])
def test_redirect_and_fixed_response_are_no_forward(action):
    raw = elb_bundle()
    https = port_listener(raw, 443)
    https["DefaultActions"] = [action]
    https["Rules"] = [listener_rule(https["ListenerArn"], "default", [action])]
    assert doors(raw) == []


def test_a_forward_to_another_group_is_no_front_door_of_the_task():
    raw = elb_bundle()
    https = port_listener(raw, 443)
    https["DefaultActions"] = [forward(TG_OTHER)]
    https["Rules"] = [listener_rule(https["ListenerArn"], "default", [forward(TG_OTHER)])]
    assert doors(raw) == []


@pytest.mark.parametrize("weight, exposed", [(None, True), (0, False), (1, True), (999, True)])
def test_forward_config_entries_count_unless_their_weight_is_zero(weight, exposed):
    raw = elb_bundle()
    https = port_listener(raw, 443)
    https["DefaultActions"] = [fixed_response()]
    weighted = weighted_forward((TG_OTHER, 1), (TG_WEB, weight))
    assert "TargetGroupArn" not in weighted
    https["Rules"] = [
        listener_rule(https["ListenerArn"], 10, [weighted]),
        listener_rule(https["ListenerArn"], "default", [fixed_response()]),
    ]
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


def test_a_zero_weight_in_one_action_does_not_hide_a_forward_in_another():
    raw = elb_bundle()
    https = port_listener(raw, 443)
    https["DefaultActions"] = [weighted_forward((TG_WEB, 0), (TG_OTHER, 1))]
    https["Rules"] = [
        listener_rule(https["ListenerArn"], 10, [weighted_forward((TG_WEB, 1), (TG_OTHER, 3))]),
        listener_rule(https["ListenerArn"], "default", https["DefaultActions"]),
    ]
    assert doors(raw) == [BASE_DOOR]


def test_an_http_listener_redirecting_by_default_but_forwarding_in_a_rule_fails_net_11():
    raw = elb_bundle()
    http = port_listener(raw, 80)
    assert http["DefaultActions"][0]["Type"] == "redirect"
    http["Rules"].insert(0, listener_rule(http["ListenerArn"], 10, [forward(TG_WEB)]))
    task_admits(raw, perm("tcp", 8080, 8080, groups=[SG_ALB]))
    p = posture_of(raw)
    http_door = next(e for e in p["network"]["exposures"] if e["listener_port"] == 80)
    assert http_door["listener_protocol"] == "HTTP"
    assert [e["listener_port"] for e in p["network"]["exposures"]] == [80, 443]
    assert verdicts(p)["NET-11"] == ("FAILED", {"exposures": [http_door]})


TRANSPORT_CASES = [
    ("HTTP", "tcp", True),
    ("HTTP", "udp", False),
    ("HTTPS", "tcp", True),
    ("HTTPS", "udp", False),
    ("TCP", "tcp", True),
    ("TCP", "udp", False),
    ("TLS", "tcp", True),
    ("TLS", "udp", False),
    ("UDP", "tcp", False),
    ("UDP", "udp", True),
    ("QUIC", "tcp", False),
    ("QUIC", "udp", True),
    ("TCP_UDP", "tcp", True),
    ("TCP_UDP", "udp", True),
    ("TCP_QUIC", "tcp", True),
    ("TCP_QUIC", "udp", True),
]


@pytest.mark.parametrize("protocol, transport, exposed", TRANSPORT_CASES)
def test_listener_protocols_and_their_transports(protocol, transport, exposed):
    """Everything on the path is open to both transports except the task's group, which
    admits only ``transport`` on the target port (from the world)."""
    rule = perm(transport, 8443, 8443, v4=[W4])
    if protocol in ("HTTP", "HTTPS"):
        raw = elb_bundle()
        alb_group_admits(raw, perm("-1", v4=[W4], v6=[W6]))
        tg(raw)["Targets"] = [target(TASK_IP, 8443)]
        task_admits(raw, rule)
        listener_port = 443 if protocol == "HTTPS" else 80
        if protocol == "HTTP":
            http = port_listener(raw, 80)
            http["DefaultActions"] = [forward(TG_WEB)]
            http["Rules"][-1]["Actions"] = [forward(TG_WEB)]
            https = port_listener(raw, 443)
            https["DefaultActions"] = https["Rules"][-1]["Actions"] = [redirect_to_https()]
    else:
        raw = nlb_bundle(protocol, 443, 8443, task_rules=[rule])
        listener_port = 443
    found = exposures(raw)
    assert [(e["listener_port"], e["listener_protocol"], e["target_port"]) for e in found] == (
        [(listener_port, protocol, 8443)] if exposed else []
    )


@pytest.mark.parametrize("protocol", ["TCP_UDP", "TCP_QUIC"])
@pytest.mark.parametrize(
    "nacl_allows, task_admits_transport, exposed",
    [("udp", "tcp", False), ("tcp", "udp", False), ("udp", "udp", True), ("tcp", "tcp", True)],
)
def test_tcp_udp_and_tcp_quic_are_judged_per_transport(protocol, nacl_allows, task_admits_transport, exposed):
    """The internet reaches the port over one transport only, the task admits the other:
    no transport is both internet-facing and admitted."""
    raw = nlb_bundle(protocol, 443, 8443, task_rules=[perm(task_admits_transport, 8443, 8443, v4=[W4])])
    lb_subnet_acl(raw, [acl_entry(100, "allow", nacl_allows, W4, ports=(443, 443)), acl_entry(32767, "deny")])
    assert len(exposures(raw)) == (1 if exposed else 0)


def test_tcp_udp_per_transport_through_the_load_balancers_security_group():
    raw = nlb_bundle("TCP_UDP", 53, 53, security_groups=[SG_NLB], task_rules=[perm("udp", 53, 53, v4=[W4])])
    sg(raw, SG_NLB)["IpPermissions"] = [perm("tcp", 53, 53, v4=[W4])]  # the world over TCP only
    assert exposures(raw) == []
    sg(raw, SG_NLB)["IpPermissions"] = [perm("udp", 53, 53, v4=[W4])]
    assert len(exposures(raw)) == 1


def test_gateway_load_balancers_are_out_of_scope():
    """Even one shaped as an exposure would be."""
    raw = elb_bundle()
    gateway = copy.deepcopy(lb(raw))
    gateway.update(LoadBalancerArn=GWLB, Type="gateway", LoadBalancerName="inspect")
    for item in gateway["Listeners"]:
        item["LoadBalancerArn"] = GWLB
        item["ListenerArn"] = item["ListenerArn"].replace("app/web-prod/50dc6c495c0c9188", "gwy/inspect/7c6b")
    elb(raw)["load_balancers"] = {GWLB: gateway}
    tg(raw)["LoadBalancerArns"] = [GWLB]
    p = posture_of(raw)
    assert p["errors"] == {} and p["network"]["exposures"] == []
    assert GWLB not in p["network"]["load_balancer_resources"]


# --- Internet-facing ----------------------------------------------------------------------------


def test_an_internal_load_balancer_is_not_internet_facing():
    raw = elb_bundle()
    lb(raw)["Scheme"] = "internal"
    assert doors(raw) == []


def test_an_internal_load_balancers_subnet_facts_are_not_read():
    """Its routes and NACLs cannot change the exposures: unreadable, no error."""
    raw = elb_bundle()
    lb(raw)["Scheme"] = "internal"
    raw["errors"] = {"network_acls": "DescribeNetworkAcls: UnauthorizedOperation: denied"}
    p = posture_of(raw)
    assert "load_balancers" not in p["errors"] and p["network"]["exposures"] == []


@pytest.mark.parametrize(
    "state, exposed", [("active", True), ("provisioning", True), ("active_impaired", True), ("failed", False)]
)
def test_a_failed_load_balancer_is_not_internet_facing(state, exposed):
    raw = elb_bundle()
    lb(raw)["State"] = {"Code": state}
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


@pytest.mark.parametrize(
    "address_type, families",
    [("ipv4", ["ipv4"]), ("dualstack", ["ipv4", "ipv6"]), ("dualstack-without-public-ipv4", ["ipv6"])],
)
def test_public_families_follow_the_ip_address_type(address_type, families):
    raw = elb_bundle()
    lb(raw)["IpAddressType"] = address_type
    assert doors(raw) == [(ALB, 443, TG_WEB, 8080, families)]


def test_an_absent_ip_address_type_is_ipv4():
    raw = elb_bundle()
    del lb(raw)["IpAddressType"]
    assert doors(raw) == [BASE_DOOR]


@pytest.mark.parametrize(
    "default_route, exposed",
    [
        ({"GatewayId": IGW}, True),
        ({"NatGatewayId": NAT}, False),
        ({"TransitGatewayId": "tgw-0a1b2c3d4e5f60718"}, False),
        ({"GatewayId": "vpce-0a1b2c3d4e5f60718"}, False),
        (None, False),  # no default route
        ({"GatewayId": IGW, "state": "blackhole"}, False),  # a blackhole route is no route
    ],
)
def test_the_load_balancer_subnet_needs_a_default_route_to_an_internet_gateway(default_route, exposed):
    raw = elb_bundle()
    table = rt(raw, RTB_PUBLIC)
    table["Routes"] = [r for r in table["Routes"] if r.get("DestinationCidrBlock") != "0.0.0.0/0"]
    if default_route is not None:
        target_fields = dict(default_route)
        state = target_fields.pop("state", "active")
        table["Routes"].append(route("0.0.0.0/0", state, **target_fields))
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


@pytest.mark.parametrize(
    "ipv6_route, families",
    [
        ({"GatewayId": IGW}, ["ipv4", "ipv6"]),
        ({"EgressOnlyInternetGatewayId": EIGW}, ["ipv4"]),
        (None, ["ipv4"]),
    ],
)
def test_the_ipv6_family_needs_the_ipv6_default_route_to_an_internet_gateway(ipv6_route, families):
    raw = elb_bundle()
    lb(raw)["IpAddressType"] = "dualstack"
    table = rt(raw, RTB_PUBLIC)
    table["Routes"] = [r for r in table["Routes"] if "DestinationIpv6CidrBlock" not in r]
    if ipv6_route:
        table["Routes"].append(route("::/0", ipv6=True, **ipv6_route))
    assert doors(raw) == [(ALB, 443, TG_WEB, 8080, families)]


def test_the_ipv4_family_needs_the_ipv4_default_route():
    raw = elb_bundle()
    lb(raw)["IpAddressType"] = "dualstack"
    table = rt(raw, RTB_PUBLIC)
    table["Routes"] = [r for r in table["Routes"] if r.get("DestinationCidrBlock") != "0.0.0.0/0"]
    assert doors(raw) == [(ALB, 443, TG_WEB, 8080, ["ipv6"])]


@pytest.mark.parametrize(
    "entries, exposed",
    [
        (DEFAULT_ACL_ENTRIES, True),
        ([acl_entry(100, "allow", "6", W4, ports=(443, 443)), acl_entry(32767, "deny")], True),
        ([acl_entry(90, "deny", "6", W4, ports=(443, 443)), acl_entry(100, "allow")], False),
        ([acl_entry(100, "allow", "6", W4, ports=(80, 80)), acl_entry(32767, "deny")], False),  # other port
        ([acl_entry(100, "allow", "17", W4, ports=(443, 443)), acl_entry(32767, "deny")], False),  # udp
        ([acl_entry(100, "allow", "-1", "203.0.113.0/24"), acl_entry(32767, "deny")], False),  # not world
        ([acl_entry(100, "allow", "-1", W6), acl_entry(32767, "deny")], False),  # the other family
        ([acl_entry(100, "allow", egress=True), acl_entry(32767, "deny")], False),  # outbound only
    ],
)
def test_the_load_balancer_subnets_nacl_must_allow_the_world_on_the_listener_port(entries, exposed):
    raw = elb_bundle()
    lb_subnet_acl(raw, entries)
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


def test_the_nacl_world_decision_is_per_family():
    raw = elb_bundle()
    lb(raw)["IpAddressType"] = "dualstack"
    lb_subnet_acl(raw, [acl_entry(100, "allow", cidr=W6), acl_entry(101, "deny", cidr=W4)])
    assert doors(raw) == [(ALB, 443, TG_WEB, 8080, ["ipv6"])]


def test_route_and_nacl_must_hold_for_the_same_subnet():
    """Subnet A routes to the internet gateway but its NACL denies; subnet B's NACL allows
    but it routes to a NAT gateway: no subnet has both."""
    raw = elb_bundle()
    lb(raw)["AvailabilityZones"].append({"ZoneName": "eu-west-1b", "SubnetId": LB_SUBNET_B})
    raw["vpc"]["route_tables"].append(
        route_table(RTB_LB_B, [route("0.0.0.0/0", NatGatewayId=NAT)], subnets=[LB_SUBNET_B])
    )
    lb_subnet_acl(raw, [acl_entry(100, "deny")], LB_SUBNET, ACL_LB)
    lb_subnet_acl(raw, [acl_entry(100, "allow")], LB_SUBNET_B, ACL_LB_B)
    assert doors(raw) == []
    # subnet B routed to the internet gateway too: it then has both
    rt(raw, RTB_LB_B)["Routes"][-1] = route("0.0.0.0/0", GatewayId=IGW)
    assert doors(raw) == [BASE_DOOR]


@pytest.mark.parametrize(
    "alb_rules, families",
    [
        ([perm("tcp", 443, 443, v4=[W4])], ["ipv4"]),
        ([perm("tcp", 443, 443, v6=[W6])], ["ipv6"]),
        ([perm("tcp", 443, 443, v4=[W4], v6=[W6])], ["ipv4", "ipv6"]),
        ([perm("-1", v4=[W4])], ["ipv4"]),
        ([perm("6", 400, 500, v4=[W4])], ["ipv4"]),
        ([perm("tcp", 80, 80, v4=[W4], v6=[W6])], []),  # another port
        ([perm("udp", 443, 443, v4=[W4], v6=[W6])], []),  # another transport
        ([perm("tcp", 443, 443, v4=["203.0.113.0/24", "0.0.0.0/1"], v6=["::/1"])], []),  # not world
        ([perm("tcp", 443, 443, prefix_lists=["pl-0a1b2c3d"], groups=[SG_DEFAULT])], []),
    ],
)
def test_the_load_balancers_security_group_must_admit_the_world_of_the_family(alb_rules, families):
    raw = elb_bundle()
    lb(raw)["IpAddressType"] = "dualstack"
    alb_group_admits(raw, *alb_rules)
    assert doors(raw) == ([(ALB, 443, TG_WEB, 8080, families)] if families else [])


def test_a_world_rule_of_any_of_the_load_balancers_groups_is_enough():
    raw = elb_bundle()
    alb_group_admits(raw)  # nothing
    raw["vpc"]["security_groups"].append(
        security_group("sg-0c0c0c0c0c0c0c0c0", "extra", [perm("-1", v4=[W4])])
    )
    lb(raw)["SecurityGroups"].append("sg-0c0c0c0c0c0c0c0c0")
    assert doors(raw) == [BASE_DOOR]


def test_a_network_load_balancer_without_security_groups_admits_every_source():
    raw = nlb_bundle("TCP", 443, 8443, task_rules=[perm("tcp", 8443, 8443, v4=[W4])])
    assert lb(raw, NLB)["SecurityGroups"] == []
    assert doors(raw) == [(NLB, 443, TG_EDGE, 8443, ["ipv4"])]


def test_a_network_load_balancers_security_groups_apply_when_it_has_some():
    raw = nlb_bundle(
        "TCP", 443, 8443, security_groups=[SG_NLB], task_rules=[perm("tcp", 8443, 8443, v4=[W4])]
    )
    assert len(exposures(raw)) == 1
    sg(raw, SG_NLB)["IpPermissions"] = [perm("tcp", 443, 443, v4=["198.51.100.0/24"])]
    assert exposures(raw) == []


# --- The task admits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_rule, exposed",
    [
        (perm("tcp", 8080, 8080, groups=[SG_ALB]), True),  # the load balancer's group
        (perm("-1", groups=[SG_ALB]), True),  # protocol -1
        (perm("tcp", 8000, 8999, groups=[SG_ALB]), True),
        (perm("tcp", 8080, 8080, groups=[SG_DEFAULT]), False),  # another group
        (perm("tcp", 8080, 8080, v4=[W4]), True),  # the world of the target's family
        (perm("tcp", 8080, 8080, v6=[W6]), False),  # the world of the other family
        (perm("tcp", 8080, 8080, v4=["10.0.0.0/16"]), True),  # contains the LB subnet's block
        (perm("tcp", 8080, 8080, v4=["10.0.0.0/24"]), True),  # is the LB subnet's block
        (perm("tcp", 8080, 8080, v4=["10.0.0.0/25"]), False),  # inside it, does not contain it
        (perm("tcp", 8080, 8080, v4=["10.0.1.0/24"]), False),  # the task's own subnet
        (perm("tcp", 8080, 8080, v6=["2a05:d018:abcd::/56"]), False),  # the LB subnet's, other family
        (perm("tcp", 8080, 8080, prefix_lists=["pl-0a1b2c3d"]), False),
        (perm("tcp", 9090, 9090, groups=[SG_ALB]), False),  # another port
        (perm("tcp", 443, 443, groups=[SG_ALB]), False),  # the listener's port
        (perm("udp", 8080, 8080, groups=[SG_ALB]), False),  # another protocol
        (perm("icmp", -1, -1, groups=[SG_ALB]), False),
    ],
)
def test_the_task_admits_its_front_door(task_rule, exposed):
    raw = elb_bundle()
    task_admits(raw, task_rule)
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


@pytest.mark.parametrize(
    "task_rule, exposed",
    [
        (perm("tcp", 8080, 8080, groups=[SG_ALB]), True),
        (perm("tcp", 8080, 8080, v6=[W6]), True),  # the world of the target's family
        (perm("tcp", 8080, 8080, v4=[W4]), False),
        (perm("tcp", 8080, 8080, v6=["2a05:d018:abcd::/56"]), True),  # contains the LB subnet's block
        (perm("tcp", 8080, 8080, v6=["2a05:d018:abcd::/64"]), True),  # is it
        (perm("tcp", 8080, 8080, v6=["2a05:d018:abcd:1::/64"]), False),  # the task's own subnet
        (perm("tcp", 8080, 8080, v4=["10.0.0.0/16"]), False),  # the LB subnet's, other family
    ],
)
def test_the_task_admits_an_ipv6_target_by_its_family(task_rule, exposed):
    raw = with_ipv6_task(elb_bundle())
    tg(raw)["IpAddressType"] = "ipv6"
    tg(raw)["Targets"] = [target(TASK_IPV6, 8080)]
    task_admits(raw, task_rule)
    assert doors(raw) == ([BASE_DOOR] if exposed else [])


def test_a_cidr_containing_any_of_the_load_balancers_subnets_admits():
    raw = elb_bundle()
    lb(raw)["AvailabilityZones"].append({"ZoneName": "eu-west-1b", "SubnetId": LB_SUBNET_B})
    task_admits(raw, perm("tcp", 8080, 8080, v4=["10.0.2.0/23"]))  # subnet B's 10.0.2.0/24 only
    assert doors(raw) == [BASE_DOOR]


def test_any_attached_group_of_the_task_may_admit():
    raw = elb_bundle()
    task_admits(raw)
    sg(raw, SG_DEFAULT)["IpPermissions"].append(perm("tcp", 8080, 8080, groups=[SG_ALB]))
    assert doors(raw) == []  # the default group is not attached
    raw["eni"]["Groups"].append({"GroupName": "default", "GroupId": SG_DEFAULT})
    assert doors(raw) == [BASE_DOOR]


# --- The exception: a network load balancer preserving client addresses -------------------------


SUBNET_RULE = perm("-1", v4=["10.0.0.0/16"])  # contains the NLB's subnet, not the world


@pytest.mark.parametrize(
    "listener_protocol, group_protocol, preserve, exposed_by_subnet_cidr",
    [
        ("UDP", "UDP", None, False),  # always preserved
        ("TCP_UDP", "TCP_UDP", None, False),
        ("QUIC", "QUIC", None, False),
        ("TCP_QUIC", "TCP_QUIC", None, False),
        ("TCP", "TCP", "true", False),
        ("TLS", "TLS", "true", False),
        ("TLS", "TCP", "true", False),  # the group's protocol decides
        ("TCP", "TCP", "false", True),
        ("TLS", "TLS", "false", True),
        ("TCP", "TCP", None, True),  # attribute absent: not preserved
        ("TLS", "TCP", None, True),
    ],
)
def test_a_preserving_group_is_not_admitted_by_a_cidr_containing_the_subnets(
    listener_protocol, group_protocol, preserve, exposed_by_subnet_cidr
):
    raw = nlb_bundle(listener_protocol, 443, 8443, group_protocol, preserve, task_rules=[SUBNET_RULE])
    assert len(exposures(raw)) == (1 if exposed_by_subnet_cidr else 0)


@pytest.mark.parametrize(
    "listener_protocol, group_protocol, preserve",
    [("UDP", "UDP", None), ("TCP_UDP", "TCP_UDP", None), ("QUIC", "QUIC", None), ("TCP", "TCP", "true")],
)
def test_a_preserving_group_is_admitted_by_a_world_rule_or_the_load_balancers_group(
    listener_protocol, group_protocol, preserve
):
    raw = nlb_bundle(listener_protocol, 443, 8443, group_protocol, preserve, task_rules=[perm("-1", v4=[W4])])
    assert len(exposures(raw)) == 1
    raw = nlb_bundle(
        listener_protocol,
        443,
        8443,
        group_protocol,
        preserve,
        security_groups=[SG_NLB],
        task_rules=[perm("-1", groups=[SG_NLB])],
    )
    assert len(exposures(raw)) == 1


def test_clients_of_the_other_family_are_still_admitted_by_the_subnet_cidr():
    """A dualstack NLB preserving client addresses of an IPv4 target: IPv4 clients arrive
    with their own addresses, IPv6 clients with the NLB's (IPv4) one."""
    raw = nlb_bundle("TCP", 443, 8443, "TCP", "true", ip_address_type="dualstack", task_rules=[SUBNET_RULE])
    assert doors(raw) == [(NLB, 443, TG_EDGE, 8443, ["ipv6"])]
    task_admits(raw, perm("-1", v4=[W4]))
    assert doors(raw) == [(NLB, 443, TG_EDGE, 8443, ["ipv4", "ipv6"])]
    elb(raw)["target_group_attributes"][TG_EDGE]["preserve_client_ip.enabled"] = "false"
    task_admits(raw, SUBNET_RULE)
    assert doors(raw) == [(NLB, 443, TG_EDGE, 8443, ["ipv4", "ipv6"])]


def test_an_application_load_balancers_group_never_preserves_client_addresses():
    raw = elb_bundle()
    task_admits(raw, perm("tcp", 8080, 8080, v4=["10.0.0.0/16"]))
    elb(raw)["target_group_attributes"][TG_WEB] = {"preserve_client_ip.enabled": "true"}
    assert doors(raw) == [BASE_DOOR]


# --- Exposure -----------------------------------------------------------------------------------


def two_load_balancers():
    """The baseline plus an HTTP 80 rule forward, an NLB (TCP 8443 and TLS 443 to the group
    edge, the task at 9443 and 9000) and a second ALB without a web ACL (HTTPS 443 to api)."""
    raw = elb_bundle()
    http = port_listener(raw, 80)
    http["Rules"].insert(0, listener_rule(http["ListenerArn"], 10, [forward(TG_WEB)]))
    task_admits(raw, perm("tcp", 8080, 8080, groups=[SG_ALB]), perm("tcp", 9000, 9443, v4=[W4]))
    facts = elb(raw)
    facts["target_groups"] += [
        target_group(TG_EDGE, "TCP", 443, [NLB], [target(TASK_IP, 9443), target(TASK_IP, 9000)]),
        target_group(TG_API, "HTTP", 80, [ALB_B], [target(TASK_IP, 9000)]),
    ]
    facts["load_balancers"][NLB] = load_balancer(
        NLB,
        "network",
        security_groups=(),
        listeners=[
            listener(NLB, 8443, "TCP", [forward(TG_EDGE)]),
            listener(NLB, 443, "TLS", [forward(TG_EDGE)]),
        ],
    )
    facts["load_balancers"][ALB_B] = load_balancer(
        ALB_B, listeners=[listener(ALB_B, 443, "HTTPS", [forward(TG_API)])]
    )
    facts["target_group_attributes"][TG_EDGE] = {"preserve_client_ip.enabled": "false"}
    facts["web_acls"][ALB_B] = None
    return raw


def test_one_exposure_per_front_door_and_target_port_sorted():
    found = exposures(two_load_balancers())
    # sorted by load balancer ARN (app/api-prod < app/web-prod < net/edge-prod), listener
    # port as a number (80 before 443, 443 before 8443), target group, target port
    assert [
        (e["load_balancer_arn"], e["listener_port"], e["target_group_arn"], e["target_port"]) for e in found
    ] == [
        (ALB_B, 443, TG_API, 9000),
        (ALB, 80, TG_WEB, 8080),
        (ALB, 443, TG_WEB, 8080),
        (NLB, 443, TG_EDGE, 9000),
        (NLB, 443, TG_EDGE, 9443),
        (NLB, 8443, TG_EDGE, 9000),
        (NLB, 8443, TG_EDGE, 9443),
    ]
    assert [(e["load_balancer_type"], e["listener_protocol"], e["web_acl_arn"]) for e in found] == [
        ("application", "HTTPS", None),  # no web ACL
        ("application", "HTTP", WEB_ACL),
        ("application", "HTTPS", WEB_ACL),
        ("network", "TLS", None),  # null for a network load balancer
        ("network", "TLS", None),
        ("network", "TCP", None),
        ("network", "TCP", None),
    ]


def test_exposures_do_not_depend_on_the_order_of_the_facts():
    first = posture_of(two_load_balancers())
    rng = random.Random(15)
    for _ in range(5):
        raw = two_load_balancers()
        facts = elb(raw)
        rng.shuffle(facts["target_groups"])
        for group in facts["target_groups"]:
            rng.shuffle(group["Targets"])
        items = list(facts["load_balancers"].items())
        rng.shuffle(items)
        facts["load_balancers"] = dict(items)
        for item in facts["load_balancers"].values():
            rng.shuffle(item["Listeners"])
        rng.shuffle(sg(raw, SG_WEB)["IpPermissions"])
        rng.shuffle(raw["vpc"]["security_groups"])
        rng.shuffle(raw["vpc"]["route_tables"])
        assert posture_of(raw) == first


def test_exposures_are_verdicts_of_net_11_and_net_12():
    p = posture_of(two_load_balancers())
    found = p["network"]["exposures"]
    assert verdicts(p) == {
        "NET-11": ("FAILED", {"exposures": [e for e in found if e["listener_protocol"] == "HTTP"]}),
        "NET-12": ("FAILED", {"exposures": [e for e in found if e["load_balancer_arn"] == ALB_B]}),
    }


def test_exposures_through_network_load_balancers_only_leave_net_12_not_applicable():
    p = posture_of(nlb_bundle("TCP", 443, 8443, task_rules=[perm("tcp", 8443, 8443, v4=[W4])]))
    assert verdicts(p) == {"NET-11": ("PASSED", {"exposures": []}), "NET-12": ("NOT_APPLICABLE", {})}


def test_an_alb_without_a_web_acl_fails_net_12():
    raw = elb_bundle()
    elb(raw)["web_acls"][ALB] = None
    p = posture_of(raw)
    assert p["errors"] == {}
    assert p["network"]["exposures"][0]["web_acl_arn"] is None
    assert verdicts(p)["NET-12"] == ("FAILED", {"exposures": p["network"]["exposures"]})


def test_exposures_are_in_the_report_whatever_the_rules_say():
    p = posture_of(two_load_balancers())
    assert task_entry(p)["exposures"] == p["network"]["exposures"]
    assert task_entry(posture_of(bundle()))["exposures"] == []


def test_tasks_sharing_one_vpcs_facts_and_a_memo_get_the_postures_they_get_alone():
    """As a scan builds them: one raw VPC (one target index) for every task in it."""
    registered = two_load_balancers()
    other = copy.deepcopy(registered)
    other["task"]["taskArn"] = other["task"]["taskArn"][:-4] + "ffff"
    other["eni"]["PrivateIpAddress"] = other["eni"]["PrivateIpAddresses"][0]["PrivateIpAddress"] = "10.0.1.99"
    other["vpc"] = registered["vpc"]
    alone = [posture_of(copy.deepcopy(registered)), posture_of(copy.deepcopy(other))]
    memo = {}
    assert [build_posture(registered, memo), build_posture(other, memo)] == alone
    assert alone[0]["network"]["exposures"] and alone[1]["network"]["exposures"] == []


def test_build_posture_does_not_mutate_the_load_balancing_facts():
    raw = two_load_balancers()
    before = copy.deepcopy(raw)
    p = posture_of(raw)
    p["network"]["exposures"][0]["families"].append("ipv9")
    assert raw == before
    assert posture_of(raw) == posture_of(before)


# --- Resources gone between the calls ----------------------------------------------------------


def test_a_load_balancer_gone_between_the_calls_is_no_front_door_and_no_error():
    raw = elb_bundle()
    elb(raw)["load_balancers"] = {}  # LoadBalancerNotFound: left out by the collector
    p = posture_of(raw)
    assert p["errors"] == {} and p["network"]["exposures"] == []
    assert verdicts(p) == {"NET-11": ("NOT_APPLICABLE", {}), "NET-12": ("NOT_APPLICABLE", {})}
    assert task_entry(p)["exposures"] == []


def test_a_listener_gone_between_the_calls_is_no_front_door_and_no_error():
    raw = elb_bundle()
    lb(raw)["Listeners"] = [port_listener(raw, 80)]  # ListenerNotFound: the 443 one left out
    p = posture_of(raw)
    assert p["errors"] == {} and p["network"]["exposures"] == []


def test_a_target_group_gone_between_the_calls_is_no_front_door_and_no_error():
    raw = elb_bundle()
    elb(raw)["target_groups"] = []  # TargetGroupNotFound: left out
    p = posture_of(raw)
    assert p["errors"] == {} and p["network"]["exposures"] == []


def test_one_load_balancer_gone_leaves_the_others_front_doors():
    raw = two_load_balancers()
    del elb(raw)["load_balancers"][NLB]
    assert {e["load_balancer_arn"] for e in exposures(raw)} == {ALB, ALB_B}


# --- Errors -------------------------------------------------------------------------------------

DENIED = "AccessDenied: User is not authorized"


def spoil_target_groups(raw):
    elb(raw)["errors"]["*"] = f"DescribeTargetGroups: {DENIED}"
    elb(raw)["target_groups"] = []
    return "DescribeTargetGroups"


def spoil_target_health(raw):
    elb(raw)["errors"]["*"] = f"DescribeTargetHealth: {DENIED}"
    elb(raw)["target_groups"] = []
    return "DescribeTargetHealth"


def spoil_load_balancer(raw):
    elb(raw)["errors"][ALB] = f"DescribeLoadBalancers: {DENIED}"
    elb(raw)["load_balancers"] = {}
    return "DescribeLoadBalancers"


def spoil_listeners(raw):
    elb(raw)["errors"][ALB] = f"DescribeListeners: {DENIED}"
    lb(raw)["Listeners"] = []
    return "DescribeListeners"


def spoil_rules(raw):
    elb(raw)["errors"][ALB] = f"DescribeRules: {DENIED}"
    for item in lb(raw)["Listeners"]:
        item["Rules"] = []
    return "DescribeRules"


def spoil_subnet(raw):
    task_admits(raw, perm("tcp", 8080, 8080, v4=["10.0.0.0/16"]))  # read the subnet's block
    elb(raw)["errors"][LB_SUBNET] = f"DescribeSubnets: {DENIED}"
    elb(raw)["subnets"] = {}
    return "DescribeSubnets"


def lose_subnet(raw):
    task_admits(raw, perm("tcp", 8080, 8080, v4=["10.0.0.0/16"]))
    del elb(raw)["subnets"][LB_SUBNET]
    return "DescribeSubnets"


def spoil_security_groups(raw):
    raw["errors"]["security_groups"] = f"DescribeSecurityGroups: {DENIED}"
    raw["vpc"]["security_groups"] = []
    return "DescribeSecurityGroups"


def lose_load_balancer_group(raw):
    raw["vpc"]["security_groups"] = [g for g in raw["vpc"]["security_groups"] if g["GroupId"] != SG_ALB]
    return "DescribeSecurityGroups"


def spoil_route_tables(raw):
    raw["errors"]["route_tables"] = f"DescribeRouteTables: {DENIED}"
    raw["vpc"]["route_tables"] = []
    return "DescribeRouteTables"


def spoil_network_acls(raw):
    raw["errors"]["network_acls"] = f"DescribeNetworkAcls: {DENIED}"
    raw["vpc"]["network_acls"] = []
    return "DescribeNetworkAcls"


def spoil_load_balancing(raw):
    raw["errors"]["load_balancing"] = f"DescribeTargetGroups: {DENIED}"
    del raw["vpc"]["load_balancing"]
    return "DescribeTargetGroups"


def nlb_tcp(raw, source: str = "10.0.0.0/16"):
    """The task behind a TCP NLB (its group's attributes are read), admitting ``source``:
    a CIDR containing the NLB's subnet, which admits only without client-IP preservation,
    so the attribute decides the exposure."""
    fresh = nlb_bundle("TCP", 443, 8443, "TCP", "false", task_rules=[perm("tcp", 8443, 8443, v4=[source])])
    raw.clear()
    raw.update(fresh)


def spoil_attributes(raw):
    nlb_tcp(raw)
    elb(raw)["errors"][TG_EDGE] = f"DescribeTargetGroupAttributes: {DENIED}"
    elb(raw)["target_group_attributes"] = {}
    return "DescribeTargetGroupAttributes"


def lose_attributes(raw):
    nlb_tcp(raw)
    elb(raw)["target_group_attributes"] = {}
    return "DescribeTargetGroupAttributes"


SPOILERS = [
    spoil_target_groups,
    spoil_target_health,
    spoil_load_balancer,
    spoil_listeners,
    spoil_rules,
    spoil_subnet,
    lose_subnet,
    spoil_security_groups,
    lose_load_balancer_group,
    spoil_route_tables,
    spoil_network_acls,
    spoil_load_balancing,
    spoil_attributes,
    lose_attributes,
]


@pytest.mark.parametrize("spoil", SPOILERS, ids=lambda f: f.__name__)
def test_a_fact_that_could_change_the_exposures_missing_is_an_error_naming_the_call(spoil):
    raw = elb_bundle()
    call = spoil(raw)
    p = posture_of(raw)
    assert call in p["errors"]["load_balancers"]
    assert p["network"]["exposures"] == []
    # what the exposures depend on stays indexed while they are unknown, as far as it is
    # known: a later change of the task's target groups or load balancers re-audits it (the
    # index lost them all); nothing is known of them when the target groups are not
    registered = [
        g
        for g in (raw["vpc"].get("load_balancing") or {}).get("target_groups") or []
        if TASK_IP in json.dumps(g)
    ]
    expected = {g["TargetGroupArn"] for g in registered} | {
        a for g in registered for a in g["LoadBalancerArns"]
    }
    assert expected <= set(p["network"]["load_balancer_resources"])
    assert expected or spoil in (spoil_target_groups, spoil_target_health, spoil_load_balancing)
    found = verdicts(p)
    for rule in ("NET-11", "NET-12"):
        status, evidence = found[rule]
        assert status == "ERROR" and call in evidence["error"], (rule, evidence)
    assert task_entry(p)["exposures"] is None


@pytest.mark.parametrize("spoil", [spoil_attributes, lose_attributes], ids=lambda f: f.__name__)
def test_client_ip_preservation_unread_is_no_error_where_it_cannot_change_the_exposure(spoil):
    """A world rule (or the load balancer's own group) admits the NLB's clients whether it
    preserves their addresses or not: the attribute is not asked, the exposure stands."""
    raw = elb_bundle()
    spoil(raw)
    nlb_tcp(raw, source=W4)
    elb(raw)["target_group_attributes"] = {}
    elb(raw)["errors"][TG_EDGE] = f"DescribeTargetGroupAttributes: {DENIED}"
    p = posture_of(raw)
    assert "load_balancers" not in p["errors"]
    assert [(e["listener_port"], e["target_port"], e["families"]) for e in p["network"]["exposures"]] == [
        (443, 8443, ["ipv4"])
    ]
    assert verdicts(p)["NET-11"][0] == "PASSED"


@pytest.mark.parametrize("missing", ["route table", "network ACL"])
def test_a_load_balancer_subnet_without_route_table_or_nacl_is_an_error(missing):
    """Subnet B has no explicit association: without a main route table (or a default
    NACL) its routes (or NACL) are unknown."""
    raw = elb_bundle()
    lb(raw)["AvailabilityZones"] = [{"ZoneName": "eu-west-1b", "SubnetId": LB_SUBNET_B}]
    if missing == "route table":
        main = rt(raw, "rtb-0main0000000000001")
        main["Associations"] = [a for a in main["Associations"] if not a["Main"]]
    else:
        for acl in raw["vpc"]["network_acls"]:
            acl["IsDefault"] = False
    p = posture_of(raw)
    assert f"no {missing} associated with {LB_SUBNET_B}" in p["errors"]["load_balancers"]
    assert verdicts(p)["NET-11"][0] == "ERROR" and task_entry(p)["exposures"] is None


def test_a_target_id_that_is_no_address_is_ignored():
    raw = elb_bundle()
    tg(raw)["Targets"].insert(0, target("not-an-address", 8080))
    assert doors(raw) == [BASE_DOOR]


def test_load_balancing_facts_absent_from_the_bundle_are_an_error():
    raw = elb_bundle()
    del raw["vpc"]["load_balancing"]
    p = posture_of(raw)
    assert "not collected" in p["errors"]["load_balancers"]
    assert verdicts(p)["NET-11"][0] == "ERROR" and task_entry(p)["exposures"] is None


def test_the_target_groups_or_targets_unreadable_spoil_every_task_of_the_vpc():
    """Whether a task is registered cannot be known: even an unregistered one."""
    for spoil in (spoil_target_groups, spoil_target_health):
        raw = elb_bundle()
        tg(raw)["Targets"] = [target("10.0.1.77", 8080)]
        call = spoil(raw)
        assert call in posture_of(raw)["errors"]["load_balancers"]


LOAD_BALANCER_SIDE = [
    spoil_load_balancer,
    spoil_listeners,
    spoil_rules,
    spoil_subnet,
    lose_subnet,
    lose_load_balancer_group,
    spoil_route_tables,
    spoil_network_acls,
    spoil_attributes,
    lose_attributes,
]


@pytest.mark.parametrize("spoil", LOAD_BALANCER_SIDE, ids=lambda f: f.__name__)
def test_a_task_registered_nowhere_is_not_spoiled_by_load_balancer_side_errors(spoil):
    raw = elb_bundle()
    spoil(raw)
    for group in elb(raw)["target_groups"]:
        group["Targets"] = [target("10.0.1.77", t["Target"]["Port"]) for t in group["Targets"]]
    p = posture_of(raw)
    assert "load_balancers" not in p["errors"] and "web_acl" not in p["errors"]
    assert p["network"]["exposures"] == []
    assert verdicts(p) == {"NET-11": ("NOT_APPLICABLE", {}), "NET-12": ("NOT_APPLICABLE", {})}
    assert task_entry(p)["exposures"] == []


@pytest.mark.parametrize("spoil", [spoil_route_tables, spoil_network_acls], ids=lambda f: f.__name__)
def test_the_subnet_facts_of_a_load_balancer_without_a_front_door_to_the_task_are_not_read(spoil):
    """Registered in a group of an internet-facing ALB none of whose listeners forwards to
    it: no front door, so its subnets' routes and NACLs cannot change the exposures."""
    raw = elb_bundle()
    https = port_listener(raw, 443)
    https["DefaultActions"] = https["Rules"][-1]["Actions"] = [forward(TG_OTHER)]
    spoil(raw)
    p = posture_of(raw)
    assert "load_balancers" not in p["errors"], p["errors"]["load_balancers"]
    assert p["network"]["exposures"] == []
    assert verdicts(p) == {"NET-11": ("NOT_APPLICABLE", {}), "NET-12": ("NOT_APPLICABLE", {})}


@pytest.mark.parametrize("world_first", [True, False])
def test_a_subnet_that_cannot_change_the_admission_is_no_error_whatever_the_rule_order(world_first):
    """The task's group admits the world: the load balancer's subnets (unreadable) could
    only admit more. The verdict must not depend on the order of the group's rules."""
    raw = elb_bundle()
    rules = [perm("tcp", 8080, 8080, v4=["192.168.0.0/16"]), perm("tcp", 8080, 8080, v4=[W4])]
    task_admits(raw, *(reversed(rules) if world_first else rules))
    elb(raw)["errors"][LB_SUBNET] = f"DescribeSubnets: {DENIED}"
    elb(raw)["subnets"] = {}
    assert doors(raw) == [BASE_DOOR]


def test_a_subnet_containing_cidr_admits_even_when_another_subnet_is_unreadable():
    raw = elb_bundle()
    lb(raw)["AvailabilityZones"].append({"ZoneName": "eu-west-1b", "SubnetId": LB_SUBNET_B})
    assert sorted([LB_SUBNET, LB_SUBNET_B])[0] == LB_SUBNET_B  # B is looked at first
    task_admits(raw, perm("tcp", 8080, 8080, v4=["10.0.0.0/24"]))  # A's block
    elb(raw)["errors"][LB_SUBNET_B] = f"DescribeSubnets: {DENIED}"
    del elb(raw)["subnets"][LB_SUBNET_B]
    assert doors(raw) == [BASE_DOOR]
    task_admits(raw, perm("tcp", 8080, 8080, v4=["10.0.2.0/23"]))  # B's block could be in it
    assert "DescribeSubnets" in posture_of(raw)["errors"]["load_balancers"]


@pytest.mark.parametrize("missing_first", [True, False])
def test_a_missing_load_balancer_group_beside_one_admitting_the_world_is_no_error(missing_first):
    """One of the ALB's groups admits the world on 443: another (not found) could only
    admit more. The verdict must not depend on the order of the ALB's groups."""
    raw = elb_bundle()
    groups = ["sg-0dead0000000dead0", SG_ALB]
    lb(raw)["SecurityGroups"] = groups if missing_first else groups[::-1]
    assert doors(raw) == [BASE_DOOR]
    alb_group_admits(raw)  # then the missing one decides
    assert "sg-0dead0000000dead0" in posture_of(raw)["errors"]["load_balancers"]


def test_a_task_whose_own_security_groups_are_unknown_is_spoiled_only_when_registered():
    raw = elb_bundle()
    raw["eni"]["Groups"].append({"GroupName": "gone", "GroupId": "sg-0dead0000000dead0"})
    p = posture_of(raw)
    assert "sg-0dead0000000dead0" in p["errors"]["load_balancers"]
    tg(raw)["Targets"] = [target("10.0.1.77", 8080)]
    assert "load_balancers" not in posture_of(raw)["errors"]


def test_an_error_of_another_load_balancer_does_not_spoil_the_task():
    raw = elb_bundle()
    elb(raw)["errors"][ALB_B] = f"DescribeListeners: {DENIED}"
    elb(raw)["errors"][TG_OTHER] = f"DescribeTargetGroupAttributes: {DENIED}"
    elb(raw)["errors"][LB_SUBNET_B] = f"DescribeSubnets: {DENIED}"
    assert doors(raw) == [BASE_DOOR]


def test_the_vanished_eni_spoils_the_exposures_too():
    raw = elb_bundle()
    raw["eni"] = None
    raw["errors"] = {"eni": "DescribeNetworkInterfaces: eni not found"}
    p = posture_of(raw)
    assert "eni not found" in p["errors"]["load_balancers"]
    assert task_entry(p)["exposures"] is None


# --- Errors: the web ACL -------------------------------------------------------------------------

WAF_DENIED = "GetWebACLForResource: WAFAccessDeniedException: not authorized"


def test_an_unreadable_web_acl_is_net_12_error_and_leaves_net_11_alone():
    raw = elb_bundle()
    del elb(raw)["web_acls"][ALB]
    elb(raw)["web_acl_errors"][ALB] = WAF_DENIED
    p = posture_of(raw)
    assert p["errors"] == {"web_acl": WAF_DENIED}
    assert p["network"]["unknown_web_acls"] == [ALB]
    assert [e["web_acl_arn"] for e in p["network"]["exposures"]] == [None]
    found = verdicts(p)
    assert found["NET-12"] == ("ERROR", {"error": f"web_acl: {WAF_DENIED}"})
    assert found["NET-11"] == ("PASSED", {"exposures": []})
    assert task_entry(p)["exposures"] is None


def test_an_unreadable_web_acl_leaves_a_failing_net_11_failed():
    raw = elb_bundle()
    del elb(raw)["web_acls"][ALB]
    elb(raw)["web_acl_errors"][ALB] = WAF_DENIED
    http = port_listener(raw, 80)
    http["DefaultActions"] = http["Rules"][-1]["Actions"] = [forward(TG_WEB)]
    p = posture_of(raw)
    assert verdicts(p)["NET-11"][0] == "FAILED"
    assert verdicts(p)["NET-12"][0] == "ERROR"


def test_an_unreadable_web_acl_is_net_12_failed_when_another_exposure_fails_it():
    raw = two_load_balancers()
    del elb(raw)["web_acls"][ALB]
    elb(raw)["web_acl_errors"][ALB] = WAF_DENIED
    p = posture_of(raw)
    assert p["errors"] == {"web_acl": WAF_DENIED}
    status, evidence = verdicts(p)["NET-12"]
    assert status == "FAILED"
    assert [e["load_balancer_arn"] for e in evidence["exposures"]] == [ALB_B]  # not the unknown one
    assert task_entry(p)["exposures"] is None


def test_an_unreadable_web_acl_of_a_load_balancer_not_exposing_the_task_is_no_error():
    raw = elb_bundle()
    del elb(raw)["web_acls"][ALB]
    elb(raw)["web_acl_errors"][ALB] = WAF_DENIED
    task_admits(raw)  # the task admits nothing: no exposure
    p = posture_of(raw)
    assert p["errors"] == {} and p["network"]["unknown_web_acls"] == []
    assert task_entry(p)["exposures"] == []


def test_a_web_acl_not_collected_is_not_read_as_none():
    """No answer of GetWebACLForResource (neither an ACL, nor none, nor an error) is not
    'names none': NET-12 cannot fail on it."""
    raw = elb_bundle()
    elb(raw)["web_acls"] = {}
    p = posture_of(raw)
    assert "GetWebACLForResource" in p["errors"]["web_acl"]
    assert p["network"]["unknown_web_acls"] == [ALB]
    assert verdicts(p)["NET-12"][0] == "ERROR"
    assert task_entry(p)["exposures"] is None


# --- the report ---------------------------------------------------------------------------------


def test_the_report_lists_exposures_null_on_either_error_and_a_list_otherwise():
    p = posture_of(elb_bundle())
    assert task_entry(p)["exposures"] == p["network"]["exposures"] != []
    for fact in ("load_balancers", "web_acl"):
        spoiled = copy.deepcopy(p)
        spoiled["errors"][fact] = "x: y"
        assert task_entry(spoiled)["exposures"] is None
    assert task_entry(posture_of(bundle()))["exposures"] == []


# --- the pure helpers, directly --------------------------------------------------------------------


def test_transports_of_each_listener_protocol():
    assert {p: ingress.transports(p) for p, _, _ in TRANSPORT_CASES} == {
        "HTTP": ("tcp",),
        "HTTPS": ("tcp",),
        "TCP": ("tcp",),
        "TLS": ("tcp",),
        "UDP": ("udp",),
        "QUIC": ("udp",),
        "TCP_UDP": ("tcp", "udp"),
        "TCP_QUIC": ("tcp", "udp"),
    }
    assert ingress.transports("GENEVE") == () and ingress.transports(None) == ()


def test_the_target_index_is_keyed_by_compressed_address_and_keeps_the_vpcs_ip_groups_only():
    groups = [
        target_group(
            TG_WEB, targets=[target("2A05:D018:ABCD:1:0:0:0:25", 8080), target(TASK_IP, 81, "draining")]
        ),
        target_group(TG_OTHER, targets=[target(TASK_IP, 9090)], vpc=OTHER_VPC),
        target_group(TG_API, targets=[target(TASK_IP, 9000)], target_type="instance"),
    ]
    index = ingress.target_index(groups, VPC)
    assert list(index) == [TASK_IPV6]
    assert [(g["TargetGroupArn"], a, p) for g, a, p in index[TASK_IPV6]] == [(TG_WEB, TASK_IPV6, 8080)]

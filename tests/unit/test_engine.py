"""The engine: ERROR propagation, applicability, exemptions, parameter resolution, purity."""

import copy
import dataclasses
import datetime as dt
import json
import random
from pathlib import Path

import pytest
from fargate_audit.core import checks, engine
from fargate_audit.core.errors import ConfigError
from fargate_audit.core.rules import load_catalog

REPO = Path(__file__).resolve().parents[2]
BASE = json.loads((REPO / "tests" / "fixtures" / "base_posture.json").read_text())
CATALOG = load_catalog(REPO / "rules")
FACTS = [
    "containers", "cluster", "platform_version", "eni", "security_groups",
    "route_table", "egress", "nacl", "flow_logs", "vpc_endpoints", "dns_query_logging",
]  # fmt: skip
TODAY = dt.date(2030, 6, 15)
DIGEST = "sha256:9b2c6f0e4a1d8b7c3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"


def deep_merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


def posture(patch=None, task="6f1c2a9e0b7d4c3e8a5f4b2d1e0c9a8b", **top):
    """The base posture with a patch, under another task id when asked."""
    result = deep_merge(BASE, patch or {})
    result["task_arn"] = f"arn:aws:ecs:eu-west-1:123456789012:task/prod/{task}"
    result.update(top)
    return result


def by_rule(outcome, task_arn=None):
    return {r["rule_id"]: r for r in outcome.results if task_arn in (None, r["task_arn"])}


def container(image, registry, private_ecr):
    return {
        "name": "web",
        "image": image,
        "registry": registry,
        "digest": None,
        "private_ecr": private_ecr,
        "log_driver": "awslogs",
        "readonly_root_filesystem": True,
    }


PUBLIC_ONLY = {"containers": [container("public.ecr.aws/nginx/nginx:1.27", "public.ecr.aws", False)]}


# --------------------------------------------------------------------------- the base posture


def test_every_rule_passes_on_the_base_posture():
    outcome = engine.evaluate(CATALOG, [BASE])
    posture_ids = [rule.id for rule in CATALOG.posture_rules]
    assert {r["rule_id"]: r["status"] for r in outcome.results} == dict.fromkeys(posture_ids, "PASSED")


def test_a_check_that_cannot_judge_a_tasks_facts_is_that_rules_error_only():
    """Facts out of any shape AWS documents (a security group that is a number) make NET-06's
    check raise: that rule is ERROR naming the check and the exception's type, the audit
    goes on and the other rules are judged as before."""
    posture = copy.deepcopy(BASE)
    posture["network"]["security_groups"] = [5]
    outcome = engine.evaluate(CATALOG, [posture])
    by_rule = {r["rule_id"]: r for r in outcome.results}
    assert by_rule["NET-06"]["status"] == "ERROR"
    assert by_rule["NET-06"]["evidence"]["error"] == (
        "NET-06: check default_security_group could not judge this task's facts (AttributeError)"
    )
    assert by_rule["IMG-01"]["status"] == "PASSED" and by_rule["LOG-01"]["status"] == "PASSED"


def test_workload_discovery_rules_never_yield_a_posture_result():
    outcome = engine.evaluate(CATALOG, [BASE])
    assert CATALOG.discovery_rules
    assert not {r["rule_id"] for r in outcome.results} & {rule.id for rule in CATALOG.discovery_rules}


def test_result_shape_and_metadata_come_from_the_rule():
    result = by_rule(engine.evaluate(CATALOG, [BASE]))["NET-02"]
    assert set(result) == {"task_arn", "rule_id", "status", "severity", "title", "evidence"}
    assert (result["severity"], result["title"]) == ("CRITICAL", "Task is reachable from the internet")
    assert result["task_arn"] == BASE["task_arn"]


def test_counts_cover_every_status():
    outcome = engine.evaluate(CATALOG, [BASE, posture({"errors": {"eni": "x"}}, task="b")])
    assert set(outcome.counts) == {"PASSED", "FAILED", "NOT_APPLICABLE", "ERROR"}
    assert sum(outcome.counts.values()) == len(outcome.results) == 2 * len(CATALOG.posture_rules)
    assert outcome.counts["ERROR"] == 13  # the twelve NET rules and EGR-02


# --------------------------------------------------------------------------- ERROR propagation


@pytest.mark.parametrize("fact", FACTS)
def test_a_fact_in_error_makes_exactly_the_rules_needing_it_error(fact):
    message = "DescribeSomething: AccessDenied: not authorized"
    outcome = engine.evaluate(CATALOG, [posture({"errors": {fact: message}})])
    unharmed = by_rule(engine.evaluate(CATALOG, [posture({})]))
    for rule in CATALOG.posture_rules:
        result = by_rule(outcome)[rule.id]
        needs = fact in rule.requires or (rule.applicability and fact in rule.applicability.requires)
        if fact in rule.tolerates:  # its check decides: the verdict it has without the error, or ERROR
            assert result == unharmed[rule.id] or (
                result["status"] == "ERROR" and result["evidence"] == {"error": f"{fact}: {message}"}
            ), rule.id
        elif needs:
            assert result["status"] == "ERROR", rule.id
            assert result["evidence"] == {"error": f"{fact}: {message}"}, rule.id
        else:
            assert result["status"] == "PASSED", rule.id


def test_every_net_rule_errors_when_the_eni_is_unknown():
    outcome = engine.evaluate(
        CATALOG, [posture({"errors": {"eni": "DescribeNetworkInterfaces: eni-0 vanished"}})]
    )
    net = {rule_id: r for rule_id, r in by_rule(outcome).items() if rule_id.startswith("NET-")}
    assert len(net) == 12
    assert {r["status"] for r in net.values()} == {"ERROR"}
    assert all(
        "eni: DescribeNetworkInterfaces: eni-0 vanished" in r["evidence"]["error"] for r in net.values()
    )


def test_net_10_is_not_applicable_without_private_ecr_image_even_when_the_eni_is_unknown():
    patch = {
        **PUBLIC_ONLY,
        "errors": {"eni": "vanished", "vpc_endpoints": "vanished", "route_table": "vanished"},
    }
    result = by_rule(engine.evaluate(CATALOG, [posture(patch)]))["NET-10"]
    assert result["status"] == "NOT_APPLICABLE"


def test_net_10_errors_with_a_private_ecr_image_when_the_eni_is_unknown():
    result = by_rule(engine.evaluate(CATALOG, [posture({"errors": {"eni": "vanished"}})]))["NET-10"]
    assert result["status"] == "ERROR"
    assert result["evidence"]["error"] == "eni: vanished"


def test_net_10_errors_when_the_containers_are_unknown():
    result = by_rule(
        engine.evaluate(CATALOG, [posture({"errors": {"containers": "DescribeTaskDefinition: x"}})])
    )
    assert result["NET-10"]["status"] == "ERROR"
    assert result["NET-10"]["evidence"]["error"] == "containers: DescribeTaskDefinition: x"


def test_net_10_is_not_applicable_without_private_ecr_image_when_facts_are_fine():
    assert by_rule(engine.evaluate(CATALOG, [posture(PUBLIC_ONLY)]))["NET-10"]["status"] == "NOT_APPLICABLE"


def test_error_names_every_failed_fact_in_the_rule_order():
    errors = {"nacl": "DescribeNetworkAcls: Throttling", "eni": "DescribeNetworkInterfaces: AccessDenied"}
    result = by_rule(engine.evaluate(CATALOG, [posture({"errors": errors})]))["NET-02"]
    assert result["evidence"]["error"] == (
        "eni: DescribeNetworkInterfaces: AccessDenied; nacl: DescribeNetworkAcls: Throttling"
    )


def test_error_wins_over_a_failing_condition():
    patch = {
        "cluster": {"container_insights": "disabled"},
        "errors": {"cluster": "DescribeClusters: AccessDenied"},
    }
    assert by_rule(engine.evaluate(CATALOG, [posture(patch)]))["LOG-02"]["status"] == "ERROR"


def test_unparsable_platform_version_is_an_error_not_a_pass():
    result = by_rule(engine.evaluate(CATALOG, [posture({"platform_version": "1.4.0-beta"})]))["CFG-01"]
    assert result["status"] == "ERROR"
    assert result["evidence"] == {"error": "platform_version: '1.4.0-beta' is not a dotted version number"}


def test_missing_platform_version_is_an_error_even_when_not_listed_in_errors():
    result = by_rule(engine.evaluate(CATALOG, [posture({"platform_version": None})]))["CFG-01"]
    assert result["status"] == "ERROR"
    assert result["evidence"]["error"].startswith("platform_version: not reported")


def test_unreadable_s3_endpoint_policy_is_an_error():
    endpoints = copy.deepcopy(BASE["network"]["vpc_endpoints"])
    s3 = next(e for e in endpoints if e["service"] == "s3")
    s3.update(policy=None, policy_error="PolicyDocument is not valid JSON")
    result = by_rule(engine.evaluate(CATALOG, [posture({"network": {"vpc_endpoints": endpoints}})]))["NET-09"]
    assert result["status"] == "ERROR"
    assert "vpc_endpoints: vpce-0e1e2e3e4e5e6e7e8: policy unreadable" in result["evidence"]["error"]


def test_unknown_posture_version_is_refused():
    with pytest.raises(ValueError, match="posture_version"):
        engine.evaluate(CATALOG, [posture(posture_version=2)])


# --------------------------------------------------------------------------- exemptions

FAILING_NET05 = {"network": {"egress": {"ipv4": {"path": "nat-gateway>internet-gateway", "targets": []}}}}


def exemption(
    rule="NET-05", workload="prod/service:*", expires="2030-12-31", reason="inspection VPC migration"
):
    return {"rule": rule, "workload": workload, "reason": reason, "expires": expires}


def test_active_exemption_turns_failed_into_passed_with_its_reason():
    outcome = engine.evaluate(CATALOG, [posture(FAILING_NET05)], {"exemptions": [exemption()]}, today=TODAY)
    result = by_rule(outcome)["NET-05"]
    assert result["status"] == "PASSED"
    assert result["evidence"]["exempted"] == {"reason": "inspection VPC migration", "expires": "2030-12-31"}
    assert result["evidence"]["families"] == ["ipv4"]
    assert outcome.expired_exemptions == []


def test_expired_exemption_is_ignored_and_reported_once():
    old = exemption(expires="2030-06-14")
    postures = [posture(FAILING_NET05, task="a"), posture(FAILING_NET05, task="b")]
    outcome = engine.evaluate(CATALOG, postures, {"exemptions": [old]}, today=TODAY)
    assert {r["status"] for r in outcome.results if r["rule_id"] == "NET-05"} == {"FAILED"}
    assert outcome.expired_exemptions == [old]


def test_every_expired_exemption_is_reported_even_when_it_matches_no_failure():
    """interface.md: "an expired exemption is ignored and reported": one whose rule passes
    now, or whose workload no longer runs, is stale all the same and must be seen (renewed
    or removed); an active one is not listed."""
    stale = [
        exemption(expires="2020-01-01", reason="fails: matched"),
        exemption(rule="NET-06", expires="2020-01-01", reason="rule passes"),
        exemption(workload="retired-cluster/*", expires="2020-01-01", reason="workload gone"),
        exemption(workload="other/*", reason="still valid"),
    ]
    outcome = engine.evaluate(CATALOG, [posture(FAILING_NET05)], {"exemptions": stale}, today=TODAY)
    assert [e["reason"] for e in outcome.expired_exemptions] == [
        "fails: matched",
        "rule passes",
        "workload gone",
    ]
    assert by_rule(outcome)["NET-05"]["status"] == "FAILED"
    discovered = engine.evaluate_discovery(CATALOG, discovery(), {"exemptions": stale}, TODAY)
    assert len(discovered.expired_exemptions) == 3


def test_exemption_expiring_today_still_applies():
    params = {"exemptions": [exemption(expires=TODAY.isoformat())]}
    assert by_rule(engine.evaluate(CATALOG, [posture(FAILING_NET05)], params, today=TODAY))["NET-05"][
        "status"
    ] == ("PASSED")


def test_wildcard_rule_exemption_covers_every_failed_rule_but_not_errors_or_passes():
    patch = {**FAILING_NET05, "cluster": {"container_insights": "disabled"}, "errors": {"nacl": "denied"}}
    params = {"exemptions": [exemption(rule="*", workload="prod/*")]}
    results = by_rule(engine.evaluate(CATALOG, [posture(patch)], params, today=TODAY))
    assert results["NET-05"]["status"] == results["LOG-02"]["status"] == "PASSED"
    assert "exempted" in results["LOG-02"]["evidence"]
    assert results["NET-08"]["status"] == "ERROR"
    assert "exempted" not in results["CFG-01"]["evidence"]


def test_exemption_for_another_workload_does_not_apply():
    params = {"exemptions": [exemption(workload="staging/*")]}
    results = by_rule(engine.evaluate(CATALOG, [posture(FAILING_NET05)], params, today=TODAY))
    assert results["NET-05"]["status"] == "FAILED"


def test_workload_glob_selects_among_tasks():
    web = posture(FAILING_NET05, task="a")
    batch = posture(FAILING_NET05, task="b", group="family:batch", workload="prod/family:batch")
    params = {"exemptions": [exemption(workload="prod/service:*")]}
    outcome = engine.evaluate(CATALOG, [web, batch], params, today=TODAY)
    assert by_rule(outcome, web["task_arn"])["NET-05"]["status"] == "PASSED"
    assert by_rule(outcome, batch["task_arn"])["NET-05"]["status"] == "FAILED"


def test_today_is_required_when_there_are_exemptions():
    with pytest.raises(ValueError, match="today"):
        engine.evaluate(CATALOG, [BASE], {"exemptions": [exemption()]})


def test_params_are_validated_by_the_engine():
    with pytest.raises(ConfigError, match="colour: unknown key"):
        engine.evaluate(CATALOG, [BASE], {"colour": "red"})


# --------------------------------------------------------------------------- parameters


def test_registry_placeholders_resolve_to_each_tasks_account_and_region():
    image = f"210987654321.dkr.ecr.us-east-1.amazonaws.com/web@{DIGEST}"
    other = posture(
        {"containers": [container(image, "210987654321.dkr.ecr.us-east-1.amazonaws.com", True)]},
        task="b",
        account_id="210987654321",
        region="us-east-1",
    )
    same_image_elsewhere = posture(
        {"containers": [container(image, "210987654321.dkr.ecr.us-east-1.amazonaws.com", True)]}, task="a"
    )
    outcome = engine.evaluate(CATALOG, [other, same_image_elsewhere])
    assert by_rule(outcome, other["task_arn"])["IMG-01"]["status"] == "PASSED"
    assert by_rule(outcome, same_image_elsewhere["task_arn"])["IMG-01"]["status"] == "FAILED"


def test_s3_bucket_placeholders_resolve_to_each_tasks_region():
    params = {"approved_s3_buckets": ["prod-{region}-starport-layer-bucket"]}
    moved = posture(task="b", region="us-east-1")  # its endpoint policy still names eu-west-1's bucket
    outcome = engine.evaluate(CATALOG, [BASE, moved], params)
    assert by_rule(outcome, BASE["task_arn"])["NET-09"]["status"] == "PASSED"
    failed = by_rule(outcome, moved["task_arn"])["NET-09"]
    assert failed["status"] == "FAILED"
    assert failed["evidence"]["unapproved_resources"] == [
        "arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/*"
    ]


def test_each_check_receives_only_the_parameters_its_rule_declares():
    seen = {}

    def spy(name, function):
        def wrapped(p, params):
            seen[name] = set(params)
            return function(p, params)

        return wrapped

    spied = dataclasses.replace(
        CATALOG, rules=tuple(dataclasses.replace(r, function=spy(r.check, r.function)) for r in CATALOG.rules)
    )
    engine.evaluate(spied, [BASE])
    assert {rule.check: set(rule.parameters) for rule in CATALOG.posture_rules} == seen


# --------------------------------------------------------------------------- purity and order


def _fixture_postures():
    for rule in CATALOG.posture_rules:
        for fixtures in rule.fixtures.values():
            for i, fixture in enumerate(fixtures):
                yield posture(fixture["patch"], task=f"{rule.id}-{i}-{fixture['name']}")


def test_postures_are_not_mutated():
    postures = list(_fixture_postures())
    before = copy.deepcopy(postures)
    engine.evaluate(CATALOG, postures, {"approved_s3_buckets": ["x-*"]})
    assert postures == before


def test_evidence_does_not_alias_the_posture():
    failing = posture({"network": {"security_groups": [{"id": "sg-1", "name": "default"}]}})
    result = by_rule(engine.evaluate(CATALOG, [failing]))["NET-06"]
    result["evidence"]["security_groups"][0]["name"] = "changed"
    assert failing["network"]["security_groups"][0]["name"] == "default"


def _scribble(value):
    """Mutate every container inside ``value`` (what a careless consumer of results might do)."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _scribble(item)
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("scribbled")


def test_no_rule_evidence_aliases_its_posture_for_any_fixture():
    postures = list(_fixture_postures())
    before = copy.deepcopy(postures)
    results = engine.evaluate(CATALOG, postures, {"approved_s3_buckets": ["x-*"]}).results
    for result in results:
        _scribble(result["evidence"])
    assert postures == before


def test_results_are_ordered_by_task_then_rule_and_independent_of_input_order():
    postures = list(_fixture_postures())
    first = engine.evaluate(CATALOG, postures)
    random.Random(7).shuffle(postures)
    second = engine.evaluate(CATALOG, postures)
    assert first == second
    keys = [(r["task_arn"], r["rule_id"]) for r in first.results]
    assert keys == sorted(keys)


def test_no_environment_value_reaches_evidence():
    patch = {
        "environment": [
            {"container": "web", "name": "DB_PASSWORD", "source": "definition", "trivial_value": False,
             "value": "hunter2-s3cr3t"},
        ]
    }  # fmt: skip
    outcome = engine.evaluate(CATALOG, [posture(patch)])
    assert by_rule(outcome)["CFG-02"]["status"] == "FAILED"
    assert "hunter2-s3cr3t" not in json.dumps(outcome.results)


# --------------------------------------------------------------------------- discoveries

BASE_DISCOVERY = json.loads((REPO / "tests" / "fixtures" / "base_discovery.json").read_text())


def discovery(*names, **top):
    """The base discovery without flow data (EGR-03 gives no result) and ``names`` resolved."""
    result = copy.deepcopy(BASE_DISCOVERY) | {"flows": [], "flow_records": 0}
    result["destinations"] += [{"name": name, "query_type": "A", "count": 1} for name in names]
    result.update(top)
    return result


def test_evaluate_discovery_yields_one_result_per_discovery_rule_for_the_workload():
    outcome = engine.evaluate_discovery(CATALOG, discovery("registry-1.docker.io"))
    (result,) = outcome.results
    assert result == {
        "workload": "prod/service:web",
        "rule_id": "EGR-01",
        "status": "FAILED",
        "severity": "HIGH",
        "title": "Task resolved an unapproved domain",
        "evidence": {"unapproved_domains": ["registry-1.docker.io"], "unapproved_count": 1},
    }
    assert engine.evaluate_discovery(CATALOG, discovery()).results[0]["status"] == "PASSED"


def test_egr03_joins_the_discovery_results_when_the_workload_has_flow_data():
    direct = {
        "address": "198.51.100.23",
        "protocol": "tcp",
        "port": 4444,
        "action": "ACCEPT",
        "packets": 9,
        "bytes_out": 5000,
        "first_seen": "2025-06-02T09:00:00Z",
        "last_seen": "2025-06-02T09:01:00Z",
        "answers": [],
    }
    flows = copy.deepcopy(BASE_DISCOVERY)["flows"]
    outcome = engine.evaluate_discovery(CATALOG, discovery(flows=[*flows, direct], flow_records=3))
    by_rule = {r["rule_id"]: r for r in outcome.results}
    assert sorted(by_rule) == ["EGR-01", "EGR-03"]
    assert by_rule["EGR-03"]["status"] == "FAILED" and by_rule["EGR-03"]["severity"] == "HIGH"
    assert by_rule["EGR-03"]["evidence"]["unresolved_destinations"] == [
        {"address": "198.51.100.23", "protocol": "tcp", "port": 4444, "bytes_out": 5000}
    ]
    named = engine.evaluate_discovery(CATALOG, discovery(flows=flows, flow_records=3))
    assert {r["rule_id"]: r["status"] for r in named.results} == {"EGR-01": "PASSED", "EGR-03": "PASSED"}
    exempt = {
        "exemptions": [
            {"rule": "EGR-03", "workload": "prod/*", "reason": "partner VPN", "expires": "2030-12-31"}
        ]
    }
    outcome = engine.evaluate_discovery(CATALOG, discovery(flows=[direct], flow_records=1), exempt, TODAY)
    assert {r["rule_id"]: r["status"] for r in outcome.results}["EGR-03"] == "PASSED"


def test_bad_egress_parameters_are_one_clear_error():
    from fargate_audit.core.errors import ConfigError
    from fargate_audit.core.params import validate_params

    with pytest.raises(ConfigError, match=r"approved_egress_cidrs.*'10\.0\.0\.300/8' is not a CIDR"):
        validate_params({"approved_egress_cidrs": ["10.0.0.300/8"]}, CATALOG)
    with pytest.raises(ConfigError, match=r"dns_answer_lookback.*'8d' is above 7 days"):
        validate_params({"dns_answer_lookback": "8d"}, CATALOG)
    with pytest.raises(ConfigError, match="dns_answer_lookback"):
        validate_params({"dns_answer_lookback": "a day"}, CATALOG)
    assert validate_params({"dns_answer_lookback": 3600}, CATALOG) == {"dns_answer_lookback": 3600}
    # JSON Schema's "integer" admits 3600.0: one error naming the key, not an unexpected ValueError
    with pytest.raises(ConfigError, match=r"dns_answer_lookback.*3600\.0 is not an integer"):
        validate_params({"dns_answer_lookback": 3600.0}, CATALOG)
    # answers are kept per hour: a shorter lookback could end between two of one hour's
    for short in ("10m", 600, "59m", "0s"):
        with pytest.raises(ConfigError, match=r"dns_answer_lookback.* is below 1 hour"):
            validate_params({"dns_answer_lookback": short}, CATALOG)


def test_discovery_registry_placeholders_resolve_to_the_workloads_account_and_region():
    own = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    params = {"approved_domains": [], "approved_registries": ["{account}.dkr.ecr.{region}.amazonaws.com"]}
    outcome = engine.evaluate_discovery(CATALOG, discovery(own, own.upper() + "."), params)
    assert outcome.results[0]["status"] == "FAILED"  # the base destinations are not approved now
    only_own = dict(discovery(), destinations=[{"name": own + ".", "query_type": "A"}])
    assert engine.evaluate_discovery(CATALOG, only_own, params).results[0]["status"] == "PASSED"
    other = dict(only_own, account_id="210987654321")
    assert engine.evaluate_discovery(CATALOG, other, params).results[0]["status"] == "FAILED"


def test_discovery_exemption_matches_the_workload_and_expired_ones_are_reported():
    params = {
        "exemptions": [
            {"rule": "EGR-01", "workload": "prod/*", "reason": "vendor SDK, SEC-7", "expires": "2030-12-31"},
            {"rule": "*", "workload": "prod/service:web", "reason": "old", "expires": "2020-01-01"},
        ]
    }
    outcome = engine.evaluate_discovery(CATALOG, discovery("telemetry.vendor.example"), params, TODAY)
    (result,) = outcome.results
    assert result["status"] == "PASSED"
    assert result["evidence"]["exempted"] == {"reason": "vendor SDK, SEC-7", "expires": "2030-12-31"}
    assert [e["reason"] for e in outcome.expired_exemptions] == ["old"]
    with pytest.raises(ValueError, match="today"):
        engine.evaluate_discovery(CATALOG, discovery(), params)


# --------------------------------------------------------------------------- checks registered with inputs


def _fixtures_with_postures():
    from fargate_audit.core.rules import WORKLOAD_DISCOVERY

    for rule in CATALOG.rules:
        if rule.evaluation == WORKLOAD_DISCOVERY:
            continue
        for fixtures in rule.fixtures.values():
            for fixture in fixtures:
                yield fixture, deep_merge(BASE, fixture.get("patch") or {})


def _reduced(full: dict, paths) -> dict:
    """A posture holding exactly the declared parts of ``full`` and nothing else."""
    reduced: dict = {}
    for path in paths:
        *parents, last = path.split(".")
        source, target = full, reduced
        for key in parents:
            source = source.get(key) or {}
            target = target.setdefault(key, {})
        if last in source:
            target[last] = copy.deepcopy(source[last])
    return reduced


def _outcome(check, posture_doc, params):
    try:
        return check(posture_doc, params)
    except checks.FactError as exc:
        return ("FactError", exc.fact, exc.message)


CHECKS_WITH_INPUTS = {rule.check: rule for rule in CATALOG.rules if rule.inputs is not None}


@pytest.mark.parametrize("name", sorted(CHECKS_WITH_INPUTS))
def test_a_check_declared_in_inputs_reads_nothing_but_its_declared_parts(name):
    """The engine computes such a check once per distinct input part (by identity): it must
    give the same answer on a posture reduced to those parts, for every fixture posture of
    every rule (so every variation the fixtures know of is exercised)."""
    from fargate_audit.core.params import effective_params, resolve_params

    check = CHECKS_WITH_INPUTS[name].function
    inputs = CHECKS_WITH_INPUTS[name].inputs
    rules_of_check = [rule for rule in CATALOG.rules if rule.check == name]
    assert rules_of_check, name
    tried = 0
    for fixture, full in _fixtures_with_postures():
        overrides = fixture.get("params") or {}
        params = resolve_params(effective_params(CATALOG, overrides), full)
        for rule in rules_of_check:
            rule_params = {p: params[p] for p in rule.parameters}
            assert _outcome(check, _reduced(full, inputs), rule_params) == _outcome(
                check, full, rule_params
            ), (name, fixture["name"])
            tried += 1
    assert tried > 50


def test_reduced_posture_drops_everything_but_the_declared_parts():
    full = posture()
    reduced = _reduced(full, ("network.nacl", "containers"))
    assert set(reduced) == {"network", "containers"} and set(reduced["network"]) == {"nacl"}
    # and so a check reading an undeclared part would see it missing
    public_address = CATALOG.rule("NET-01").function
    assert _outcome(public_address, reduced, {}) != _outcome(
        public_address, posture({"network": {"public_ipv4": "54.1.2.3"}}), {}
    )


def test_checks_on_shared_parts_give_each_task_its_own_result_and_exemption():
    """Two tasks of different workloads share their NACL and containers objects (as a scan's
    postures do): each gets its own evidence dict, and an exemption of one workload does
    not leak into the other's result."""
    admin_open = {
        "network": {
            "nacl": {
                "id": "acl-1",
                "inbound_world_allowed": {
                    "ipv4": [{"protocol": "tcp", "from": 0, "to": 65535}],
                    "ipv6": [],
                },
            }
        }
    }
    first = posture(admin_open, task="a" * 32, workload="prod/service:a", group="service:a")
    second = posture(admin_open, task="b" * 32, workload="prod/service:b", group="service:b")
    second["network"]["nacl"] = first["network"]["nacl"]
    second["containers"] = first["containers"]
    exempt_a = {"rule": "NET-08", "workload": "prod/service:a", "reason": "bastion", "expires": "2099-01-01"}
    outcome = engine.evaluate(CATALOG, [first, second], {"exemptions": [exempt_a]}, today=TODAY)
    a, b = by_rule(outcome, first["task_arn"]), by_rule(outcome, second["task_arn"])
    assert a["NET-08"]["status"] == "PASSED" and a["NET-08"]["evidence"]["exempted"]["reason"] == "bastion"
    assert b["NET-08"]["status"] == "FAILED" and "exempted" not in b["NET-08"]["evidence"]
    assert a["NET-08"]["evidence"] is not b["NET-08"]["evidence"]
    apart = [copy.deepcopy(first), copy.deepcopy(second)]
    alone = engine.evaluate(CATALOG, apart, {"exemptions": [exempt_a]}, today=TODAY)
    assert alone.results == outcome.results

"""Params files (interface.md): loading, validation errors, substitution, exemption matching."""

import datetime as dt
import json
from pathlib import Path

import pytest
from fargate_audit.core.errors import ConfigError
from fargate_audit.core.params import (
    effective_params,
    exemption_expired,
    load_params,
    match_exemptions,
    params_schema,
    resolve_params,
    validate_params,
)
from fargate_audit.core.rules import load_catalog

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO / "rules")
POSTURE = {"account_id": "210987654321", "region": "us-east-1"}

YAML_TEXT = """\
approved_registries:
  - "{account}.dkr.ecr.{region}.amazonaws.com"
  - ghcr.io
allowed_public_ports:
  - {protocol: tcp, from: 443, to: 443}
secret_env_pattern: "(?i)secret|[0-9]{2}_KEY"
exemptions:
  - rule: NET-05
    workload: "prod/service:*"
    reason: inspection VPC migration, ticket NET-123
    expires: 2031-06-30
"""
EXPECTED = {
    "approved_registries": ["{account}.dkr.ecr.{region}.amazonaws.com", "ghcr.io"],
    "allowed_public_ports": [{"protocol": "tcp", "from": 443, "to": 443}],
    "secret_env_pattern": "(?i)secret|[0-9]{2}_KEY",
    "exemptions": [
        {
            "rule": "NET-05",
            "workload": "prod/service:*",
            "reason": "inspection VPC migration, ticket NET-123",
            "expires": "2031-06-30",
        }
    ],
}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path, name, text):
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as caught:
        load_params(path, CATALOG)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: ") :]


# --------------------------------------------------------------------------- loading


def test_yaml_file_loads_with_dates_kept_as_text(tmp_path):
    assert load_params(write(tmp_path, "params.yaml", YAML_TEXT), CATALOG) == EXPECTED


def test_json_file_loads_to_the_same_params(tmp_path):
    assert load_params(write(tmp_path, "params.json", json.dumps(EXPECTED)), CATALOG) == EXPECTED


def test_yml_extension_is_yaml(tmp_path):
    assert load_params(write(tmp_path, "params.yml", YAML_TEXT), CATALOG) == EXPECTED


def test_other_extension_is_decided_by_content(tmp_path):
    assert load_params(write(tmp_path, "p.conf", json.dumps(EXPECTED)), CATALOG) == EXPECTED
    assert load_params(write(tmp_path, "p.txt", YAML_TEXT), CATALOG) == EXPECTED


def test_empty_file_means_no_overrides(tmp_path):
    assert load_params(write(tmp_path, "params.yaml", ""), CATALOG) == {}


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_params(tmp_path / "absent.json", CATALOG)


def test_schema_is_built_from_the_catalog_parameters_plus_exemptions():
    schema = params_schema(CATALOG)
    assert set(schema["properties"]) == set(CATALOG.parameters) | {"exemptions"}
    assert schema["additionalProperties"] is False


# --------------------------------------------------------------------------- errors, one line each


def test_unknown_top_level_key_is_named(tmp_path):
    message = error_of(tmp_path, "params.yaml", "approved_registry: [ghcr.io]\n")
    assert message.startswith("approved_registry: unknown key (allowed: ")


def test_a_key_written_twice_is_an_error_not_a_silent_override(tmp_path):
    """A second `exemptions:` would otherwise drop the first list without a word."""
    text = (
        "exemptions:\n  - {rule: NET-03, workload: '*', reason: r, expires: 2030-01-01}\n"
        "allowed_public_ports: []\nexemptions: []\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_params(write(tmp_path, "params.yaml", text), CATALOG)
    assert str(raised.value).endswith(
        "invalid YAML: line 4 column 1: found duplicate key 'exemptions' (first at line 1)"
    )
    nested = "approved_registries: [a]\nexemptions:\n  - {rule: NET-03, rule: NET-01, workload: '*'}\n"
    with pytest.raises(ConfigError, match="found duplicate key 'rule'"):
        load_params(write(tmp_path, "nested.yaml", nested), CATALOG)
    with pytest.raises(ConfigError, match="invalid JSON: duplicate key 'exemptions'"):
        load_params(write(tmp_path, "params.json", '{"exemptions": [], "exemptions": []}'), CATALOG)


def test_a_yaml_merge_may_still_override_the_keys_it_brings(tmp_path):
    from fargate_audit.core.rules import read_yaml

    merged, error = read_yaml(
        write(tmp_path, "m.yaml", "base: &b {a: 1, b: 2}\nthis:\n  <<: *b\n  b: 3\n"), "m"
    )
    assert error is None and merged["this"] == {"a": 1, "b": 3}


def test_unknown_key_in_an_exemption_is_named(tmp_path):
    text = "exemptions:\n  - {rule: NET-01, workload: '*', reason: r, expires: 2030-01-01, team: x}\n"
    assert error_of(tmp_path, "params.yaml", text).startswith("exemptions[0].team: unknown key")


def test_wrong_type_is_named(tmp_path):
    message = error_of(tmp_path, "params.json", '{"approved_registries": "ghcr.io"}')
    assert message == "approved_registries: 'ghcr.io' is not of type 'array'"


def test_wrong_nested_type_is_named_with_its_path(tmp_path):
    text = "allowed_public_ports:\n  - {protocol: tcp, from: '80', to: 80}\n"
    assert (
        error_of(tmp_path, "params.yaml", text)
        == "allowed_public_ports[0].from: '80' is not of type 'integer'"
    )


def test_version_written_as_a_yaml_number_is_a_wrong_type(tmp_path):
    assert error_of(tmp_path, "params.yaml", "min_platform_version: 1.4\n") == (
        "min_platform_version: 1.4 is not of type 'string'"
    )


def test_port_range_upside_down_is_rejected(tmp_path):
    text = '{"allowed_public_ports": [{"protocol": "tcp", "from": 90, "to": 80}]}'
    assert error_of(tmp_path, "params.json", text) == "allowed_public_ports[0]: from 90 is above to 80"


@pytest.mark.parametrize(
    "name, text",
    [
        ("params.json", '{"allowed_public_ports": [{"protocol": "tcp", "from": 443.0, "to": 443}]}'),
        ("params.yaml", "allowed_public_ports: [{protocol: tcp, from: 443.0, to: 443}]\n"),
    ],
)
def test_a_port_written_as_a_decimal_is_named_at_load_time(tmp_path, name, text):
    """JSON Schema's integer admits 443.0; it reached the port algebra, which failed the
    scan with an 'unexpected ValueError' naming neither file nor key."""
    assert error_of(tmp_path, name, text) == "allowed_public_ports[0].from: 443.0 is not an integer"


def test_unknown_egress_path_is_rejected(tmp_path):
    message = error_of(tmp_path, "params.yaml", "inspected_egress_paths: [nat-gateway>firewall]\n")
    assert message.startswith("inspected_egress_paths[0]: 'nat-gateway>firewall' does not match")


def test_bad_date_is_named(tmp_path):
    text = "exemptions:\n  - {rule: NET-01, workload: '*', reason: r, expires: soon}\n"
    assert (
        error_of(tmp_path, "params.yaml", text) == "exemptions[0].expires: 'soon' is not a date (YYYY-MM-DD)"
    )


def test_impossible_yaml_date_is_named_not_a_parser_crash(tmp_path):
    text = "exemptions:\n  - {rule: NET-01, workload: '*', reason: r, expires: 2030-02-30}\n"
    assert error_of(tmp_path, "params.yaml", text) == (
        "exemptions[0].expires: '2030-02-30' is not a date (YYYY-MM-DD)"
    )


def test_date_with_time_is_not_a_date(tmp_path):
    text = json.dumps(
        {"exemptions": [{"rule": "*", "workload": "*", "reason": "r", "expires": "2030-01-01T00:00"}]}
    )
    assert "exemptions[0].expires: '2030-01-01T00:00' is not a date" in error_of(tmp_path, "p.json", text)


def test_bad_regex_is_named(tmp_path):
    message = error_of(tmp_path, "params.json", '{"secret_env_pattern": "(password"}')
    assert message.startswith("secret_env_pattern: invalid regular expression: missing )")


def test_unknown_rule_id_in_exemption_is_named(tmp_path):
    text = "exemptions:\n  - {rule: NET-99, workload: '*', reason: r, expires: 2030-01-01}\n"
    assert error_of(tmp_path, "params.yaml", text) == (
        "exemptions[0].rule: 'NET-99' is not a rule id of the catalog (nor '*')"
    )


def test_missing_exemption_field_is_named(tmp_path):
    text = "exemptions:\n  - {rule: NET-01, workload: '*', expires: 2030-01-01}\n"
    assert error_of(tmp_path, "params.yaml", text) == "exemptions[0]: 'reason' is a required property"


def test_blank_reason_is_rejected(tmp_path):
    text = "exemptions:\n  - {rule: NET-01, workload: '*', reason: '  ', expires: 2030-01-01}\n"
    assert error_of(tmp_path, "params.yaml", text) == "exemptions[0].reason: must say why (empty)"


def test_top_level_must_be_an_object(tmp_path):
    assert error_of(tmp_path, "params.json", "[1, 2]") == "[1, 2] is not of type 'object'"


def test_invalid_json_names_line_and_column(tmp_path):
    assert error_of(tmp_path, "params.json", '{\n  "a": }').startswith("invalid JSON: line 2 column 8")


def test_invalid_yaml_names_the_line(tmp_path):
    assert error_of(tmp_path, "params.yaml", "a: [1,\nb: 2\n").startswith("invalid YAML: line ")


def test_programmatic_params_are_validated_with_the_given_source():
    with pytest.raises(ConfigError, match=r"^lambda env: colour: unknown key"):
        validate_params({"colour": "red"}, CATALOG, source="lambda env")


def test_programmatic_date_objects_are_accepted_as_dates():
    data = {"exemptions": [{"rule": "*", "workload": "*", "reason": "r", "expires": dt.date(2030, 1, 2)}]}
    assert validate_params(data, CATALOG)["exemptions"][0]["expires"] == "2030-01-02"


# --------------------------------------------------------------------------- effective and resolved params


def test_overrides_replace_defaults_and_exemptions_are_not_parameters():
    values = effective_params(CATALOG, EXPECTED)
    assert values["approved_registries"] == EXPECTED["approved_registries"]
    assert values["min_platform_version"] == "1.4.0"
    assert "exemptions" not in values


def test_account_and_region_are_substituted_in_strings_and_lists():
    params = {
        "approved_registries": ["{account}.dkr.ecr.{region}.amazonaws.com"],
        "approved_s3_buckets": ["prod-{region}-starport-layer-bucket", "logs-{account}-{region}"],
        "min_platform_version": "1.4.0",
    }
    resolved = resolve_params(params, POSTURE)
    assert resolved["approved_registries"] == ["210987654321.dkr.ecr.us-east-1.amazonaws.com"]
    assert resolved["approved_s3_buckets"] == [
        "prod-us-east-1-starport-layer-bucket",
        "logs-210987654321-us-east-1",
    ]
    assert params["approved_registries"] == ["{account}.dkr.ecr.{region}.amazonaws.com"]  # not mutated


def test_substitution_leaves_regex_quantifiers_and_exemptions_alone():
    params = {
        "secret_env_pattern": "[0-9]{2}_{region}",
        "exemptions": [{"rule": "*", "workload": "{account}", "reason": "r", "expires": "2030-01-01"}],
    }
    resolved = resolve_params(params, POSTURE)
    assert resolved["secret_env_pattern"] == "[0-9]{2}_us-east-1"
    assert resolved["exemptions"][0]["workload"] == "{account}"


# --------------------------------------------------------------------------- exemptions

TODAY = dt.date(2030, 6, 15)


def exemption(rule="NET-05", workload="prod/service:*", expires="2030-12-31", reason="migration"):
    return {"rule": rule, "workload": workload, "reason": reason, "expires": expires}


def test_exemption_matches_rule_id_and_workload_glob():
    active, expired = match_exemptions([exemption()], "NET-05", "prod/service:web", TODAY)
    assert active == exemption()
    assert expired == []


def test_exemption_for_another_rule_does_not_match():
    assert match_exemptions([exemption()], "NET-04", "prod/service:web", TODAY) == (None, [])


def test_star_exemption_matches_every_rule():
    active, _ = match_exemptions([exemption(rule="*")], "CFG-03", "prod/service:web", TODAY)
    assert active is not None


def test_workload_glob_is_case_sensitive_and_anchored():
    assert match_exemptions([exemption()], "NET-05", "Prod/service:web", TODAY)[0] is None
    assert match_exemptions([exemption()], "NET-05", "staging/prod/service:web", TODAY)[0] is None
    assert match_exemptions([exemption(workload="*/family:batch-*")], "NET-05", "dev/family:batch-7", TODAY)[
        0
    ]


def test_exemption_is_valid_through_its_expiry_day_and_expired_the_day_after():
    on_the_day = exemption(expires="2030-06-15")
    assert not exemption_expired(on_the_day, TODAY)
    assert exemption_expired(on_the_day, TODAY + dt.timedelta(days=1))


def test_expired_exemption_is_ignored_and_returned():
    old = exemption(expires="2030-06-14")
    assert match_exemptions([old], "NET-05", "prod/service:web", TODAY) == (None, [old])


def test_first_active_exemption_wins_and_expired_ones_are_still_reported():
    old, first, second = (
        exemption(expires="2029-01-01"),
        exemption(reason="a"),
        exemption(rule="*", reason="b"),
    )
    active, expired = match_exemptions([old, first, second], "NET-05", "prod/service:web", TODAY)
    assert active is first
    assert expired == [old]

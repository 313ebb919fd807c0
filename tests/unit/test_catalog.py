"""Meta-tests over the rule catalog: rules/<ID>/ (rule.yaml and check.py), parameters.yaml,
mappings.yaml, schema.json.

The catalog is the contract of shared/spec/rules.md in data form: these tests pin its ids,
titles, severities, parameter defaults and vocabulary to the spec, and prove that a bad
rule file is rejected with one line naming the file and the field.
"""

import ast
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from fargate_audit.core.checks import APPLICABILITY, CHECK
from fargate_audit.core.errors import ConfigError
from fargate_audit.core.rules import (
    RULES_DIR_ENV,
    SEVERITIES,
    find_rules_dir,
    load_catalog,
    registered_checks,
    validate_rules_dir,
)

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
SCHEMA = json.loads((RULES / "schema.json").read_text())
CATALOG = load_catalog(RULES)
REGISTRY = registered_checks()
RULE_FOLDERS = sorted(p for p in RULES.iterdir() if p.is_dir() and p.name != "__pycache__")

V1_IDS = {
    "NET-01", "NET-02", "NET-03", "NET-04", "NET-05", "NET-06", "NET-07", "NET-08", "NET-09", "NET-10",
    "IMG-01", "IMG-02", "LOG-01", "LOG-02", "CFG-01", "CFG-02", "CFG-03",
}  # fmt: skip
EGRESS_IDS = {"EGR-01", "EGR-02", "EGR-03"}  # rules.md "Egress discovery", "Flow-log egress"
INGRESS_IDS = {"NET-11", "NET-12"}  # rules.md "Ingress through load balancers"
# In rules.md, not yet in the catalog (the rules of open issues): none today.
SPEC_PENDING_IDS: set[str] = set()
DISCOVERY_IDS = {"EGR-01", "EGR-03"}  # evaluated on a workload's DNS discoveries, not on task postures
POSTURE_FACTS = {
    "containers", "cluster", "platform_version", "platform_family", "eni", "security_groups",
    "route_table", "egress", "nacl", "flow_logs", "vpc_endpoints", "dns_query_logging",
    "load_balancers", "web_acl",
}  # fmt: skip
SPEC_DEFAULTS = {  # rules.md, parameter by parameter
    "allowed_public_ports": [
        {"protocol": "tcp", "from": 80, "to": 80},
        {"protocol": "tcp", "from": 443, "to": 443},
    ],
    "inspected_egress_paths": [
        "nat-gateway>inspection-endpoint",
        "nat-gateway>appliance",
        "nat-gateway>transit-gateway",
    ],
    "approved_s3_buckets": [],
    "approved_registries": ["{account}.dkr.ecr.{region}.amazonaws.com", "public.ecr.aws"],
    "min_platform_version": "1.4.0",
    "min_platform_version_windows": "1.0.0",
    "secret_env_names": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ECS_ENGINE_AUTH_DATA"],
    "secret_env_pattern": "(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key)",
    "approved_domains": ["*.amazonaws.com", "*.aws"],
    "approved_egress_cidrs": [],
    "dns_answer_lookback": "24h",
}


def _spec_path():
    for candidate in (REPO / "shared" / "spec" / "rules.md", REPO.parent / "shared" / "spec" / "rules.md"):
        if candidate.is_file():
            return candidate
    return None


def _spec_table():
    """{id: (title, severity, later)} from the spec's rule tables."""
    rows = {}
    later = False
    row = re.compile(r"^\| ([A-Z]{3}-[0-9]{2}) \| (.+?) \| (" + "|".join(SEVERITIES) + r") \|")
    for line in _spec_path().read_text().splitlines():
        if line.startswith("## "):
            later = "(later)" in line
        match = row.match(line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3), later)
    return rows


# --------------------------------------------------------------------------- the catalog


def test_shipped_rules_directory_has_no_problem():
    assert validate_rules_dir(RULES) == []


def test_catalog_holds_the_v1_and_egress_rule_ids_in_id_order():
    """A new rule is its folder alone: the catalog may grow beyond these (each id a rule of
    the spec's table, test_titles_and_severities_equal_the_spec_table), never lose one. The
    exact inventory is the README's rule table, regenerated docs a new rule brings along."""
    assert set(CATALOG.ids) >= V1_IDS | EGRESS_IDS | INGRESS_IDS
    assert set(CATALOG.ids) <= V1_IDS | EGRESS_IDS | INGRESS_IDS | SPEC_PENDING_IDS
    readme = (REPO / "README.md").read_text()
    row = r"^\| ([A-Z]{3}-[0-9]{2}) \| (?:CRITICAL|HIGH|MEDIUM|LOW|INFORMATIONAL) \|"
    table = re.findall(row, readme, re.M)
    assert table == list(CATALOG.ids)
    assert list(CATALOG.ids) == sorted(CATALOG.ids)


def test_only_egr_01_is_a_workload_discovery_rule_and_it_reads_no_posture_fact():
    assert {rule.id for rule in CATALOG.discovery_rules} == DISCOVERY_IDS
    assert {rule.id for rule in CATALOG.posture_rules} == set(CATALOG.ids) - DISCOVERY_IDS
    for rule in CATALOG.discovery_rules:
        assert rule.requires == () and rule.applicability is None, rule.id


def test_each_rule_is_a_folder_named_after_its_unique_id_holding_its_rule_and_check():
    assert sorted(p.name for p in RULES.iterdir() if p.is_file()) == [
        "base_discovery.json",  # what the fixtures patch (core/fixtures.py)
        "base_posture.json",
        "mappings.yaml",
        "parameters.yaml",
        "schema.json",
        "validated.json",  # the digest of these files as validated (scripts/catalog_digest.py)
    ]
    ids = [yaml.safe_load((p / "rule.yaml").read_text())["id"] for p in RULE_FOLDERS]
    assert ids == [p.name for p in RULE_FOLDERS] == list(CATALOG.ids)
    for folder in RULE_FOLDERS:
        assert (folder / "check.py").is_file(), folder.name
        assert {p.name for p in folder.iterdir()} <= {"rule.yaml", "check.py", "__pycache__"}, folder.name


def test_titles_and_severities_equal_the_spec_table():
    if _spec_path() is None:
        pytest.skip("shared/spec/rules.md not present")
    table = _spec_table()
    # The spec may run ahead of the catalog only by the rules of open issues.
    assert set(table) - set(CATALOG.ids) <= SPEC_PENDING_IDS
    assert set(CATALOG.ids) <= set(table)
    for rule in CATALOG.rules:
        title, severity, _ = table[rule.id]
        assert (rule.title, rule.severity) == (title, severity), rule.id


def test_every_rule_has_pass_and_fail_fixtures_with_unique_names():
    for rule in CATALOG.rules:
        assert len(rule.fixtures["pass"]) >= 1, rule.id
        assert len(rule.fixtures["fail"]) >= 1, rule.id
        names = [f["name"] for kind in rule.fixtures.values() for f in kind]
        assert len(names) == len(set(names)), rule.id


def test_every_mapping_names_a_rule_and_every_rule_has_a_mapping():
    assert set(CATALOG.mappings) == set(CATALOG.ids)
    for rule_id, mapping in CATALOG.mappings.items():
        assert any(mapping.values()), rule_id


def test_mappings_carry_the_security_hub_controls_the_spec_names():
    expected = {
        "NET-01": {"ECS.2", "ECS.16"},
        "NET-03": {"EC2.18", "EC2.19"},
        "NET-06": {"EC2.2"},
        "NET-07": {"EC2.6"},
        "NET-08": {"EC2.21"},
        "NET-10": {"EC2.55", "EC2.56"},
        "LOG-01": {"ECS.9"},
        "LOG-02": {"ECS.12"},
        "CFG-01": {"ECS.10"},
        "CFG-02": {"ECS.8"},
        "CFG-03": {"ECS.5"},
    }
    for rule_id, controls in expected.items():
        assert controls <= set(CATALOG.mappings[rule_id].get("securityhub", [])), rule_id


def test_every_parameter_is_declared_and_read_by_some_rule():
    used = {name for rule in CATALOG.rules for name in rule.parameters}
    assert used == set(CATALOG.parameters)
    assert set(CATALOG.rule("EGR-01").parameters) == {"approved_domains", "approved_registries"}


def test_parameter_defaults_equal_the_spec():
    assert CATALOG.defaults() == SPEC_DEFAULTS


def test_defaults_are_fresh_copies():
    CATALOG.defaults()["approved_registries"].append("evil.example.com")
    assert CATALOG.defaults()["approved_registries"] == SPEC_DEFAULTS["approved_registries"]


def test_every_check_is_registered_once_by_its_rules_folder_and_run_by_that_rule_only():
    assert REGISTRY.problems == ()
    assert set(REGISTRY.by_rule) == set(CATALOG.ids)
    assert len(REGISTRY.checks) == len(CATALOG.rules)  # one check per folder, no name twice
    for rule in CATALOG.rules:
        own = REGISTRY.by_rule[rule.id]
        assert (own.kind, rule.check, rule.function, rule.inputs) == (
            CHECK,
            own.name,
            own.function,
            own.inputs,
        ), rule.id
        assert own.function.__name__ == own.name
        assert "check" not in yaml.safe_load((RULES / rule.id / "rule.yaml").read_text()), rule.id
    applied = {rule.applicability.check for rule in CATALOG.rules if rule.applicability}
    assert (
        applied
        == set(REGISTRY.applicability)
        == {
            "uses_private_ecr_image",
            "exposed_through_load_balancer",
            "exposed_through_alb",
        }
    )
    for registered in REGISTRY.applicability.values():
        assert registered.kind == APPLICABILITY
    assert (
        CATALOG.rule("NET-10").applicability.function
        is REGISTRY.applicability["uses_private_ecr_image"].function
    )


def test_the_schema_names_no_check_the_registry_holds_them():
    assert "check" not in SCHEMA["required"]
    assert "enum" not in SCHEMA["properties"]["check"]
    assert "enum" not in SCHEMA["properties"]["applicability"]["properties"]["check"]


def test_every_check_module_is_pure_it_imports_the_standard_library_and_the_core_only():
    """The import-linter contracts see packages only; a rule folder is not one."""
    for folder in RULE_FOLDERS:
        tree = ast.parse((folder / "check.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, folder.name
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith("fargate_audit.core"), (
                    folder.name,
                    name,
                )


def test_requires_vocabulary_is_the_posture_facts_of_the_design():
    assert set(SCHEMA["$defs"]["facts"]["items"]["enum"]) == POSTURE_FACTS


def test_every_network_rule_requires_the_eni():
    for rule in CATALOG.rules:
        if rule.id.startswith("NET-"):
            assert "eni" in rule.requires, rule.id


def test_schema_closes_every_object_it_defines():
    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and where not in {"patch", "expect_evidence", "params", "schema"}:
                assert "additionalProperties" in node, where
            for key, value in node.items():
                walk(value, key)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(SCHEMA, "root")


# --------------------------------------------------------------------------- discovery


def test_rules_dir_comes_from_the_environment_variable(monkeypatch, tmp_path):
    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    monkeypatch.setenv(RULES_DIR_ENV, str(copy))
    assert find_rules_dir() == copy
    assert load_catalog().rules_dir == copy


def test_rules_dir_defaults_to_the_repository_rules(monkeypatch):
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    assert find_rules_dir().resolve() == RULES.resolve()


def test_missing_rules_dir_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv(RULES_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=RULES_DIR_ENV):
        find_rules_dir()


# --------------------------------------------------------------------------- bad rule files


@pytest.fixture
def rules_copy(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def _edit(path, change):
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _single_error(rules_dir):
    with pytest.raises(ConfigError) as caught:
        load_catalog(rules_dir)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bad_severity_names_file_and_field(rules_copy):
    _edit(rules_copy / "NET-03" / "rule.yaml", lambda d: d.update(severity="SEVERE"))
    message = _single_error(rules_copy)
    assert message.startswith(f"{rules_copy / 'NET-03' / 'rule.yaml'}: severity: 'SEVERE' is not one of [")
    assert validate_rules_dir(rules_copy) == [message]


def test_unknown_key_is_named(rules_copy):
    _edit(rules_copy / "LOG-02" / "rule.yaml", lambda d: d.update(colour="red"))
    assert "LOG-02/rule.yaml: colour: unknown key" in _single_error(rules_copy)


def test_unknown_check_is_rejected_by_the_closed_vocabulary(rules_copy):
    _edit(rules_copy / "CFG-03" / "rule.yaml", lambda d: d.update(check="eval_anything"))
    assert "CFG-03/rule.yaml: check: 'eval_anything' is not a registered check" in _single_error(rules_copy)


def test_unknown_posture_fact_in_requires_is_named_with_its_index(rules_copy):
    _edit(rules_copy / "NET-07" / "rule.yaml", lambda d: d.update(requires=["eni", "flowlogs"]))
    assert "NET-07/rule.yaml: requires[1]: 'flowlogs' is not one of" in _single_error(rules_copy)


def test_bad_fixture_field_is_named_with_its_path(rules_copy):
    _edit(rules_copy / "NET-04" / "rule.yaml", lambda d: d["fixtures"]["fail"][1].update(patch="oops"))
    assert "NET-04/rule.yaml: fixtures.fail[1].patch: 'oops' is not of type 'object'" in _single_error(
        rules_copy
    )


def test_missing_fail_fixtures_are_rejected(rules_copy):
    _edit(rules_copy / "IMG-02" / "rule.yaml", lambda d: d["fixtures"].update(fail=[]))
    assert "IMG-02/rule.yaml: fixtures.fail: [] should be non-empty" in _single_error(rules_copy)


def test_missing_required_field_is_named(rules_copy):
    _edit(rules_copy / "IMG-01" / "rule.yaml", lambda d: d.pop("remediation"))
    assert "IMG-01/rule.yaml: 'remediation' is a required property" in _single_error(rules_copy)


def test_id_not_matching_file_name_is_rejected(rules_copy):
    _edit(rules_copy / "NET-05" / "rule.yaml", lambda d: d.update(id="NET-55"))
    assert "NET-05/rule.yaml: id: 'NET-55' does not match the folder name" in _single_error(rules_copy)


def test_bad_id_pattern_is_rejected(rules_copy):
    _edit(rules_copy / "NET-05" / "rule.yaml", lambda d: d.update(id="net-5"))
    assert "NET-05/rule.yaml: id: 'net-5' does not match" in _single_error(rules_copy)


def test_duplicate_ids_are_rejected(rules_copy):
    shutil.copy(rules_copy / "NET-06" / "rule.yaml", rules_copy / "NET-06.yml")
    message = _single_error(rules_copy)
    assert "NET-06.yml: id: 'NET-06' duplicates" in message


def test_unknown_parameter_name_is_rejected(rules_copy):
    _edit(rules_copy / "NET-03" / "rule.yaml", lambda d: d.update(parameters=["allowed_public_port"]))
    assert (
        "NET-03/rule.yaml: parameters[0]: 'allowed_public_port' is not declared in parameters.yaml"
        in _single_error(rules_copy)
    )


def test_mapping_for_an_unknown_rule_is_rejected(rules_copy):
    text = (rules_copy / "mappings.yaml").read_text() + "\nNET-99:\n  securityhub: [EC2.1]\n"
    (rules_copy / "mappings.yaml").write_text(text)
    assert "mappings.yaml: NET-99: mapping for an unknown rule id" in _single_error(rules_copy)


def test_malformed_mapping_is_rejected(rules_copy):
    text = (rules_copy / "mappings.yaml").read_text() + "\nCFG-04:\n  nist: [SC-7]\n"
    (rules_copy / "mappings.yaml").write_text(text)
    message = _single_error(rules_copy)
    assert "mappings.yaml: CFG-04" in message


def test_parameter_default_must_satisfy_its_schema(rules_copy):
    _edit(rules_copy / "parameters.yaml", lambda d: d["min_platform_version"].update(default="one.four"))
    assert "parameters.yaml: min_platform_version.default: 'one.four' does not match" in _single_error(
        rules_copy
    )


def test_invalid_yaml_is_reported_with_its_line(rules_copy):
    (rules_copy / "LOG-01" / "rule.yaml").write_text("id: LOG-01\ntitle: [unclosed\n")
    message = _single_error(rules_copy)
    assert "LOG-01/rule.yaml: invalid YAML: line " in message


def test_stray_yaml_file_is_treated_as_a_rule_and_rejected(rules_copy):
    shutil.copy(rules_copy / "CFG-01" / "rule.yaml", rules_copy / "notes.yaml")
    assert "notes.yaml: id: 'CFG-01' does not match the file name" in _single_error(rules_copy)


def test_several_problems_are_all_listed_by_validate_and_counted_by_load(rules_copy):
    _edit(rules_copy / "NET-01" / "rule.yaml", lambda d: d.update(severity="SEVERE"))
    _edit(rules_copy / "NET-02" / "rule.yaml", lambda d: d.update(title=""))
    problems = validate_rules_dir(rules_copy)
    assert len(problems) == 2
    assert all("\n" not in p for p in problems)
    assert "(and 1 more problems)" in _single_error(rules_copy)


def test_invalid_parameter_schema_is_rejected(rules_copy):
    _edit(rules_copy / "parameters.yaml", lambda d: d["min_platform_version"].update(schema={"type": 12}))
    message = _single_error(rules_copy)
    assert "parameters.yaml: min_platform_version.schema.type: not a valid JSON Schema" in message


def test_a_catalog_of_ones_own_is_checked_against_the_shipped_schema_not_its_own(rules_copy):
    """interface.md: `rules validate [DIR]` checks rule files against `rules/schema.json`.
    Before, DIR's own schema.json was used: a loosened one let severity SEVERE through (a
    report the report schema refuses), and a catalog without one could not load at all."""
    schema = json.loads((rules_copy / "schema.json").read_text())
    schema["properties"]["severity"] = {"type": "string"}  # loosened
    (rules_copy / "schema.json").write_text(json.dumps(schema))
    _edit(rules_copy / "NET-01" / "rule.yaml", lambda d: d.update(severity="SEVERE"))
    (problem,) = validate_rules_dir(rules_copy)
    assert "NET-01" in problem and "severity" in problem and "SEVERE" in problem

    _edit(rules_copy / "NET-01" / "rule.yaml", lambda d: d.update(severity="HIGH"))
    (rules_copy / "schema.json").unlink()  # none needed
    assert validate_rules_dir(rules_copy) == []


def test_a_workload_discovery_rule_may_not_require_posture_facts(rules_copy):
    _edit(rules_copy / "EGR-01" / "rule.yaml", lambda d: d.update(requires=["eni"]))
    assert "EGR-01/rule.yaml: requires: a workload-discovery rule reads no posture facts" in _single_error(
        rules_copy
    )


def test_unknown_evaluation_kind_is_rejected(rules_copy):
    _edit(rules_copy / "EGR-02" / "rule.yaml", lambda d: d.update(evaluation="per-account"))
    assert "EGR-02/rule.yaml: evaluation: 'per-account' is not one of" in _single_error(rules_copy)


# --------------------------------------------------------------------------- the shipped catalog, trusted


def test_the_shipped_catalog_loads_without_schema_validation_into_the_validated_catalog(monkeypatch):
    from fargate_audit.core import rules as rules_mod

    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    trusted = load_catalog()
    validated, problems = rules_mod._load(rules_mod.CATALOG_DIR, check_schemas=True)
    assert problems == []
    for part in ("rules", "parameters", "mappings", "rules_dir"):  # Catalog compares by identity
        assert getattr(trusted, part) == getattr(validated, part), part
    assert trusted.rules_dir == rules_mod.CATALOG_DIR


def test_loading_the_shipped_catalog_does_not_import_jsonschema():
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ.pop('FARGATE_AUDIT_RULES_DIR', None)\n"
        "from fargate_audit.core.rules import load_catalog\n"
        "catalog = load_catalog()\n"
        "print(len(catalog.rules), 'jsonschema' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(len(CATALOG.rules)), "False"]


def test_a_broken_shipped_catalog_still_fails_with_one_line_naming_the_file(monkeypatch, tmp_path):
    from fargate_audit.core import rules as rules_mod

    broken = tmp_path / "catalog"
    shutil.copytree(RULES, broken)
    doc = yaml.safe_load((broken / "NET-01" / "rule.yaml").read_text())
    del doc["severity"]
    (broken / "NET-01" / "rule.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(rules_mod, "CATALOG_DIR", broken)
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"NET-01/rule\.yaml.*severity"):
        load_catalog()
    # a catalog of one's own is always validated in full
    doc["severity"] = "SUPER"
    (broken / "NET-01" / "rule.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv(RULES_DIR_ENV, str(broken))
    with pytest.raises(ConfigError, match=r"NET-01/rule\.yaml: severity"):
        load_catalog()


def test_the_recorded_digest_of_the_shipped_catalog_is_current():
    from fargate_audit.core import rules as rules_mod

    recorded = rules_mod.validated_digest(rules_mod.CATALOG_DIR)
    assert recorded == rules_mod.catalog_digest(rules_mod.CATALOG_DIR), (
        "a catalog file changed: run scripts/catalog_digest.py (it validates, then records the digest)"
    )


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda d: d.update(severity="SEVERE"), r"LOG-01/rule\.yaml: severity: 'SEVERE' is not one of"),
        (lambda d: d.update(requires=["containerz"]), r"LOG-01/rule\.yaml: requires\[0\]: 'containerz'"),
    ],
)
def test_an_edited_file_of_the_shipped_catalog_is_validated_in_full(monkeypatch, tmp_path, edit, error):
    """Loading skipped the JSON Schema validation of the shipped catalog whatever its files
    held: edited in place, a severity the report schema refuses went into reports, and a
    misspelt fact in `requires` turned an uncollected fact's ERROR into PASSED."""
    from fargate_audit.core import rules as rules_mod

    edited = tmp_path / "catalog"
    shutil.copytree(RULES, edited)
    assert rules_mod.validated_digest(edited) == rules_mod.catalog_digest(edited)  # as shipped
    _edit(edited / "LOG-01" / "rule.yaml", edit)
    monkeypatch.setattr(rules_mod, "CATALOG_DIR", edited)
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    with pytest.raises(ConfigError, match=error):
        load_catalog()


# --------------------------------------------------------------------------- catalogs of one's own


def test_a_catalog_of_ones_own_may_keep_the_flat_layout_naming_each_check(rules_copy):
    for folder in sorted(p for p in rules_copy.iterdir() if p.is_dir()):
        doc = yaml.safe_load((folder / "rule.yaml").read_text())
        if folder.name != "NET-06":  # the id's shipped check when the file names none
            doc["check"] = CATALOG.rule(folder.name).check
        (rules_copy / f"{folder.name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        shutil.rmtree(folder)
    assert validate_rules_dir(rules_copy) == []
    flat = load_catalog(rules_copy)
    assert flat.rules == CATALOG.rules
    assert [r.function for r in flat.rules] == [r.function for r in CATALOG.rules]


def test_a_rule_of_ones_own_reuses_a_shipped_check_by_its_registered_name(rules_copy):
    (rules_copy / "XYZ-01").mkdir()
    rule_file = rules_copy / "XYZ-01" / "rule.yaml"
    shutil.copy(rules_copy / "NET-02" / "rule.yaml", rule_file)
    _edit(rule_file, lambda d: d.update(id="XYZ-01", check="internet_reachable", severity="LOW"))
    assert validate_rules_dir(rules_copy) == []
    variant = load_catalog(rules_copy).rule("XYZ-01")
    shipped = CATALOG.rule("NET-02")
    assert (variant.check, variant.function, variant.severity) == (
        "internet_reachable",
        shipped.function,
        "LOW",
    )


def test_a_new_rule_of_ones_own_without_a_check_is_named(rules_copy):
    shutil.copytree(rules_copy / "NET-06", rules_copy / "XYZ-02", ignore=shutil.ignore_patterns("check.py"))
    _edit(rules_copy / "XYZ-02" / "rule.yaml", lambda d: d.update(id="XYZ-02"))
    assert "XYZ-02/rule.yaml: check: no XYZ-02/check.py registers a check" in _single_error(rules_copy)


def test_an_unknown_applicability_function_is_named(rules_copy):
    _edit(rules_copy / "NET-10" / "rule.yaml", lambda d: d["applicability"].update(check="always"))
    assert "NET-10/rule.yaml: applicability.check: 'always' is not a registered applicability" in (
        _single_error(rules_copy)
    )


def test_a_tolerated_fact_the_rule_does_not_require_is_named(rules_copy):
    _edit(rules_copy / "NET-06" / "rule.yaml", lambda d: d.update(tolerates=["security_groups", "nacl"]))
    assert "NET-06/rule.yaml: tolerates: nacl not in requires" in _single_error(rules_copy)


def test_a_rule_may_tolerate_only_what_its_check_judges_itself(rules_copy):
    """A check that does not read a fact's error would judge the fact as if collected:
    NET-04 with DescribeSecurityGroups denied was PASSED on no rules at all."""
    _edit(rules_copy / "NET-04" / "rule.yaml", lambda d: d.update(tolerates=["security_groups"]))
    assert (
        "NET-04/rule.yaml: tolerates: check unrestricted_egress does not judge security_groups itself "
        "(it tolerates no fact)"
    ) in _single_error(rules_copy)


def test_a_catalog_of_ones_own_runs_no_code_of_its_own(rules_copy):
    path = rules_copy / "NET-03" / "check.py"
    path.write_text(path.read_text() + "\nprint('never run')\n")
    message = _single_error(rules_copy)
    assert message.startswith(f"{path}: not the shipped check of this id: checks run only from the shipped")


def test_a_rule_folder_without_its_rule_file_is_named(rules_copy):
    (rules_copy / "NET-04" / "rule.yaml").rename(rules_copy / "NET-04" / "rules.yaml")
    problems = validate_rules_dir(rules_copy)
    assert f"{rules_copy / 'NET-04'}: a rule folder holds its rule.yaml; none here" in problems


def test_check_modules_that_fail_or_register_other_than_one_check_are_named(tmp_path):
    def folder(rule_id, code):
        (tmp_path / rule_id).mkdir()
        (tmp_path / rule_id / "check.py").write_text("from fargate_audit.core.checks import check\n" + code)

    folder("AAA-01", "@check\ndef a(p, q): ...\n\n@check\ndef b(p, q): ...\n")
    folder("AAA-02", "import no_such_module\n")
    folder("AAA-03", "@check\ndef same(p, q): ...\n")
    folder("AAA-04", "@check\ndef same(p, q): ...\n")
    registry = registered_checks(tmp_path)
    assert [line.split(": ", 1)[0] for line in registry.problems] == [
        str(tmp_path / "AAA-01" / "check.py"),
        str(tmp_path / "AAA-02" / "check.py"),
        str(tmp_path / "AAA-04" / "check.py"),
    ]
    assert "registers 2 checks with @check (a, b)" in registry.problems[0]
    assert "cannot import: ModuleNotFoundError" in registry.problems[1]
    assert f"same: also registered by {tmp_path / 'AAA-03' / 'check.py'}" in registry.problems[2]
    assert set(registry.checks) == {"same"}


NEW_RULE_CHECK = '''"""The check of NET-99."""

from fargate_audit.core.checks import check, network_of, verdict


@check
def legacy_security_group(posture, params):
    groups = network_of(posture).get("security_groups") or []
    groups = [g.get("id") for g in groups if g.get("name") == "legacy"]
    return verdict(bool(groups)), {"security_groups": groups}
'''


def test_a_new_rule_on_existing_facts_is_its_folder_and_its_mapping(monkeypatch, tmp_path):
    from fargate_audit.core import engine
    from fargate_audit.core import rules as rules_mod

    catalog = tmp_path / "catalog"
    shutil.copytree(RULES, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    (catalog / "NET-99").mkdir()
    (catalog / "NET-99" / "check.py").write_text(NEW_RULE_CHECK)
    legacy = {"network": {"security_groups": [{"id": "sg-1", "name": "legacy"}]}}
    shipped = yaml.safe_load((catalog / "NET-06" / "rule.yaml").read_text())
    shipped.pop("tolerates")  # NET-06's check judges unreadable groups itself; this one does not
    rule_doc = {
        **shipped,
        "id": "NET-99",
        "title": "Legacy security group attached",
        "fixtures": {"pass": [{"name": "none", "patch": {}}], "fail": [{"name": "legacy", "patch": legacy}]},
    }
    (catalog / "NET-99" / "rule.yaml").write_text(yaml.safe_dump(rule_doc))
    with (catalog / "mappings.yaml").open("a") as mappings:
        mappings.write("\nNET-99:\n  nist_800_53_rev5: [SC-7]\n")
    monkeypatch.setattr(rules_mod, "CATALOG_DIR", catalog)
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)

    assert validate_rules_dir(catalog) == []
    rule = load_catalog().rule("NET-99")
    assert rule.check == "legacy_security_group"
    base = json.loads((REPO / "tests" / "fixtures" / "base_posture.json").read_text())
    failing = {**base, "network": {**base["network"], **legacy["network"]}}
    assert engine.evaluate_rule(rule, base, {})[0] == "PASSED"
    assert engine.evaluate_rule(rule, failing, {}) == ("FAILED", {"security_groups": ["sg-1"]})


def _variant(rules_copy, source: str, new_id: str, change=None):
    """A copy of ``source``'s rule under ``new_id`` reusing its check (``check: NAME``)."""
    from fargate_audit.core.rules import load_catalog as load

    check = next(r.check for r in load(RULES).rules if r.id == source)
    folder = rules_copy / new_id
    folder.mkdir()
    doc = yaml.safe_load((rules_copy / source / "rule.yaml").read_text())
    doc.update(id=new_id, check=check)
    if change:
        change(doc)
    (folder / "rule.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    mappings = yaml.safe_load((rules_copy / "mappings.yaml").read_text())
    mappings[new_id] = mappings[source]
    (rules_copy / "mappings.yaml").write_text(yaml.safe_dump(mappings, sort_keys=False))
    return folder / "rule.yaml"


def test_a_variant_declares_the_parameters_its_check_reads(rules_copy):
    """A variant of NET-03's check without allowed_public_ports passed validation and then
    failed the scan with 'unexpected KeyError'."""
    assert load_catalog(rules_copy) is not None
    path = _variant(rules_copy, "NET-03", "NET-93")
    assert "NET-93" in {r.id for r in load_catalog(rules_copy).rules}  # a faithful variant loads
    _edit(path, lambda d: d.update(parameters=[]))
    message = _single_error(rules_copy)
    assert message.startswith(f"{path}: parameters: check ")
    assert message.endswith(
        f"reads 'allowed_public_ports' ({rules_copy / 'NET-03' / 'rule.yaml'}): declare it"
    )


def test_a_variant_keeps_its_checks_kind_of_evaluation(rules_copy):
    """A discovery check (EGR-01's) reused as a task-posture rule read no posture and
    passed every task."""
    path = _variant(rules_copy, "EGR-01", "NET-98", lambda d: d.pop("evaluation", None))
    message = _single_error(rules_copy)
    assert message.startswith(f"{path}: check: ") and "workload-discovery check" in message
    assert "this rule's evaluation is task-posture" in message


def test_an_empty_parameters_file_still_checks_the_rules_parameters(rules_copy):
    (rules_copy / "parameters.yaml").write_text("{}\n")
    problems = validate_rules_dir(rules_copy)
    assert any("min_platform_version' is not declared in parameters.yaml" in p for p in problems), problems

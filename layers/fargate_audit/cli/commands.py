"""``fargate-audit``: the command line (interface.md "Command line").

    fargate-audit scan [--region R]... [--cluster C]... [--params FILE]
                       [--format table|json|asff|ocsf|html] [--output FILE] [--fail-on SEVERITY]
                       [--role-arn ARN [--external-id ID]]
                       [--accounts ID[,ID...] | --accounts-file FILE | --organization [--ou OU_ID]...]
                       [--role-name NAME] [--external-id ID] [--jobs N]
    fargate-audit report SCAN.json [--output FILE]
    fargate-audit rules list [--format table|json]
    fargate-audit rules validate [DIR]
    fargate-audit demo
    fargate-audit invoke FUNCTION EVENT_FILE [--parameter-overrides KEY=VALUE ...]
    fargate-audit history TASK_ARN [--format table|json] [--table NAME]
    fargate-audit findings [--format table|json] [--table NAME]
    fargate-audit discovered [--workload W] [--since T] [--format table|json]
                             [--export network-firewall|dns-firewall FILE] [--approved-only] [--wildcards]
                             [--params FILE] [--table NAME]
    fargate-audit --version

Exit status of ``scan``: 0 no FAILED result at or above ``--fail-on`` (default LOW); 1 such
results exist; 2 the scan could not run. An organization scan (``--accounts``,
``--accounts-file``, ``--organization``): 2 when no (account, region) could be scanned,
else as above but at least 1 when one of them could not. Every error is one stderr line
``fargate-audit: error: <message>``, with a traceback only under ``--debug``.

Heavy modules (boto3, jsonschema, yaml) are imported inside the commands that need them,
so ``--help`` stays fast; no AWS call happens at import time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from fargate_audit import __version__
from fargate_audit.core.errors import ConfigError, FargateAuditError

PROG = "fargate-audit"
SEVERITY_CHOICES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
PROGRESS_MIN_TASKS = 50
EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageError(FargateAuditError):
    """A bad command line (argparse's complaint, as one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and exits; we want one line
        hint = f" (see {self.prog} --help)"
        raise UsageError(" ".join(message.split()) + hint)


# --------------------------------------------------------------------------- output helpers


class _Output:
    """stdout, or the ``--output`` file (written only once the command has its result)."""

    def __init__(self, path: str | None, stdout: TextIO):
        self.path = None if path == "-" else path  # "-": stdout, as for discovered --export
        self.stdout = stdout

    @property
    def terminal(self) -> TextIO | None:
        """The stream colour may be decided for (None when writing to a file)."""
        return None if self.path else self.stdout

    @property
    def _target(self) -> str:
        """The file written: the path, or where a symbolic link at it points (the link
        stays a link)."""
        return os.path.realpath(self.path) if self.path else ""

    @property
    def _special(self) -> bool:
        """A device, FIFO or socket (``/dev/null``, ``/dev/stdout``, a named pipe): written
        in place, never replaced by a regular file."""
        target = self._target
        return os.path.exists(target) and not os.path.isfile(target) and not os.path.isdir(target)

    def check_writable(self) -> None:
        if not self.path:
            return
        if self._special:
            if not os.access(self._target, os.W_OK):
                raise ConfigError(f"{self.path}: cannot write output: permission denied")
            return
        folder = os.path.dirname(self._target)
        if os.path.isdir(self.path):
            raise ConfigError(f"{self.path}: cannot write output: is a directory")
        if not os.path.isdir(folder):
            raise ConfigError(f"{self.path}: cannot write output: no directory {folder}")
        if not os.access(folder, os.W_OK) or (
            os.path.exists(self.path) and not os.access(self.path, os.W_OK)
        ):
            raise ConfigError(f"{self.path}: cannot write output: permission denied")

    @contextlib.contextmanager
    def stream(self) -> Iterator[TextIO]:
        """A stream to write a large output piece by piece: stdout, or a temporary file
        beside ``--output`` that replaces it only once complete (no half-written report).
        A symbolic link's target is the file replaced (the link stays); a device or FIFO
        (``/dev/null``) is written in place."""
        if not self.path:
            yield self.stdout
            self.stdout.flush()
            return
        if self._special:
            try:
                with open(self._target, "w", encoding="utf-8") as handle:
                    yield handle
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot write output: {exc.strerror or exc}") from exc
            return
        target = self._target
        folder = os.path.dirname(target)
        temporary = os.path.join(folder, f".{os.path.basename(target)}.{os.getpid()}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8", buffering=1 << 20) as handle:
                yield handle
            os.replace(temporary, target)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write output: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    def write(self, text: str) -> None:
        """The whole output at once: as ``stream`` writes it (a file is replaced only once
        complete, so a failed write leaves the previous one, not an empty file)."""
        with self.stream() as handle:
            handle.write(text)


class _StderrProgress:
    """``collecting: 120/500 tasks`` on one rewritten stderr line, for big scans on a TTY."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.shown = False

    def __call__(self, done: int, total: int, stage: str) -> None:
        if total < PROGRESS_MIN_TASKS:
            return
        self.stream.write(f"\r\033[K{stage}: {done}/{total} tasks")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


class _AccountProgress:
    """Progress of an organization scan on stderr: a bar rewritten in place on a terminal
    (an account that could not be scanned is printed above it), else one line per account."""

    WIDTH = 24

    def __init__(self, stream: TextIO, terminal: bool):
        self.stream = stream
        self.terminal = terminal
        self.lock = threading.Lock()
        self.shown = False

    def __call__(self, account_id: str, scopes: list, done: int, total: int) -> None:
        tasks = sum(len(scope.postures) for scope in scopes)
        errors = {scope.error for scope in scopes if scope.error}
        if len(errors) == 1 and all(scope.error for scope in scopes):  # e.g. its role was refused
            failures = list(errors)
        else:
            failures = [f"{scope.region}: {scope.error}" for scope in scopes if scope.error]
        scanned = f"{_plural(tasks, 'task')} in {_plural(len(scopes), 'region')}"
        line = f"{PROG}: account {account_id} ({done}/{total}): " + ("; ".join(failures) or scanned)
        with self.lock:
            if not self.terminal:
                self.stream.write(line + "\n")
                self.stream.flush()
                return
            if failures:
                self.stream.write("\r\033[K" + line + "\n")
            filled = self.WIDTH * done // max(total, 1)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r\033[Kaccounts [{bar}] {done}/{total}")
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def _json(value: Any) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``'s text (floats under 1e-4 spelled
    ``0.00001``), encoded by orjson: the ASFF list of a 5,000-task scan took 0.2 s of CPU
    with the standard library's encoder."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"


# --------------------------------------------------------------------------- catalog


def _load_catalog(rules_dir: str | None = None):
    from fargate_audit.core import rules

    return rules.load_catalog(rules_dir)


# --------------------------------------------------------------------------- commands


def cmd_scan(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from fargate_audit.core.engine import cyclic_gc_paused

    # One pause of the cyclic GC for the whole command: re-enabled between the scan and
    # its output, its first collection would traverse every object the scan holds (about
    # a million at 5,000 tasks, 0.2 s) to free nothing.
    with cyclic_gc_paused():
        return _scan(args, stdout, stderr)


# botocore's own check of a region name (InvalidRegionError otherwise, mid-scan)
_REGION_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


def _scan(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from fargate_audit.core import report as report_mod

    for region in args.region or ():
        if not _REGION_NAME.fullmatch(region):
            raise ConfigError(f"--region {region!r}: not an AWS region name (e.g. eu-west-1)")
    catalog = _load_catalog()
    params = None
    if args.params:
        from fargate_audit.core import params as params_mod

        _check_params_path(args.params)
        params = params_mod.load_params(args.params, catalog)

    out = _Output(args.output, stdout)
    out.check_writable()  # before the scan, not after it

    from fargate_audit.app import scan
    from fargate_audit.edge.aws import assume_role_session, check_role, session_from_env

    organization_scan = bool(args.accounts or args.accounts_file or args.organization)
    for option, value in (("--role-name", args.role_name), ("--jobs", args.jobs)):
        if value is not None and not organization_scan:
            raise ConfigError(f"{option} needs --accounts, --accounts-file or --organization")
    if args.ou and not args.organization:
        raise ConfigError("--ou needs --organization")
    if organization_scan:
        return _organization_scan(args, stdout, stderr, catalog, params, out)
    if args.external_id is not None and not args.role_arn:
        raise ConfigError("--external-id needs --role-arn, --accounts, --accounts-file or --organization")
    if args.role_arn:
        check_role(args.role_arn, args.external_id, "--role-arn")
    session = session_from_env()  # AWS_REGION first: botocore does not read it
    if args.role_arn:  # read another account: one AssumeRole now, one clear line if refused
        session = assume_role_session(session, args.role_arn, args.external_id)
    progress = _StderrProgress(stderr) if _isatty(stderr) else None
    try:
        outcome = scan.run_scan(
            session,
            regions=args.region or None,
            clusters=args.cluster or None,
            params=params,
            catalog=catalog,
            progress=progress,
        )
    finally:
        if progress is not None:
            progress.close()

    _write_scan_output(args, outcome, catalog, out)
    code = report_mod.exit_code(outcome.results, args.fail_on)
    lost = outcome.collect_result.errors
    if lost:
        # part of the scope could not be read (a region's ListClusters, a cluster's ListTasks,
        # a page of DescribeTasks): its tasks are missing, which is never a clean pass; as
        # for an organization scope with an error, the exit status is at least 1
        first = lost[0]
        stderr.write(
            f"fargate-audit: warning: {len(lost)} part(s) of the scope could not be read, their tasks "
            f"are not in the report; first: {first['message']} ({first['region']})\n"
        )
        return max(code, EXIT_FINDINGS)
    return code


MAX_JOBS = 64
# Accounts scanned at once: a scan waits on AWS, not on CPU (each account has its own API
# rate limits); bench/bench_org.py --latency-ms 50 puts 20 accounts at 3.7x one account's
# wall time with 8, 5.9x with 4.
DEFAULT_JOBS = 8


def _organization_accounts(session, parents: list[str]) -> list[str]:
    """The ACTIVE accounts of the caller's organization (or under ``parents``): one error
    line naming the refused Organizations call when the caller may not list them."""
    from fargate_audit.core.errors import CredentialsError
    from fargate_audit.edge.accounts import organization_accounts
    from fargate_audit.edge.aws import AWS_ERRORS, client, describe_error, error_code, raise_for_credentials

    try:
        return organization_accounts(client(session, "organizations", session.region_name), parents)
    except AWS_ERRORS as exc:
        call = getattr(exc, "operation_name", None) or (
            "ListAccountsForParent" if parents else "ListAccounts"
        )
        raise_for_credentials(exc, call)
        hint = ""
        if error_code(exc) in ("AccessDeniedException", "AWSOrganizationsNotInUseException"):
            hint = " (run it with the management account or a delegated administrator's credentials)"
        raise CredentialsError(f"--organization: organizations:{describe_error(exc, call)}{hint}") from exc


def _organization_scan(args, stdout, stderr, catalog, params, out: _Output) -> int:
    """``scan --accounts | --accounts-file | --organization``: each account through its
    member role, ``--jobs`` at a time; one report with ``summary.scopes``."""
    from fargate_audit.app import scan
    from fargate_audit.core import report as report_mod
    from fargate_audit.core.errors import CredentialsError, ScanError
    from fargate_audit.edge import collect
    from fargate_audit.edge.accounts import (
        DEFAULT_MEMBER_ROLE_NAME,
        MemberSessions,
        parse_account_ids,
        read_accounts_file,
    )
    from fargate_audit.edge.aws import NO_REGION_MESSAGE, session_from_env

    jobs = DEFAULT_JOBS if args.jobs is None else args.jobs
    if not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"--jobs: {jobs} is not between 1 and {MAX_JOBS}")
    parents = list(dict.fromkeys(args.ou or []))
    for parent in parents:
        if not _PARENT_ID.fullmatch(parent):
            raise ConfigError(f"--ou: {parent!r} is not an organizational unit or root id (ou-... or r-...)")
    if args.accounts:
        accounts = parse_account_ids(args.accounts)
    elif args.accounts_file:
        accounts = read_accounts_file(args.accounts_file)
    else:
        accounts = None
    session = session_from_env()
    if not session.region_name and args.region:
        # no region configured: STS would be its global endpoint, whose session tokens only
        # regions enabled by default accept; the first --region's endpoint gives tokens
        # every region takes (an opt-in region too)
        session = session_from_env(args.region[0])
    sessions = MemberSessions(session, args.role_name or DEFAULT_MEMBER_ROLE_NAME, args.external_id)
    only_arns = bool(args.cluster) and all(collect.arn_region(ref) for ref in args.cluster)
    default = [session.region_name] if session.region_name and not only_arns else []
    regions = list(dict.fromkeys(args.region or default))  # cluster ARNs add their own regions
    if not regions and not only_arns:
        raise CredentialsError(NO_REGION_MESSAGE)
    if accounts is None:
        accounts = _organization_accounts(session, parents)
    if not accounts:
        where = (
            f"{args.accounts_file} holds none"
            if args.accounts_file
            else "--accounts names none"
            if args.accounts is not None
            else "no ACTIVE account found"
        )
        raise ConfigError(f"no account to scan ({where})")

    progress = _AccountProgress(stderr, terminal=_isatty(stderr))
    try:
        outcome = scan.scan_accounts(
            sessions,
            accounts,
            regions,
            clusters=args.cluster or None,
            params=params,
            catalog=catalog,
            jobs=jobs,
            account_done=progress,
        )
    finally:
        progress.close()
    scopes = outcome.report_args["scopes"]
    failed = [s for s in scopes if s["error"]]
    if failed and len(failed) == len(scopes):
        first = failed[0]
        raise ScanError(
            f"no account and region could be scanned ({len(scopes)} tried); "
            f"{first['account_id']} {first['region']}: {first['error']}"
        )
    merged = outcome.collect_result
    if args.cluster and not merged.scope.get("clusters") and merged.errors:
        # as for a single account (interface.md): not one given cluster found or listed
        first = merged.errors[0]
        raise ScanError(f"{first['message']} ({first['region']}): no cluster in scope could be listed")
    _write_scan_output(args, outcome, catalog, out)
    code = report_mod.exit_code(outcome.results, args.fail_on)
    # a scope with an error, or a part of a scope that could not be read (a cluster's
    # ListTasks in one account): listed in the report, never a clean pass
    return max(code, EXIT_FINDINGS) if failed or outcome.collect_result.errors else code


_PARENT_ID = re.compile(r"(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})")


def _write_scan_output(args, outcome, catalog, out: _Output) -> None:
    if args.format == "json":
        with out.stream() as stream:
            outcome.write_report(stream)
    elif args.format == "asff":
        from fargate_audit.findings import asff

        findings = asff.build_findings(outcome.postures, outcome.results, catalog, outcome.now)
        out.write(_json(findings))
    elif args.format == "ocsf":
        from fargate_audit.findings import ocsf

        out.write(_json(ocsf.build_events(outcome.postures, outcome.results, catalog, outcome.now)))
    elif args.format == "html":
        from fargate_audit.cli import html

        out.write(html.render(outcome.report))
    else:
        from fargate_audit.cli import table

        terminal = out.terminal
        color = terminal is not None and table.use_color(terminal, os.environ)
        out.write(table.render(outcome.report_view(), color=color))


def load_saved_report(path: str) -> dict:
    """A saved ``scan --format json`` report, checked against the report schema: one
    ConfigError line naming the file (and the first field at fault) otherwise."""
    import jsonschema

    from fargate_audit.core import report as report_mod

    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: report file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a report file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read report: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a JSON scan report: {exc}") from None
    try:  # a "\ud800" escape is valid JSON but no text: it could not be written out
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{path}: not a JSON scan report: it holds a lone surrogate (\\ud800-\\udfff)"
        ) from None
    validator = jsonschema.Draft202012Validator(report_mod.load_schema())
    error = next(iter(sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"{path}: not a valid scan report: at {where}: {error.message[:200]}")
    return document


def cmd_report(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``report SCAN.json --output FILE``: the HTML report of a saved JSON scan report."""
    from fargate_audit.cli import html

    out = _Output(args.output, stdout)
    out.check_writable()
    document = load_saved_report(args.scan_report)
    try:
        page = html.render(document)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        # fields the schema leaves open (a task's network, images, workload) of the wrong shape
        raise ConfigError(
            f"{args.scan_report}: not a scan report this version can draw: a task's network, images or "
            f"workload field has another shape than fargate-audit writes ({type(exc).__name__})"
        ) from None
    out.write(page)
    return EXIT_OK


def catalog_markdown(catalog) -> str:
    """The rule catalog as a Markdown table (the README's table is this output)."""
    frameworks = (
        ("securityhub", "Security Hub"),
        ("cis_aws_foundations", "CIS"),
        ("nist_800_53_rev5", "NIST 800-53"),
    )
    lines = [
        "| id | severity | title | " + " | ".join(label for _, label in frameworks) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in frameworks) + " |",
    ]
    for rule in catalog.rules:
        mapping = catalog.mappings.get(rule.id) or {}
        cells = [", ".join(mapping.get(key) or []) or "-" for key, _ in frameworks]
        lines.append(f"| {rule.id} | {rule.severity} | {rule.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cmd_rules_list(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    catalog = _load_catalog()
    if args.format == "json":
        items = [
            {
                "id": rule.id,
                "severity": rule.severity,
                "title": rule.title,
                "description": rule.description,
                "remediation": rule.remediation,
                "requires": list(rule.requires),
                "parameters": list(rule.parameters),
                "mappings": catalog.mappings.get(rule.id) or {},
            }
            for rule in catalog.rules
        ]
        stdout.write(_json(items))
        return EXIT_OK
    if args.format == "markdown":
        stdout.write(catalog_markdown(catalog))
        return EXIT_OK
    width = max([len("SEVERITY"), *(len(rule.severity) for rule in catalog.rules)])
    lines = [f"{'ID':<7} {'SEVERITY':<{width}}  TITLE"]
    lines += [f"{rule.id:<7} {rule.severity:<{width}}  {rule.title}" for rule in catalog.rules]
    stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _check_params_path(path: str) -> None:
    """A params path that is no file: one error saying what it is instead."""
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory, not a params file")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: params file not found")


def cmd_rules_validate(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from fargate_audit.core.rules import find_rules_dir, validate_rules_dir

    rules_dir = find_rules_dir(args.dir)
    problems = validate_rules_dir(rules_dir)
    if problems:
        # Every problem, one line each: a rule author fixes them all in one pass.
        for line in problems:
            stderr.write(f"fargate-audit: error: {line}\n")
        return EXIT_ERROR
    catalog = _load_catalog(args.dir)
    # Each rule's meaning is its description and its fixtures: every fixture is run, and
    # each one that does not give its expected status and evidence is one line.
    from fargate_audit.core.fixtures import fixture_problems, read_bases

    count, failed = fixture_problems(catalog, read_bases(rules_dir))
    if failed:
        for line in failed:
            stderr.write(f"fargate-audit: error: {line}\n")
        stderr.write(f"fargate-audit: error: {len(failed)} of {count} fixtures failed in {rules_dir}\n")
        return EXIT_ERROR
    stdout.write(f"{len(catalog.rules)} rules valid in {rules_dir} ({count} fixtures passed)\n")
    return EXIT_OK


LOCAL_EXTRA_MODULES = {"demo": ("moto", "aws_lambda_powertools"), "invoke": ("aws_lambda_powertools",)}
LOCAL_EXTRA_PACKAGES = {"moto": "moto", "aws_lambda_powertools": "aws-lambda-powertools"}


def require_local_extra(command: str) -> None:
    """``demo`` and ``invoke`` need the ``[local]`` extra: say so in one line (exit 2)."""
    import importlib.util

    missing = [m for m in LOCAL_EXTRA_MODULES[command] if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(LOCAL_EXTRA_PACKAGES[m] for m in missing)
        raise ConfigError(
            f"{command} needs the local extra ({names} not installed): "
            "from a checkout pip install '.[local]', "
            "from a wheel pip install 'WHEEL_FILE[local]', from a release pip install 'fargate-audit[local]'"
        )


def cmd_demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    require_local_extra("demo")
    from fargate_audit.local.demo import run_demo

    return run_demo(out=stdout, err=stderr, fmt=args.format)


def cmd_invoke(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    require_local_extra("invoke")
    from fargate_audit.local.invoke import invoke

    invoke(
        args.function, args.event_file, out=stdout, err=stderr, parameter_overrides=args.parameter_overrides
    )
    return EXIT_OK


# a task ARN, long (task/CLUSTER/ID) or short (task/ID) format
_TASK_ARN = re.compile(r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:task/[A-Za-z0-9_/-]+")


def cmd_history(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from fargate_audit.cli.table import printable
    from fargate_audit.cli.views import format_history, open_table, read_table, table_name
    from fargate_audit.stores.record import Recorder

    if not _TASK_ARN.fullmatch(args.task_arn):  # a task id alone, or anything else: no history to find
        raise UsageError(
            f"TASK_ARN: {args.task_arn!r} is not an ECS task ARN "
            "(arn:PARTITION:ecs:REGION:ACCOUNT:task/CLUSTER/ID)"
        )
    table = open_table(table_name(args.table))
    entries = read_table(table, "Query", lambda: Recorder(table).history(args.task_arn))
    stdout.write(
        _json(entries) if args.format == "json" else printable(format_history(args.task_arn, entries))
    )
    return EXIT_OK


def cmd_findings(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from fargate_audit.cli.table import printable
    from fargate_audit.cli.views import findings_view, format_findings, open_table, read_table, table_name
    from fargate_audit.findings.state import FindingStore

    table = open_table(table_name(args.table))
    findings = read_table(table, "Query", FindingStore(table).active_findings)
    stdout.write(
        _json(findings_view(findings)) if args.format == "json" else printable(format_findings(findings))
    )
    return EXIT_OK


def cmd_discovered(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Destinations observed per workload from DNS query logs; optionally an allow list."""
    from datetime import UTC, datetime

    from fargate_audit.app.dnslogs import flow_namer
    from fargate_audit.cli import egress
    from fargate_audit.cli.table import printable
    from fargate_audit.cli.views import open_table, read_table, table_name
    from fargate_audit.stores.discovery import DiscoveryStore

    catalog = _load_catalog()
    overrides = {}
    if args.params:
        from fargate_audit.core import params as params_mod

        _check_params_path(args.params)
        overrides = params_mod.load_params(args.params, catalog)
    from fargate_audit.core.egress import duration_seconds
    from fargate_audit.core.params import effective_params

    values = effective_params(catalog, overrides)
    kind, path = args.export if args.export else (None, None)
    if kind is not None and kind not in egress.EXPORT_KINDS:
        raise UsageError(f"--export: {kind!r} is not one of {', '.join(egress.EXPORT_KINDS)}")
    target = _Output(path, stdout)
    target.check_writable()
    try:
        since = egress.parse_since(args.since, datetime.now(UTC))
    except egress.SelectionError as exc:
        raise UsageError(str(exc)) from None

    table = open_table(table_name(args.table))
    store = DiscoveryStore(table)
    summaries = read_table(table, "Query", store.summaries)
    selected = egress.select(summaries, args.workload, include_unattributed=kind is None)
    if args.workload is not None and not selected:  # a typo must not export an empty allow list
        known = sorted({str(s.get("workload")) for s in summaries if s.get("workload")})
        listed = ", ".join(known[:10]) + (f", ... ({len(known)} in all)" if len(known) > 10 else "")
        raise UsageError(f"--workload: {args.workload!r} matches no workload (known: {listed or 'none'})")
    view = egress.discovered_view(
        selected,
        lambda key: read_table(table, "Query", lambda: store.destinations(key)),
        values,
        since,
        flows_of=lambda key: read_table(table, "Query", lambda: store.flows(key)),
        names_of=lambda key: flow_namer(
            lambda vpc, address, low, high: read_table(
                table, "Query", lambda: store.answers(vpc, address, low, high)
            ),
            key,
            duration_seconds(values["dns_answer_lookback"]),
        ),
    )
    if kind is not None:
        accounts = egress.accounts_of(view)
        if len(accounts) > 1:  # an allow list is one workload's (or account's), not a merge
            raise ConfigError(
                f"--export: the workloads selected are in {len(accounts)} accounts ({', '.join(accounts)}): "
                "select one account's with --workload ACCOUNT/REGION/CLUSTER/GROUP (globs allowed)"
            )
        skipped: list[str] = []
        domains = egress.export_domains(
            view, values, approved_only=args.approved_only, wildcards=args.wildcards, skipped=skipped
        )
        if skipped:
            shown = ", ".join(repr(name) for name in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
            stderr.write(
                f"{PROG}: left out {len(skipped)} names that are not domain names a firewall takes: {shown}\n"
            )
        if not domains:  # an allow list of nothing blocks everything once applied (REPLACE)
            what = "approved " if args.approved_only else ""
            raise ConfigError(
                f"--export: no {what}domain name to allow among the {len(view)} workload(s) selected: "
                "nothing written (an empty allow list would block all their traffic)"
            )
        if kind == egress.NETWORK_FIREWALL:
            request = egress.network_firewall_rule_group(domains)
            egress.validate_rule_group_request(request)
            text = _json(request)
        else:
            text = egress.dns_firewall_domain_list(domains)
        target.write(text)
        stderr.write(f"{PROG}: wrote {len(domains)} domains from {len(view)} workloads to {path} ({kind})\n")
    if kind is not None and path == "-":
        return EXIT_OK  # stdout holds the export alone (one document), in any --format
    stdout.write(_json(view) if args.format == "json" else printable(egress.format_discovered(view)))
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )

    parser = _Parser(
        prog=PROG,
        description="Audit the network posture of running ECS tasks on Fargate.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    scan = commands.add_parser(
        "scan",
        parents=[common],
        help="audit every running Fargate task in scope (read-only)",
        description="Audit every running Fargate task in scope, read-only.",
    )
    scan.add_argument("--region", action="append", metavar="R", help="region to scan (repeatable)")
    scan.add_argument(
        "--cluster", action="append", metavar="NAME_OR_ARN", help="cluster to scan (repeatable); default all"
    )
    scan.add_argument("--params", metavar="FILE", help="params file (YAML or JSON)")
    scan.add_argument(
        "--format",
        choices=("table", "json", "asff", "ocsf", "html"),
        default="table",
        help="table (default), json (scan-report.schema.json), asff (the Security Hub findings), "
        "ocsf (OCSF 1.7.0 Compliance Finding events, one per task and rule) or html (one "
        "self-contained page drawing each task's network path)",
    )
    scan.add_argument("--output", metavar="FILE", help="write the output to FILE instead of stdout")
    scan.add_argument(
        "--fail-on",
        type=str.upper,
        choices=SEVERITY_CHOICES,
        default="LOW",
        metavar="SEVERITY",
        help="exit 1 when a FAILED result is at or above this severity (default LOW; "
        + ", ".join(SEVERITY_CHOICES)
        + ")",
    )
    targets = scan.add_mutually_exclusive_group()
    targets.add_argument(
        "--role-arn",
        metavar="ARN",
        help="read through this IAM role, e.g. another account's (sts:AssumeRole, session fargate-audit)",
    )
    targets.add_argument(
        "--accounts",
        action="append",
        metavar="ID[,ID...]",
        help="scan these accounts, each through its member role (repeatable)",
    )
    targets.add_argument(
        "--accounts-file", metavar="FILE", help="scan the accounts listed in FILE (one 12-digit id a line)"
    )
    targets.add_argument(
        "--organization",
        action="store_true",
        help="scan every ACTIVE account of the caller's organization (management or delegated admin)",
    )
    scan.add_argument(
        "--ou",
        action="append",
        metavar="OU_ID",
        help="with --organization: only the accounts under this OU or root, recursively (repeatable)",
    )
    scan.add_argument(
        "--role-name",
        metavar="NAME",
        help="the member role to assume in each account (default: fargate-audit-member, as the "
        "member template creates it)",
    )
    scan.add_argument(
        "--external-id",
        metavar="ID",
        help="the ExternalId the role's (or the member roles') trust policy requires",
    )
    scan.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help=f"accounts scanned in parallel (default {DEFAULT_JOBS}; organization scans)",
    )
    scan.set_defaults(func=cmd_scan)

    report = commands.add_parser(
        "report",
        parents=[common],
        help="the HTML report of a saved JSON scan report (scan --format json)",
    )
    report.add_argument("scan_report", metavar="SCAN.json", help="a report written by scan --format json")
    report.add_argument("--output", metavar="FILE", help="write the HTML to FILE instead of stdout")
    report.set_defaults(func=cmd_report)

    rules = commands.add_parser("rules", parents=[common], help="the rule catalog")
    rules_commands = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", parser_class=_Parser)
    listing = rules_commands.add_parser("list", parents=[common], help="ids, severities and titles")
    listing.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    listing.set_defaults(func=cmd_rules_list)
    validate = rules_commands.add_parser(
        "validate", parents=[common], help="check rule files against rules/schema.json"
    )
    validate.add_argument(
        "dir", nargs="?", metavar="DIR", help="rules directory (default: the shipped rules)"
    )
    validate.set_defaults(func=cmd_rules_validate)

    demo = commands.add_parser(
        "demo", parents=[common], help="run the whole pipeline on an emulated AWS environment"
    )
    demo.add_argument("--format", choices=("table", "json"), default="table")
    demo.set_defaults(func=cmd_demo)

    invoke = commands.add_parser(
        "invoke",
        parents=[common],
        help="run one Lambda handler locally on an event file (no container runtime)",
        description="Run a function's handler locally as Lambda would: environment from template.yaml, "
        "a Lambda-like context. With AWS_ENDPOINT_URL set (an emulator) the table, Security Hub and "
        "the sweep queue are created first when missing.",
    )
    invoke.add_argument("function", metavar="FUNCTION", help="folder under functions/ or logical id")
    invoke.add_argument("event_file", metavar="EVENT_FILE", help="the event, as JSON (e.g. events/*.json)")
    invoke.add_argument(
        "--parameter-overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters as sam deploy takes them (a list parameter as A,B; "
        "also ParameterKey=K,ParameterValue=V): the function sees what it would deployed with these values",
    )
    invoke.set_defaults(func=cmd_invoke)

    table_help = "the stack's table (default: $FARGATE_AUDIT_TABLE, else fargate-audit-posture)"
    history = commands.add_parser(
        "history", parents=[common], help="recorded posture changes of one task, oldest first"
    )
    history.add_argument("task_arn", metavar="TASK_ARN")
    history.add_argument("--format", choices=("table", "json"), default="table")
    history.add_argument("--table", metavar="NAME", help=table_help)
    history.set_defaults(func=cmd_history)

    findings = commands.add_parser(
        "findings", parents=[common], help="the findings the auditor holds active, with workload and status"
    )
    findings.add_argument("--format", choices=("table", "json"), default="table")
    findings.add_argument("--table", metavar="NAME", help=table_help)
    findings.set_defaults(func=cmd_findings)

    discovered = commands.add_parser(
        "discovered",
        parents=[common],
        help="destinations each workload was seen resolving (DNS query logs); allow-list exports",
        description="Destinations observed per workload from Route 53 Resolver query logs (the dns_logs "
        "function records them). DNS logs show names, not protocols: the protocol column is a hint.",
    )
    discovered.add_argument(
        "--workload",
        metavar="W",
        help="glob over cluster/group, group (e.g. service:web), ACCOUNT/REGION/cluster/group, "
        "or 'unattributed'",
    )
    discovered.add_argument(
        "--since", metavar="T", help="last seen since: a duration (30m, 24h, 7d) or ISO time"
    )
    discovered.add_argument("--format", choices=("table", "json"), default="table")
    discovered.add_argument(
        "--export",
        nargs=2,
        metavar=("KIND", "FILE"),
        help="also write an allow list of the observed names: network-firewall (CreateRuleGroup input, "
        "--cli-input-json) or dns-firewall (ImportFirewallDomains file)",
    )
    discovered.add_argument(
        "--approved-only", action="store_true", help="export only names approved_domains already approves"
    )
    discovered.add_argument(
        "--wildcards",
        action="store_true",
        help="export names an approved *.d pattern covers as that pattern (shorter, broader)",
    )
    discovered.add_argument(
        "--params", metavar="FILE", help="params file (approved_domains, approved_registries)"
    )
    discovered.add_argument("--table", metavar="NAME", help=table_help)
    discovered.set_defaults(func=cmd_discovered)
    return parser


def _error_line(message: str) -> str:
    return f"{PROG}: error: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        stderr.write(_error_line(str(exc)))
        return EXIT_ERROR
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK

    func: Callable[..., int] | None = getattr(args, "func", None)
    if func is None:
        missing = "a rules subcommand (list, validate)" if args.command == "rules" else "a command"
        stderr.write(_error_line(f"{missing} is required (see {PROG} --help)"))
        return EXIT_ERROR
    debug = getattr(args, "debug", False)
    try:
        return func(args, stdout, stderr)
    except FargateAuditError as exc:
        if debug:
            traceback.print_exc(file=stderr)
        stderr.write(_error_line(str(exc)))
        return EXIT_ERROR
    except KeyboardInterrupt:
        stderr.write(_error_line("interrupted"))
        return 130
    except BrokenPipeError:  # e.g. `fargate-audit scan | head`
        with contextlib.suppress(OSError, ValueError):  # silence Python's flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:
        if debug:
            traceback.print_exc(file=stderr)
        stderr.write(_error_line(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)"))
        return EXIT_ERROR


def run() -> None:
    """The console script and ``python -m fargate_audit``: :func:`main`, then exit at once.

    Once the output is written and flushed there is nothing left to do but free memory: a
    5,000-task scan holds about a million small objects whose deallocation at interpreter
    exit costs a tenth of a second of CPU for nothing. ``os._exit`` skips it (as mypy's
    command line does); no atexit handler or non-daemon thread of ours has work left."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()

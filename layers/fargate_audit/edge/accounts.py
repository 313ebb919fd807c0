"""Which accounts to audit, and a session in each (interface.md "Organization scale").

- :func:`parse_account_ids` / :func:`read_accounts_file`: ids given on a command line, in
  a template parameter or in a file (one 12-digit id per line, ``#`` comments and blank
  lines allowed); duplicates are audited once; a malformed id is one ConfigError naming
  the value (and the file and line).
- :func:`organization_accounts`: the ACTIVE accounts of the organization
  (``organizations:ListAccounts``, paginated), or those under the given OUs
  (``ListAccountsForParent`` and ``ListOrganizationalUnitsForParent``, recursively).
- :class:`MemberSessions`: one ``sts:AssumeRole`` session per account on
  ``arn:<partition>:iam::<account>:role/<role name>`` (with the ExternalId), made on first
  use and kept for the life of the process (a warm Lambda container): its credentials
  refresh themselves before they expire, so an account costs one AssumeRole per process,
  not one per task or event. The caller's own account is read with the caller's session
  when ``own_account`` is given and the role is not needed there. A refused role is one
  :class:`AssumeRoleError` (``sts:AssumeRole: <code>: <message> (<role>)``), the same for
  the CLI and the functions.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fargate_audit.core.errors import ConfigError, CredentialsError, FargateAuditError
from fargate_audit.edge.aws import AWS_ERRORS, assume_role_session, check_role, describe_error

ACCOUNT_ID = re.compile(r"[0-9]{12}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# The role the member template (templates/member.yaml) creates in every audited account.
DEFAULT_MEMBER_ROLE_NAME = "fargate-audit-member"
LIST_RETRY_SECONDS = 60.0  # a failed Organizations listing is tried again after this long
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")


def parse_account_ids(values: Iterable[str], source: str = "--accounts") -> list[str]:
    """The account ids in ``values`` (each may be comma-separated), in first-seen order,
    each once. ConfigError naming ``source`` and the value when one is not 12 digits."""
    ids: dict[str, None] = {}
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if not ACCOUNT_ID.fullmatch(part):
                raise ConfigError(f"{source}: {part!r} is not a 12-digit account id")
            ids.setdefault(part, None)
    return list(ids)


def read_accounts_file(path: str | Path) -> list[str]:
    """The ids of an accounts file: one per line, ``#`` starts a comment, blank lines are
    skipped; each id once. ConfigError ``FILE:LINE: ...`` for a malformed line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the accounts file ({exc.strerror or exc})") from None
    # a BOM is not part of line 1: UTF-8's (Windows editors), or UTF-16's (PowerShell's `>`)
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the accounts file is not UTF-8 text (save it as UTF-8)") from None
    ids: dict[str, None] = {}
    # lines end at \n, \r\n or \r only (str.splitlines also breaks at form feeds, NEL and
    # U+2028 a comment may hold: the line numbers would then not be an editor's)
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        if not ACCOUNT_ID.fullmatch(value):
            raise ConfigError(f"{path}:{number}: {value!r} is not a 12-digit account id")
        ids.setdefault(value, None)
    return list(ids)


def organization_accounts(organizations_client, parent_ids: Iterable[str] = ()) -> list[str]:
    """Sorted ids of the ACTIVE accounts of the organization, or of those under the OUs
    (or roots) ``parent_ids``, recursively. AWS errors propagate (the caller names them)."""
    parents = list(parent_ids)
    accounts: list[dict] = []
    if not parents:
        for page in organizations_client.get_paginator("list_accounts").paginate():
            accounts += page.get("Accounts") or []
    else:
        seen: set[str] = set()
        pending = list(parents)
        while pending:
            parent = pending.pop()
            if parent in seen:
                continue
            seen.add(parent)
            for page in organizations_client.get_paginator("list_accounts_for_parent").paginate(
                ParentId=parent
            ):
                accounts += page.get("Accounts") or []
            for page in organizations_client.get_paginator("list_organizational_units_for_parent").paginate(
                ParentId=parent
            ):
                pending += [ou["Id"] for ou in page.get("OrganizationalUnits") or []]
    return sorted({a["Id"] for a in accounts if _active(a)})


def _active(account: dict) -> bool:
    # ListAccounts gives Status (ACTIVE | SUSPENDED | PENDING_CLOSURE) and, since 2025,
    # State (ACTIVE | SUSPENDED | PENDING_CLOSURE | CLOSED ...): either must say ACTIVE.
    state = account.get("State") or account.get("Status")
    return state == "ACTIVE"


def partition_of(region: str | None) -> str:
    region = region or ""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def member_role_arn(account_id: str, role_name: str, region: str | None = None) -> str:
    return f"arn:{partition_of(region)}:iam::{account_id}:role/{role_name}"


def check_role_name(role_name: str, what: str = "--role-name") -> None:
    if not _ROLE_NAME.fullmatch(role_name or ""):
        raise ConfigError(f"{what}: {role_name!r} is not an IAM role name")


def assume_error(exc: BaseException, role_arn: str) -> str:
    """One line for a refused AssumeRole: ``sts:AssumeRole: <code>: <message> (<role>)``."""
    if isinstance(exc, AWS_ERRORS):
        return f"sts:{describe_error(exc, 'AssumeRole')} ({role_arn})"
    return f"sts:AssumeRole: {' '.join(str(exc).split())} ({role_arn})"


class AssumeRoleError(FargateAuditError):
    """An audited account's member role could not be assumed: ``str()`` is the one line of
    :func:`assume_error` (``sts:AssumeRole: <code>: <message> (<role>)``)."""

    def __init__(self, message: str, account: str) -> None:
        super().__init__(message)
        self.account = account


class MemberSessions:
    """One assumed-role session per audited account, made on first use and kept.

    ``source``: the caller's session (its credentials assume the roles); ``role_name`` /
    ``external_id``: the member role; ``session_name``: the RoleSessionName (e.g. the
    function's name, for CloudTrail); ``own_account``: the caller's account, read with
    ``source`` itself (no role needed). Nothing calls AWS before the first :meth:`get`
    (the Lambda runtime is built without an AWS call). Thread-safe: the CLI scans accounts
    in parallel.
    """

    def __init__(
        self,
        source,
        role_name: str = DEFAULT_MEMBER_ROLE_NAME,
        external_id: str | None = None,
        *,
        session_name: str = "fargate-audit",
        own_account: str | None = None,
    ) -> None:
        check_role_name(role_name)
        check_role(member_role_arn("000000000000", role_name), external_id, "member role")
        self.source = source
        self.role_name = role_name
        self.external_id = external_id
        self.session_name = session_name
        self.own_account = own_account
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        # AssumeRole requests made: one per account per process, plus a refresh before the
        # credentials expire and a renewal when AWS answers a call that they expired
        self.assumed = 0

    def role_arn(self, account_id: str) -> str:
        return member_role_arn(account_id, self.role_name, getattr(self.source, "region_name", None))

    def get(self, account_id: str):
        """The session of ``account_id``, its role proven: ``sts:AssumeRole`` on the first
        get (and again when the credentials near their expiry; none while they are fresh).
        A refusal is an :class:`AssumeRoleError` whose ``str()`` is the one line of
        :func:`assume_error`; the session is dropped, so the next get asks STS afresh."""
        if not ACCOUNT_ID.fullmatch(account_id or ""):
            raise ConfigError(f"{account_id!r} is not a 12-digit account id")
        if account_id == self.own_account:
            return self.source
        role_arn = self.role_arn(account_id)
        session = None
        try:
            with self._lock:
                session = self._sessions.get(account_id)
                if session is None:
                    session = assume_role_session(
                        self.source,
                        role_arn,
                        self.external_id,
                        eager=False,
                        session_name=self.session_name,
                        on_assume=self._assume_requested,
                    )
                    self._sessions[account_id] = session
            credentials = session.get_credentials()
            if credentials is None:
                raise CredentialsError("no credentials")
            credentials.get_frozen_credentials()  # AssumeRole now (or a refresh) if due
        except (*AWS_ERRORS, CredentialsError) as exc:
            with self._lock:
                if session is not None and self._sessions.get(account_id) is session:
                    del self._sessions[account_id]
            raise AssumeRoleError(assume_error(exc, role_arn), account_id) from exc
        return session

    def _assume_requested(self) -> None:
        with self._count_lock:
            self.assumed += 1


# --------------------------------------------------------------------------- the Lambda side


class AccountClients:
    """The counted clients of each audited account (the functions of a deployed stack).

    ``central``: the function's own :class:`~fargate_audit.edge.aws.Clients` (the table, the
    queues, and the reads of ``sessions.own_account``: the function's own account is read
    with the function's own role); ``sessions``: the member sessions. The clients of an
    account share ``central``'s counter and deadline and are made once per process, as its
    session is: one ``sts:AssumeRole`` per account per warm container, made on the first
    :meth:`get` (never at build time) and again only when the credentials near their expiry
    (botocore refreshes them before any call that would use expired ones).

    :meth:`get` proves the role first (:meth:`MemberSessions.get`: no call while the
    credentials are fresh), so a refused role is an :class:`AssumeRoleError` before anything
    is read or written.
    A refusal is remembered ``retry_after`` seconds (the next records of a batch of that
    account fail without asking STS again), then the role is tried afresh.
    """

    def __init__(
        self,
        central,
        sessions: MemberSessions,
        *,
        retry_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.central = central
        self.sessions = sessions
        self.retry_after = float(retry_after)
        self._clock = clock
        self._clients: dict[str, tuple[object, object]] = {}  # account -> (session, Clients)
        self._refused: dict[str, tuple[float, str]] = {}  # account -> (when, error line)

    def get(self, account_id: str):
        from fargate_audit.edge.aws import Clients

        if account_id == self.sessions.own_account:
            return self.central
        refused = self._refused.get(account_id)
        if refused is not None and self._clock() - refused[0] < self.retry_after:
            raise AssumeRoleError(refused[1], account_id)
        try:
            session = self.sessions.get(account_id)
        except AssumeRoleError as exc:
            self._clients.pop(account_id, None)
            self._refused[account_id] = (self._clock(), str(exc))
            raise
        self._refused.pop(account_id, None)
        known = self._clients.get(account_id)
        if known is None or known[0] is not session:
            known = (session, Clients(session, parent=self.central))
            self._clients[account_id] = known
        return known[1]


def _organizations_region(region: str | None) -> str:
    # Organizations has one endpoint per partition (us-east-1 in the commercial partition).
    return {"aws-cn": "cn-northwest-1", "aws-us-gov": "us-gov-west-1"}.get(partition_of(region), "us-east-1")


class AuditedAccounts:
    """The ids of the audited accounts: ``fixed`` (e.g. AUDITED_ACCOUNTS) plus, with an
    ``organizations_role_arn``, the ACTIVE accounts of the organization (under
    ``parent_ids`` when given), read through that role (assumed with ``external_id`` when
    given: templates/organizations-reader.yaml) on first use and cached
    ``ttl_seconds`` (the life of a warm container, refreshed every 15 minutes by default).
    When a refresh fails the previous list is kept and the error is in ``error``; with no
    list yet the AWS error propagates (the invocation fails and is retried)."""

    def __init__(
        self,
        fixed: Iterable[str] = (),
        *,
        organizations_role_arn: str | None = None,
        parent_ids: Iterable[str] = (),
        source=None,
        external_id: str | None = None,
        session_name: str = "fargate-audit",
        ttl_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fixed = tuple(dict.fromkeys(fixed))
        self.organizations_role_arn = organizations_role_arn or None
        self.parent_ids = tuple(parent_ids)
        self.source = source
        self.external_id = external_id
        self.session_name = session_name
        self.ttl = float(ttl_seconds)
        self._clock = clock
        self._listed: tuple[float, tuple[str, ...]] | None = None
        self._session = None
        self.error: str | None = None  # the last listing's failure (one line), None once one succeeds
        self.lookups = 0  # Organizations listings made
        self.failures = 0  # listings that failed

    def _organization(self) -> tuple[str, ...]:
        from fargate_audit.edge.aws import assume_role_session, client

        if self._listed is not None and self._clock() - self._listed[0] < self.ttl:
            return self._listed[1]
        try:
            if self._session is None:
                self._session = assume_role_session(
                    self.source,
                    self.organizations_role_arn,
                    self.external_id,
                    eager=False,
                    session_name=self.session_name,
                )
            region = _organizations_region(getattr(self.source, "region_name", None))
            organizations = client(self._session, "organizations", region)
            ids = tuple(organization_accounts(organizations, self.parent_ids))
        except AWS_ERRORS as exc:
            # the call that failed: the AssumeRole of ORGANIZATIONS_ROLE_ARN, ListAccounts,
            # or under OUs ListAccountsForParent / ListOrganizationalUnitsForParent
            call = getattr(exc, "operation_name", None) or "ListAccounts"
            self.error = f"{'sts' if call == 'AssumeRole' else 'organizations'}:{describe_error(exc, call)}"
            self.failures += 1
            if self._listed is None:
                raise
            # the previous list stays in use; the next listing is tried in a minute, not
            # on every call meanwhile
            self._listed = (self._clock() - self.ttl + LIST_RETRY_SECONDS, self._listed[1])
            return self._listed[1]
        self.lookups += 1
        self.error = None
        self._listed = (self._clock(), ids)
        return ids

    def ids(self) -> tuple[str, ...]:
        """Every audited account id, each once (the fixed ones first, then the
        organization's, sorted)."""
        listed = self._organization() if self.organizations_role_arn else ()
        return tuple(dict.fromkeys((*self.fixed, *listed)))

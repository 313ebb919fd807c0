"""Small AWS access helpers: client construction, request counting, one-line error messages.

Nothing here calls AWS or builds a client at import time. Endpoints and credentials come
from botocore's standard chain only (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from fargate_audit.core.errors import ConfigError, CredentialsError
from fargate_audit.edge.fastparse import FactParserFactory

USER_AGENT_EXTRA = "fargate-audit/0.1"

# Standard mode retries ThrottlingException / RequestLimitExceeded (and transient 5xx)
# with jittered exponential backoff; max_attempts counts the retries after the first try.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    user_agent_extra=USER_AGENT_EXTRA,
)

NO_CREDENTIALS_MESSAGE = (
    "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
)
NO_REGION_MESSAGE = "no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION, or pass --region)"
# the same for the commands and functions that take no --region (history, findings,
# discovered, invoke, a Lambda): the table and the handler's clients are in one region
NO_REGION_SET_MESSAGE = "no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION)"

# Error codes by which AWS says the credentials themselves are unusable: every later call
# would fail the same way, so the scan stops instead of reporting an empty account.
REJECTED_CREDENTIALS_CODES = frozenset(
    {
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)

# Error codes by which AWS says a request's temporary credentials have expired (or the
# request was signed too long ago). botocore refreshes assumed-role credentials before
# their local expiry, but AWS may still answer so first (clock skew, a revoked session):
# an assumed-role session then renews its credentials and retries the call, once.
EXPIRED_CREDENTIALS_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})

ClientFactory = Callable[[str, str], Any]

# botocore's standard mode sleeps rand(0, 1) * min(2 ** (attempt - 1), 20) s before a retry,
# plus up to 5 s more when AWS sends x-amz-retry-after.
RETRY_MAX_BACKOFF_SECONDS = 20
RETRY_AFTER_MAX_ADDITIONAL_SECONDS = 5

# Cross-account reads (scan --role-arn, the stack's AuditRoleArn): the session name and the
# forms IAM accepts for a role ARN and an external id (2-1,224 characters of [\w+=,.@:/-]).
ROLE_SESSION_NAME = "fargate-audit"
ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}")
EXTERNAL_ID_PATTERN = re.compile(r"[\w+=,.@:/-]{2,1224}")

_log = logging.getLogger(__name__)


class Session:
    """The part of a boto3 ``Session`` this library uses (``client``, ``region_name``,
    ``get_credentials``, ``_session``), over botocore's own session: the same credential,
    region and endpoint chain, the same clients. boto3 adds resources and S3 transfer
    helpers that nothing here uses, and importing it costs about 75 ms of CPU on every CLI
    run and Lambda cold start. Every function that takes a session accepts a boto3 one too.
    """

    def __init__(self, region_name: str | None = None, botocore_session: Any = None) -> None:
        import botocore.session

        self._session = botocore_session if botocore_session is not None else botocore.session.Session()
        if region_name:
            self._session.set_config_variable("region", region_name)

    @property
    def region_name(self) -> str | None:
        return self._session.get_config_variable("region")

    def client(self, service_name: str, region_name: str | None = None, config: Any = None, **kwargs: Any):
        return self._session.create_client(service_name, region_name=region_name, config=config, **kwargs)

    def get_credentials(self):
        return self._session.get_credentials()


def session_from_env(region: str | None = None) -> Session:
    """A session from the standard chain (AWS_PROFILE, credentials, AWS_ENDPOINT_URL).

    The region: ``region`` when given, else ``AWS_REGION`` (interface.md; botocore itself
    does not read it, and the Lambda runtime sets it), else botocore's own chain
    (AWS_DEFAULT_REGION, the profile). A bad profile raises CredentialsError (one line).
    """
    try:
        session = Session(region_name=region or os.environ.get("AWS_REGION") or None)
        session.region_name  # noqa: B018 - reads the profile now: a bad AWS_PROFILE fails here
        # the region may come from the environment, so botocore would find a missing
        # AWS_PROFILE only at the first call (an "unexpected" error there): read it now
        session._session.get_scoped_config()
        return session
    except BotoCoreError as exc:  # e.g. ProfileNotFound for a bad AWS_PROFILE
        raise CredentialsError(" ".join(str(exc).split())) from exc


def role_account(role_arn: str) -> str:
    """The account id of an IAM role ARN."""
    return role_arn.split(":")[4]


def check_role(role_arn: str, external_id: str | None, what: str = "role") -> None:
    """ConfigError (one line) when ``role_arn`` is not an IAM role ARN or ``external_id`` is
    not a possible external id. The external id itself is never echoed."""
    if not ROLE_ARN_PATTERN.fullmatch(role_arn or ""):
        raise ConfigError(f"{what}: {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    if external_id is not None and not EXTERNAL_ID_PATTERN.fullmatch(external_id):
        raise ConfigError(
            f"{what}: the external id must be 2 to 1224 characters of letters, digits and +=,.@:/-"
        )


# The keys AssumedRoleCredentials keeps in a call's botocore request context.
_SIGNED_WITH = "fargate_audit_credentials"  # the generation of credentials that signed the attempt
_RENEW = "fargate_audit_renew"  # renew those before signing the next attempt
_RENEWED = "fargate_audit_renewed"  # the call has had its renewal


class AssumedRoleCredentials(DeferredRefreshableCredentials):
    """The credentials of an :func:`assume_role_session`: botocore's own (an AssumeRole on
    first use, another before they expire), plus one renewal per call when AWS answers it
    with an :data:`EXPIRED_CREDENTIALS_CODES` code before their local expiry.

    Two botocore handlers on the session (so on every client made from it, whoever counts
    its calls) do it: ``needs-retry`` asks for an immediate retry of a call answered with an
    expired-token code, once per call; ``before-sign`` of that retry renews the credentials
    (:meth:`renew`) and the retry is signed with the fresh ones. A second expiry is the
    call's error, as any other; a retry the deadline vetoes (``Clients``) costs no
    AssumeRole. ``answers``: the AssumeRole fetcher's cache (dropped on renewal).
    """

    def __init__(self, refresh_using, answers: dict, role_arn: str) -> None:
        super().__init__(refresh_using=refresh_using, method="assume-role")
        self._answers = answers
        self.role_arn = role_arn
        self.generation = 0  # how many times credentials were received (AssumeRole answers)

    def _set_from_data(self, data) -> None:  # botocore: every refresh ends here
        super()._set_from_data(data)
        self.generation += 1

    def renew(self, generation: int) -> None:
        """AssumeRole again, unless the credentials changed since ``generation`` (another
        thread renewed or refreshed them meanwhile: at most one AssumeRole per failure).
        A refused AssumeRole keeps the old credentials (the retry fails as the call did)."""
        with self._refresh_lock:  # botocore's own: no refresh runs meanwhile
            if self.generation != generation:
                return
            self._answers.clear()  # the fetcher's copy of the answer AWS no longer takes
            try:
                self._protected_refresh(is_mandatory=True)
            except Exception as exc:  # noqa: BLE001 - the call's own error is reported
                _log.warning("renewing the credentials of %s failed: %s", self.role_arn, exc)

    def before_sign(self, request=None, **_: Any) -> None:
        context = getattr(request, "context", None)
        if context is None:
            return
        if _RENEW in context:
            self.renew(context.pop(_RENEW))
        self.get_frozen_credentials()  # a refresh due now is made before the generation is noted
        context[_SIGNED_WITH] = self.generation

    def needs_retry(self, response: Any = None, request_dict: Any = None, **_: Any):
        """0 (retry now) for a call's first expired-token answer, else None (botocore's
        own retry rules decide)."""
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
        code = ((parsed or {}).get("Error") or {}).get("Code") if isinstance(parsed, dict) else None
        context = (request_dict or {}).get("context")
        if code not in EXPIRED_CREDENTIALS_CODES or context is None or context.get(_RENEWED):
            return None
        context[_RENEWED] = True
        context[_RENEW] = context.get(_SIGNED_WITH, self.generation)
        return 0


def assume_role_session(
    session,
    role_arn: str,
    external_id: str | None = None,
    *,
    eager: bool = True,
    session_name: str = ROLE_SESSION_NAME,
    on_assume: Callable[[], None] | None = None,
):
    """A session whose credentials come from ``sts:AssumeRole`` on ``role_arn`` (session
    name ``session_name``, ``ExternalId`` when given), made with ``session``'s credentials
    and refreshed before they expire (a warm Lambda container outlives one hour), or
    renewed when AWS answers a call that they expired (:class:`AssumedRoleCredentials`).

    ``eager``: assume the role now, so that a refusal is one CredentialsError line (the
    CLI); else on the first call made with the session (no AWS call at build time: the
    Lambda runtime). Region and endpoint chain: those of ``session``. ``on_assume``: called
    at each AssumeRole request (first, refreshes and renewals).
    """
    import botocore.session
    from botocore.credentials import AssumeRoleCredentialFetcher, CredentialProvider, CredentialResolver

    check_role(role_arn, external_id)
    region = session.region_name
    source = session.get_credentials()
    if source is None:
        raise CredentialsError(NO_CREDENTIALS_MESSAGE)
    extra_args = {"RoleSessionName": session_name[:64]}
    if external_id:
        extra_args["ExternalId"] = external_id

    def sts_client(*args: Any, **kwargs: Any):
        sts = session.client(*args, region_name=region, config=CLIENT_CONFIG, **kwargs)
        if on_assume is not None:
            sts.meta.events.register("before-call.sts.AssumeRole", lambda **_: on_assume())
        return sts

    answers: dict = {}
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=sts_client,
        source_credentials=source,
        role_arn=role_arn,
        extra_args=extra_args,
        cache=answers,
    )
    credentials = AssumedRoleCredentials(fetcher.fetch_credentials, answers, role_arn)

    class _AssumedRole(CredentialProvider):
        METHOD = "assume-role"

        def load(self):
            return credentials

    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([_AssumedRole()]))
    source_core = getattr(session, "_session", None)  # reuse its parsed service models
    if source_core is not None:
        core.register_component("data_loader", source_core.get_component("data_loader"))
    # after each client's own retry rules (a service's handlers come first): they do not
    # retry an expired token, and a deadline's veto (Clients) comes before both
    core.register("needs-retry", credentials.needs_retry, unique_id="fargate-audit-renew-retry")
    core.register("before-sign", credentials.before_sign, unique_id="fargate-audit-renew-sign")
    assumed = Session(region_name=region, botocore_session=core)
    if eager:
        try:
            credentials.get_frozen_credentials()
        except AWS_ERRORS as exc:
            raise CredentialsError(f"cannot assume {role_arn}: {describe_error(exc, 'AssumeRole')}") from exc
    return assumed


# The services the collector reads facts from: their clients give timestamps as the
# ISO-8601 text the raw bundle keeps (design.md section 1), not datetimes the collector
# would then walk every response to convert back (a fifth of a 5,000-task scan's own CPU).
FACT_READ_SERVICES = frozenset({"ecs", "ec2", "elbv2", "route53resolver", "wafv2"})


def iso_timestamp(value: Any) -> str:
    """botocore's timestamp parser for the fact reads: epoch seconds (JSON protocols) become
    ISO-8601 UTC text, as ``datetime.isoformat`` writes it; text (XML protocols, already
    ISO-8601) is kept as AWS wrote it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return str(value)


def client(session, service: str, region: str):
    """A boto3 client with standard-mode retries (8) and the project's user agent; for a
    :data:`FACT_READ_SERVICES` service, timestamps as text (:func:`iso_timestamp`)."""
    try:
        made = session.client(service, region_name=region, config=CLIENT_CONFIG)
    except NoRegionError as exc:
        raise CredentialsError(NO_REGION_MESSAGE) from exc
    if service in FACT_READ_SERVICES:
        _parse_timestamps_as_text(made)
    return made


def _parse_timestamps_as_text(made) -> None:
    """Make ``made`` parse timestamps with :func:`iso_timestamp`. botocore parses each
    response with a parser that the client's endpoint creates per request from its
    ResponseParserFactory (the client's own ``_response_parser`` is not the one used), and
    a session's clients share the session's factory: this client's endpoint gets a factory
    of its own whose default timestamp parser is :func:`iso_timestamp`."""
    endpoint = getattr(made, "_endpoint", None)
    if endpoint is None or not hasattr(endpoint, "_response_parser_factory"):
        return
    factory = FactParserFactory()  # JSON bodies converted by plan (edge.fastparse)
    factory.set_parser_defaults(timestamp_parser=iso_timestamp)
    endpoint._response_parser_factory = factory


def timestamps_as_text(aws_client) -> bool:
    """Whether ``aws_client``'s responses are parsed with :func:`iso_timestamp` (a client
    that :func:`client` made; an injected one, e.g. a Stubber's, gives what it was given)."""
    factory = getattr(getattr(aws_client, "_endpoint", None), "_response_parser_factory", None)
    return getattr(factory, "_defaults", {}).get("timestamp_parser") is iso_timestamp


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else the exception class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def describe_error(exc: BaseException, call: str) -> str:
    """One line naming the call, the error code and AWS's message.

    e.g. "DescribeNetworkInterfaces: UnauthorizedOperation: You are not authorized ..."
    """
    if isinstance(exc, ClientError):
        message = str(exc.response.get("Error", {}).get("Message") or "")
    else:
        message = str(exc)
    message = " ".join(message.split())
    code = error_code(exc)
    return f"{call}: {code}: {message}" if message else f"{call}: {code}"


def raise_for_credentials(exc: BaseException, call: str, service: str | None = None) -> None:
    """Raise CredentialsError when `exc` means the credentials or region are unusable.
    ``service`` (e.g. ``ecs``): AWS's refusal is also kept as ``refused``, the call as
    IAM names it (``ecs:ListClusters: UnrecognizedClientException: ...``): the error of
    one account and region in an organization scan (interface.md)."""
    if isinstance(exc, NoCredentialsError):
        raise CredentialsError(NO_CREDENTIALS_MESSAGE) from exc
    if isinstance(exc, NoRegionError):
        raise CredentialsError(NO_REGION_MESSAGE) from exc
    if isinstance(exc, PartialCredentialsError | CredentialRetrievalError):
        raise CredentialsError(f"unusable AWS credentials: {' '.join(str(exc).split())}") from exc
    if isinstance(exc, ClientError) and error_code(exc) in REJECTED_CREDENTIALS_CODES:
        rejected = CredentialsError(f"AWS rejected the credentials: {describe_error(exc, call)}")
        if service:
            rejected.refused = f"{service}:{describe_error(exc, call)}"
        raise rejected from exc


def failure_message(exc: BaseException, call: str, service: str | None = None) -> str:
    """For an exception caught around an AWS call: raise on credential problems, else the
    one-line message to record."""
    raise_for_credentials(exc, call, service)
    return describe_error(exc, call)


# The exceptions a failed AWS call may raise (throttling past retries is a ClientError).
AWS_ERRORS = (ClientError, BotoCoreError)

# Error codes of a failure that a later try may not meet (throttling past the SDK's
# retries, a service's transient 5xx, a connection that failed): botocore's standard retry
# mode's codes, and the class names error_code gives connection failures.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "EC2ThrottledException",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        # a 5xx whose body botocore could not parse has its HTTP status as its code
        "500",
        "502",
        "503",
        "504",
    }
)


def transient_failure(message: str) -> bool:
    """A one-line failure (``describe_error``'s ``Call: Code: message``, the call in any
    form: ``DescribeTasks``, ``sts:AssumeRole``) that a later try may not meet."""
    parts = message.split(": ", 2)
    # the code ends at a space or "(": "sts:AssumeRole: Throttling (arn:...)" when AWS gave no message
    return len(parts) >= 2 and re.split(r"[\s(]", parts[1].strip(), maxsplit=1)[0] in TRANSIENT_CODES


def is_transient(exc: BaseException) -> bool:
    """An AWS call's exception that a later try may not meet (TRANSIENT_CODES)."""
    return error_code(exc) in TRANSIENT_CODES


class CallCounter:
    """Counts HTTP requests (retries included) per "prefix.Operation", the IAM action with a
    dot: e.g. "ecs.DescribeTasks", "elasticloadbalancing.DescribeTargetGroups" (the
    service's IAM prefix, its signing name, not botocore's service id).

    It hooks botocore's "before-send" event, which fires once per attempt.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def attach(self, aws_client):
        model = aws_client.meta.service_model
        prefix = model.signing_name or model.endpoint_prefix

        def on_before_send(event_name: str = "", **_kwargs: Any) -> None:
            # event_name: "before-send.<service id>.<Operation>"
            self.counts[f"{prefix}.{event_name.rpartition('.')[2]}"] += 1
            # returning None lets botocore (or an emulator's hook) send the request

        aws_client.meta.events.register(
            "before-send", on_before_send, unique_id=f"fargate-audit-call-counter-{id(self)}"
        )
        return aws_client

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)

    def since(self, before: dict[str, int]) -> dict[str, int]:
        """Requests made since `before` (a snapshot), sorted by key, zero counts dropped."""
        return {
            key: count - before.get(key, 0)
            for key, count in sorted(self.counts.items())
            if count - before.get(key, 0) > 0
        }

    def total(self) -> int:
        return sum(self.counts.values())


class Deadline:
    """When an invocation must be done: ``remaining_ms()`` (Lambda's
    ``context.get_remaining_time_in_millis``) minus ``reserve_seconds`` kept for what
    follows the reads (recording, publishing, answering)."""

    def __init__(self, remaining_ms: Callable[[], int], reserve_seconds: float) -> None:
        self.remaining_ms = remaining_ms
        self.reserve_seconds = float(reserve_seconds)

    def remaining_seconds(self) -> float:
        return self.remaining_ms() / 1000.0

    def allows(self, seconds: float) -> bool:
        """True when ``seconds`` more still leave the reserve."""
        return self.remaining_seconds() - seconds >= self.reserve_seconds


def worst_retry_delay(attempts: int, response: Any = None) -> float:
    """The longest sleep botocore's standard mode may take after ``attempts`` attempts."""
    delay = float(min(2 ** max(attempts - 1, 0), RETRY_MAX_BACKOFF_SECONDS))
    http = response[0] if isinstance(response, tuple) and response else None
    headers = getattr(http, "headers", None) or {}
    if headers.get("x-amz-retry-after"):
        delay += RETRY_AFTER_MAX_ADDITIONAL_SECONDS
    return delay


class Clients:
    """boto3 clients per (service, region), created on first use and counted by one counter.

    `factory(service, region)` builds a client; the default uses `client(session, ...)`.
    Tests inject clients wrapped in botocore's Stubber through `factory`.

    ``deadline`` (a :class:`Deadline`, None: none): while set, a failed call is not retried
    when botocore's next backoff could eat into the deadline's reserve; the call then fails
    with AWS's own error (e.g. ``RequestLimitExceeded``), which the collector records as an
    unavailable fact (``ERROR`` results) instead of the function timing out mid-write.
    ``retries_stopped`` counts those cut-short retries.

    ``parent``: the Clients of another account whose counter, deadline and
    ``retries_stopped`` these share (an audited account's clients beside the function's
    own: one invocation, one count, one deadline).
    """

    def __init__(
        self, session=None, factory: ClientFactory | None = None, parent: Clients | None = None
    ) -> None:
        if factory is None:
            if session is None:
                raise ValueError("Clients needs a boto3 session or a client factory")

            def factory(service: str, region: str):
                return client(session, service, region)

        self.session = session
        self._factory = factory
        self._cache: dict[tuple[str, str], Any] = {}
        self._parent = parent
        self.counter = parent.counter if parent is not None else CallCounter()
        self.deadline: Deadline | None = None
        self.retries_stopped = 0

    def get(self, service: str, region: str):
        key = (service, region)
        if key not in self._cache:
            aws_client = self.counter.attach(self._factory(service, region))
            events = aws_client.meta.events
            name = aws_client.meta.service_model.service_id.hyphenize()
            # first: its False vetoes the retry before botocore's own handler asks for one
            events.register_first(
                f"needs-retry.{name}", self._veto_retry, unique_id=f"fargate-audit-deadline-{id(self)}"
            )
            self._cache[key] = aws_client
        return self._cache[key]

    def _veto_retry(self, attempts: int = 1, response: Any = None, caught_exception: Any = None, **_: Any):
        """botocore ``needs-retry`` handler: False (no retry) when the deadline is too near."""
        owner = self._parent if self._parent is not None else self
        if owner.deadline is None:
            return None
        failed = caught_exception is not None or (
            isinstance(response, tuple) and response and getattr(response[0], "status_code", 200) >= 400
        )
        if not failed or owner.deadline.allows(worst_retry_delay(attempts, response)):
            return None
        owner.retries_stopped += 1
        return False

    def ecs(self, region: str):
        return self.get("ecs", region)

    def ec2(self, region: str):
        return self.get("ec2", region)

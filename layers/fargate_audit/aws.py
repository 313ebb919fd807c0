"""Small AWS access helpers: client construction, request counting, one-line error messages.

Nothing here calls AWS or builds a client at import time. Endpoints and credentials come
from boto3's own chain only (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from fargate_audit.errors import CredentialsError

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

ClientFactory = Callable[[str, str], Any]


def session_from_env(region: str | None = None):
    """A boto3 Session from the standard chain (AWS_PROFILE, credentials, AWS_ENDPOINT_URL).

    The region: ``region`` when given, else ``AWS_REGION`` (interface.md; botocore itself
    does not read it, and the Lambda runtime sets it), else boto3's own chain
    (AWS_DEFAULT_REGION, the profile). A bad profile raises CredentialsError (one line).
    """
    import boto3

    try:
        return boto3.session.Session(region_name=region or os.environ.get("AWS_REGION") or None)
    except BotoCoreError as exc:  # e.g. ProfileNotFound for a bad AWS_PROFILE
        raise CredentialsError(" ".join(str(exc).split())) from exc


def client(session, service: str, region: str):
    """A boto3 client with standard-mode retries (8) and the project's user agent."""
    try:
        return session.client(service, region_name=region, config=CLIENT_CONFIG)
    except NoRegionError as exc:
        raise CredentialsError(NO_REGION_MESSAGE) from exc


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


def raise_for_credentials(exc: BaseException, call: str) -> None:
    """Raise CredentialsError when `exc` means the credentials or region are unusable."""
    if isinstance(exc, NoCredentialsError):
        raise CredentialsError(NO_CREDENTIALS_MESSAGE) from exc
    if isinstance(exc, NoRegionError):
        raise CredentialsError(NO_REGION_MESSAGE) from exc
    if isinstance(exc, PartialCredentialsError | CredentialRetrievalError):
        raise CredentialsError(f"unusable AWS credentials: {' '.join(str(exc).split())}") from exc
    if isinstance(exc, ClientError) and error_code(exc) in REJECTED_CREDENTIALS_CODES:
        raise CredentialsError(f"AWS rejected the credentials: {describe_error(exc, call)}") from exc


def failure_message(exc: BaseException, call: str) -> str:
    """For an exception caught around an AWS call: raise on credential problems, else the
    one-line message to record."""
    raise_for_credentials(exc, call)
    return describe_error(exc, call)


# The exceptions a failed AWS call may raise (throttling past retries is a ClientError).
AWS_ERRORS = (ClientError, BotoCoreError)


class CallCounter:
    """Counts HTTP requests (retries included) per "service.Operation", e.g. "ecs.DescribeTasks".

    It hooks botocore's "before-send" event, which fires once per attempt.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def attach(self, aws_client):
        aws_client.meta.events.register(
            "before-send", self._on_before_send, unique_id=f"fargate-audit-call-counter-{id(self)}"
        )
        return aws_client

    def _on_before_send(self, event_name: str = "", **_kwargs: Any) -> None:
        # event_name: "before-send.<service>.<Operation>"
        _, _, rest = event_name.partition(".")
        service, _, operation = rest.partition(".")
        self.counts[f"{service}.{operation}"] += 1
        # returning None lets botocore (or an emulator's hook) send the request

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


class Clients:
    """boto3 clients per (service, region), created on first use and counted by one counter.

    `factory(service, region)` builds a client; the default uses `client(session, ...)`.
    Tests inject clients wrapped in botocore's Stubber through `factory`.
    """

    def __init__(self, session=None, factory: ClientFactory | None = None) -> None:
        if factory is None:
            if session is None:
                raise ValueError("Clients needs a boto3 session or a client factory")

            def factory(service: str, region: str):
                return client(session, service, region)

        self.session = session
        self._factory = factory
        self._cache: dict[tuple[str, str], Any] = {}
        self.counter = CallCounter()

    def get(self, service: str, region: str):
        key = (service, region)
        if key not in self._cache:
            self._cache[key] = self.counter.attach(self._factory(service, region))
        return self._cache[key]

    def ecs(self, region: str):
        return self.get("ecs", region)

    def ec2(self, region: str):
        return self.get("ec2", region)

"""AWS's answers as they come over the wire, for hooks that answer a request instead of the
emulator (botocore's ``before-send``: retries, parsing and error handling then run exactly
as for a real answer).

- ``error_response``: AWS's error in a service protocol's own format.
- ``ExpiredTokens``: the emulator answering an account's calls with an expired-token error
  (its session expired early or was revoked), whichever client or session makes them.
"""

from __future__ import annotations

import json
import re
import threading

from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from moto.iam.models import get_account_id_from

from support.sessions import _shared_loader


def error_response(protocol: str, url: str, code: str, message: str, status: int) -> AWSResponse:
    """AWS's error ``code`` in the wire format of ``protocol`` (a service model's)."""
    headers: dict[str, str] = {}
    if protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>fault-injected</RequestID></Response>"
        )
    elif protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            "</Error><RequestId>fault-injected</RequestId></ErrorResponse>"
        )
    elif protocol == "json":
        headers["content-type"] = "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": message})
    else:  # rest-json
        headers |= {"content-type": "application/json", "x-amzn-ErrorType": code}
        body = json.dumps({"message": message})
    return AWSResponse(url, status, headers, MockRawResponse(body.encode()))


def protocol_of(service: str) -> str:
    """The wire protocol of a service (its botocore model's)."""
    return _shared_loader().load_service_model(service, "service-2")["metadata"]["protocol"]


# the code each protocol answers an expired session token with (EC2: RequestExpired)
EXPIRED_CODES = {"ec2": "RequestExpired", "json": "ExpiredTokenException", "query": "ExpiredToken"}
_ACCESS_KEY = re.compile(r"Credential=([A-Z0-9]{16,128})/")


class ExpiredTokens:
    """The next ``times`` requests of ``call`` (``service.Operation``, e.g.
    ``ecs.ListClusters``) signed with credentials of ``account`` are answered with the
    service's expired-token error, as AWS answers a session it no longer accepts although
    its expiry has not come (clock skew, a revoked session). Works on moto's in-process
    emulator (its ``before-send`` stubber, wrapped with ``monkeypatch``: every session and
    client, those made inside the code under test too); thread-safe (a CLI scanning
    accounts in parallel). ``answered``: how many were answered so."""

    def __init__(self, monkeypatch, account: str, call: str, times: int = 1, code: str | None = None) -> None:
        """``code``: another error to answer with (e.g. ``AccessDeniedException``)."""
        service, _, operation = call.partition(".")
        protocol = protocol_of(service)
        self.code = code or EXPIRED_CODES.get(protocol, "ExpiredTokenException")
        self.answered = 0
        lock = threading.Lock()
        event = f"before-send.{service}.{operation}"
        emulate = BotocoreStubber.__call__

        def answer(stubber, event_name, request, **kwargs):
            if event_name == event and self._account(request) == account:
                with lock:
                    due = self.answered < times
                    self.answered += due
                if due:
                    message = (
                        "The security token included in the request is expired" if code is None else "denied"
                    )
                    return error_response(protocol, request.url, self.code, message, 400)
            return emulate(stubber, event_name, request, **kwargs)

        monkeypatch.setattr(BotocoreStubber, "__call__", answer)

    @staticmethod
    def _account(request) -> str | None:
        authorization = request.headers.get("Authorization") or b""
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        found = _ACCESS_KEY.search(authorization)
        return get_account_id_from(found.group(1)) if found else None

"""An assumed-role session's credentials renewed when AWS answers a call that they expired
(edge/aws.py ``AssumedRoleCredentials``): once per call, one AssumeRole however many
threads meet the same expiry. No AWS here: ``fetch`` stands for the AssumeRole."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from botocore.awsrequest import AWSRequest
from fargate_audit.edge import aws

ROLE = "arn:aws:iam::111111111111:role/fargate-audit-member"


class Sts:
    """AssumeRole answers: credentials ``k1``, ``k2``, ... (an hour each), or a refusal."""

    def __init__(self, delay: float = 0.0) -> None:
        self.asked = 0
        self.delay = delay
        self.refuse = False
        self.lock = threading.Lock()

    def fetch(self) -> dict:
        with self.lock:
            self.asked += 1
            n = self.asked
        time.sleep(self.delay)  # the threads meet inside the AssumeRole
        if self.refuse:
            raise aws.ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return {"access_key": f"k{n}", "secret_key": "s", "token": f"t{n}", "expiry_time": expiry.isoformat()}


def credentials_of(sts: Sts, answers: dict | None = None) -> aws.AssumedRoleCredentials:
    credentials = aws.AssumedRoleCredentials(sts.fetch, {} if answers is None else answers, ROLE)
    credentials.get_frozen_credentials()  # the first AssumeRole
    return credentials


def test_threads_meeting_one_expiry_make_one_assume_role():
    sts = Sts(delay=0.05)
    answers = {"cached": "the expired AssumeRole answer"}
    credentials = credentials_of(sts, answers)
    assert credentials.generation == 1 and sts.asked == 1
    threads = [threading.Thread(target=credentials.renew, args=(1,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sts.asked == 2 and credentials.generation == 2
    assert credentials.get_frozen_credentials().access_key == "k2"
    assert answers == {}  # the fetcher's copy of the old answer is not served again
    credentials.renew(1)  # a late answer about the old credentials: already renewed
    assert sts.asked == 2


def test_a_refused_renewal_keeps_the_credentials():
    sts = Sts()
    credentials = credentials_of(sts)
    sts.refuse = True
    credentials.renew(1)  # no exception: the retried call fails as the first did
    assert sts.asked == 2 and credentials.generation == 1
    assert credentials.get_frozen_credentials().access_key == "k1"


def _expired(code: str = "ExpiredToken") -> tuple:
    return (
        None,
        {"Error": {"Code": code, "Message": "The security token included in the request is expired"}},
    )


def test_an_expired_token_is_retried_once_per_call_with_renewed_credentials():
    sts = Sts()
    credentials = credentials_of(sts)
    request_dict = {"context": {}}
    request = AWSRequest(method="POST", url="https://ecs.eu-west-1.amazonaws.com/")
    request.context = request_dict["context"]
    credentials.before_sign(request=request)  # the first attempt, signed with generation 1
    for code in sorted(aws.EXPIRED_CREDENTIALS_CODES):
        assert credentials.needs_retry(response=_expired(code), request_dict={"context": {}}) == 0
    assert credentials.needs_retry(response=_expired(), request_dict=request_dict) == 0  # retry now
    assert sts.asked == 1  # nothing renewed unless the retry is made (a deadline may veto it)
    credentials.before_sign(request=request)  # the retry: renewed before it is signed
    assert sts.asked == 2 and credentials.generation == 2
    assert credentials.needs_retry(response=_expired(), request_dict=request_dict) is None  # once a call
    other = {"context": {}}
    assert credentials.needs_retry(response=_expired("AccessDenied"), request_dict=other) is None
    assert credentials.needs_retry(response=(None, {"ResponseMetadata": {}}), request_dict=other) is None
    assert credentials.needs_retry(response=None, caught_exception=OSError(), request_dict=other) is None

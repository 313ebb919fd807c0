"""fargate_audit.edge.queue: the sweep planner's SendMessageBatch calls hold at most 10
entries and at most 256 KiB of bodies (SQS's limits), and every message is sent once."""

from __future__ import annotations

from fargate_audit.edge import queue


class Sqs:
    def __init__(self, fail_once: set[str] | None = None) -> None:
        self.calls: list[list[dict]] = []
        self.fail_once = set(fail_once or ())

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 (botocore's names)
        self.calls.append(Entries)
        failed = [e for e in Entries if e["MessageBody"] in self.fail_once]
        self.fail_once -= {e["MessageBody"] for e in failed}
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failed],
            "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in failed],
        }


class Clients:
    def __init__(self, sqs: Sqs) -> None:
        self.sqs = sqs

    def get(self, service: str, region: str):
        assert service == "sqs"
        return self.sqs


def test_batches_hold_ten_entries_and_at_most_256_kib():
    small = [f"m{n}" for n in range(25)]
    assert [len(chunk) for _, chunk in queue._batches(small)] == [10, 10, 5]
    page = "x" * 35_000  # a page of 100 of the longest task ARNs
    sizes = [(start, len(chunk)) for start, chunk in queue._batches([page] * 10)]
    assert sizes == [(0, 7), (7, 3)]  # 7 x 35,000 bytes <= 262,144 < 8 x 35,000
    assert all(sum(map(len, chunk)) <= queue.MAX_BATCH_BYTES for _, chunk in queue._batches([page] * 10))


def test_every_body_is_sent_once_and_a_failed_entry_once_more():
    bodies = [f"{n}".rjust(40_000, "x") for n in range(9)]
    sqs = Sqs(fail_once={bodies[7]})
    sent, failed = queue.send_batches(Clients(sqs), "eu-west-1", "url", bodies)
    assert sent == 9 and failed == []
    assert [len(entries) for entries in sqs.calls] == [6, 3, 1]  # the third: the retried entry
    assert sorted(e["MessageBody"] for entries in sqs.calls[:2] for e in entries) == sorted(bodies)

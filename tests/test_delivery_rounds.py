"""A drain's rounds overlap: the next round is fanned out, claimed and posted while the
last posts of the one before are in flight. What an answer from either round teaches
holds for both, and no post outlives its lease while the draining thread works."""

import time

import pytest

from django_flowdock.delivery import fanout
from django_flowdock.delivery.engine import drain
from django_flowdock.models import Message, Source
from tests.testapp.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_answer_from_a_later_round_closes_the_circuit_an_earlier_post_opened(
    local_api, settings
):
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "BATCH_SIZE": 3,
        "CONCURRENCY": 4,
        "TIMEOUT": (2.0, 5.0),
        "CLAIM_TIMEOUT": 15,
    }
    source = Source.objects.create(name="Local", flow_token="local-token")
    for n in range(6):
        Ticket.objects.create(subject=f"Ticket {n}")
    local_api.answer(202)  # the first post tests the source alone
    local_api.answer(503, delay=1.0)  # round 1: opens the circuit while round 2 is posted
    local_api.answer(202, delay=0.1)
    for _ in range(3):  # round 2, posted before the 503 came: answered after it
        local_api.answer(202, delay=2.0)

    result = drain()

    assert result.sent == 5
    source.refresh_from_db()
    assert source.failing_since is None, "Flowdock answered again: the circuit is closed"
    assert source.failures == 0


def test_an_earlier_rounds_posts_keep_their_lease_through_a_slow_fan_out(
    local_api, settings, monkeypatch
):
    settings.FLOWDOCK = {
        **settings.FLOWDOCK,
        "BATCH_SIZE": 3,
        "CONCURRENCY": 4,
        "TIMEOUT": (0.3, 0.5),
        "CLAIM_TIMEOUT": 1.0,
    }
    Source.objects.create(name="Local", flow_token="local-token")
    for n in range(6):
        Ticket.objects.create(subject=f"Ticket {n}")
    local_api.answer(202)
    local_api.answer(202, delay=0.05)
    local_api.answer(202, delay=0.4)  # answered while round 2 fans out, recorded after it
    trace = fanout.trace

    def slow_trace(*args, **kwargs):  # the project's code reading each change's object
        time.sleep(0.4)
        return trace(*args, **kwargs)

    monkeypatch.setattr(fanout, "trace", slow_trace)

    result = drain()

    # Round 2's fan-out (3 x 0.4 s) outlasts the 1 s lease of round 1's last post.
    uuids = [r["uuid"] for r in local_api.requests]
    assert len(uuids) == len(set(uuids)) == 6, "no message posted twice"
    assert result.sent == 6
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}

"""Usage the database cannot take goes to disk and comes back exactly once.

The database being away is injected at the one call that writes events (the real error
class Django raises); everything around it (buffer, spool files, locks, replay, the
idempotent write) is the real thing. Live servers with a stopped PostgreSQL cluster are
in proxy/tests/test_outages_e2e.py.
"""

from __future__ import annotations

import fcntl
import json

import pytest
from django.db import OperationalError

from billing import services, usage
from billing.models import UsageEvent
from billing.spool import REJECTED_NAME, spool_dir, usage_spool
from billing.tests.conftest import make_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _in_process_buffer(settings):
    # The spool holds what the in-process buffer could not write (Redis keeps its own).
    settings.CACHE_TYPE = "memory"
    yield
    usage_spool.close()


@pytest.fixture
def database_away(monkeypatch):
    """The write fails as it does with PostgreSQL stopped, and the replay's connection check
    says so, until ``back()``."""
    real = services.usage_events_write
    state = {"away": True}

    def write(*, events):
        if state["away"]:
            raise OperationalError("connection failed: Connection refused")
        return real(events=events)

    monkeypatch.setattr(services, "usage_events_write", write)
    monkeypatch.setattr(usage, "_database_up", lambda: not state["away"])
    state["back"] = lambda: state.update(away=False)
    return state


def _spooled_ids() -> list[str]:
    return [
        json.loads(line)["request_id"]
        for path in sorted(spool_dir().glob("usage-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_events_the_database_refuses_are_spooled_then_replayed_once(org_a, alice, database_away):
    events = [make_event(org_a, alice) for _ in range(7)]
    for event in events:
        usage.usage_record(event)

    stats = usage.usage_flush_run(redis=False)
    assert stats.spooled == 7 and stats.written == 0
    assert usage.memory_buffer.pending() == 0  # nothing left only in memory
    assert sorted(_spooled_ids()) == sorted(e["request_id"] for e in events)

    usage.usage_flush_run(redis=False)  # still away: the files wait
    assert UsageEvent.objects.count() == 0 and len(_spooled_ids()) == 7

    database_away["back"]()
    stats = usage.usage_flush_run(redis=False)
    assert stats.replayed == 7
    assert UsageEvent.objects.count() == 7
    assert _spooled_ids() == []
    usage.usage_flush_run(redis=False)
    assert UsageEvent.objects.count() == 7


def test_a_replay_cut_short_is_done_again_without_a_second_row(settings, org_a, alice):
    settings.USAGE_FLUSH_BATCH = 4
    events = [make_event(org_a, alice) for _ in range(10)]
    usage_spool.write(events)
    usage_spool.close()
    written = []

    def write_then_fail(batch):
        if written:
            raise OperationalError("the database went away again")
        written.append(services.usage_events_write(events=batch))

    with pytest.raises(OperationalError):
        usage_spool.replay(write_then_fail, database_up=lambda: True)
    assert UsageEvent.objects.count() == 4
    assert len(_spooled_ids()) == 10  # the file stays until all of it is written

    usage.usage_flush_run(redis=False)
    assert UsageEvent.objects.count() == 10
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {
        e["request_id"] for e in events
    }


def test_a_torn_last_line_is_set_aside_and_the_rest_replayed(org_a, alice):
    events = [make_event(org_a, alice) for _ in range(3)]
    usage_spool.write(events)
    usage_spool.close()
    (path,) = spool_dir().glob("usage-*.jsonl")
    with path.open("a") as handle:
        handle.write('{"request_id": "req-cut-of')  # a process killed mid-write

    usage.usage_flush_run(redis=False)
    assert UsageEvent.objects.count() == 3
    assert (spool_dir() / REJECTED_NAME).read_text() == '{"request_id": "req-cut-of\n'


def test_a_file_another_process_still_writes_is_left_alone(org_a, alice):
    events = [make_event(org_a, alice) for _ in range(2)]
    usage_spool.write(events)
    usage_spool.close()
    (path,) = spool_dir().glob("usage-*.jsonl")
    with path.open("a") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)  # as its living process holds it
        usage.usage_flush_run(redis=False)
        assert UsageEvent.objects.count() == 0
    usage.usage_flush_run(redis=False)
    assert UsageEvent.objects.count() == 2


def test_this_process_keeps_appending_to_its_own_file_while_the_database_is_away(
    org_a, alice, database_away
):
    for _ in range(3):
        usage.usage_record(make_event(org_a, alice))
        usage.usage_flush_run(redis=False)
    assert len(list(spool_dir().glob("usage-*.jsonl"))) == 1
    assert len(_spooled_ids()) == 3


def test_before_exit_a_batch_held_by_a_stuck_flush_is_written(org_a, alice):
    event = make_event(org_a, alice)
    usage.usage_record(event)
    usage.memory_buffer.claim(10)  # a flush thread took it and never came back
    assert len(usage.memory_buffer) == 0 and usage.memory_buffer.pending() == 1

    usage.usage_flush_before_exit()
    assert UsageEvent.objects.filter(request_id=event["request_id"]).count() == 1

"""Fixtures for the counting-process tests: a service of its own per test, always killed."""

from __future__ import annotations

import pytest

from counting_testing import Recorder, alive


@pytest.fixture
def start_service(bundled):
    """start_service(registry=bundled, processes=PROCESSES, **options) -> (service, recorder, doc): a new
    counting service with one document open. Every process a test started is killed and reaped at its end, even if it failed."""
    from tui.core.tokenizers.counting_client import PROCESSES, CountingService

    started = []

    def start(registry=None, processes=PROCESSES, **options):
        service = CountingService(registry or bundled, processes, **options)
        recorder = Recorder()
        doc = service.open_document(recorder)
        started.append(service)
        return service, recorder, doc

    yield start
    pids = [pid for s in started for pid in s.started_pids]
    for service in started:
        service.close()
    assert not [pid for pid in pids if alive(pid)], "a counting process outlived its service"

"""After a daemon start the CLI connects only once aiida-core's ZeroMQ broker reports, in a status written after the
start, that the workers listen for tasks (a submission to the previous broker's endpoint was lost in `make demo`)."""

import time

import click
import pytest

from aiida_sseff.cli import cmd_launch


class _Broker:
    """Stands in for aiida's ZeromqBroker: only the status calls, with the statuses given in order."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.probes = 0

    def probe_service_status(self):
        self.probes += 1
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


class _Manager:
    def __init__(self, broker):
        self.broker = broker
        self.resets = 0

    def get_broker(self):
        return self.broker

    def reset_broker(self):
        self.resets += 1


def _patch(monkeypatch, broker):
    import aiida.manage

    manager = _Manager(broker)
    monkeypatch.setattr(aiida.manage, 'get_manager', lambda: manager)
    monkeypatch.setattr(time, 'sleep', lambda _: None)
    return manager


def test_waits_for_a_fresh_status_with_the_workers(monkeypatch):
    started = time.time()
    old = {'connected': True, 'running': True, 'timestamp': started - 5, 'task_subscribers': 1}  # previous broker
    fresh_no_worker = {'connected': True, 'running': True, 'timestamp': started + 1, 'task_subscribers': 0}
    ready = {'connected': True, 'running': True, 'timestamp': started + 2, 'task_subscribers': 1}
    broker = _Broker([old, fresh_no_worker, ready])
    manager = _patch(monkeypatch, broker)
    cmd_launch._wait_for_task_subscribers(1, started, timeout=30)  # noqa: SLF001
    assert broker.probes == 3 and manager.resets == 1


def test_names_the_problem_when_no_worker_connects(monkeypatch):
    started = time.time()
    broker = _Broker([{'connected': True, 'running': True, 'timestamp': started + 1, 'task_subscribers': 0}])
    _patch(monkeypatch, broker)
    with pytest.raises(click.ClickException, match='did not connect to the broker within 0 s'):
        cmd_launch._wait_for_task_subscribers(2, started, timeout=0.0)  # noqa: SLF001


def test_a_broker_without_status_is_not_waited_for(monkeypatch):
    manager = _patch(monkeypatch, object())  # RabbitMQ keeps its queue: nothing to wait for
    cmd_launch._wait_for_task_subscribers(1, time.time(), timeout=30)  # noqa: SLF001
    assert manager.resets == 0

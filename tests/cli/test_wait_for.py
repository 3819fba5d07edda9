"""``wait_for`` (the CLI's watcher of a submitted workflow) survives SQLite's transient `database is locked` while the
daemon writes (seen in `make demo` on a loaded machine), and does not hide any other database error."""

import pytest
from sqlalchemy.exc import OperationalError

from aiida_sseff.cli.cmd_launch import wait_for


class _Node:
    """Terminated after ``locked`` polls that find the database locked."""

    def __init__(self, locked: int, message: str = 'database is locked'):
        self.locked, self.message = locked, message

    @property
    def is_terminated(self):
        if self.locked:
            self.locked -= 1
            raise OperationalError('SELECT ...', {}, Exception(self.message))
        return True


def test_wait_for_retries_a_locked_database(aiida_profile, monkeypatch):
    import aiida.cmdline.utils.ascii_vis as ascii_vis

    monkeypatch.setattr(ascii_vis, 'format_call_graph', lambda node: 'Process<1> Finished [0]')
    node = _Node(locked=2)
    wait_for(node, poll=0.0)
    assert node.locked == 0
    with pytest.raises(OperationalError, match='disk I/O error'):
        wait_for(_Node(locked=1, message='disk I/O error'), poll=0.0)

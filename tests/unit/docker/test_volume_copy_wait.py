"""Waiting for a copying container: a poll that times out is not a failure, however
docker-py reports it (a restore's put-back once said FAILED on a ReadTimeout under load)."""

from __future__ import annotations

import pytest
import requests.exceptions

from stackctl.docker import volumes
from stackctl.errors import StackError


class Copier:
    """A container whose first ``wait`` polls time out with ``exc``, then it exits."""

    name = "copier"

    def __init__(self, exc: Exception, timeouts: int, code: int = 0) -> None:
        self.exc, self.timeouts, self.code = exc, timeouts, code
        self.reloads = 0

    def wait(self, timeout):
        if self.timeouts:
            self.timeouts -= 1
            raise self.exc
        return {"StatusCode": self.code}

    def reload(self):
        self.reloads += 1

    def logs(self, **_):
        return b"progress: 3 of 4 files\n"


@pytest.mark.parametrize("exc", [requests.exceptions.ConnectionError("read timed out"),
                                 requests.exceptions.ReadTimeout("read timed out"),
                                 requests.exceptions.ConnectTimeout("connect timed out")],
                         ids=lambda e: type(e).__name__)
def test_a_poll_that_times_out_is_waited_through(exc):
    ctr = Copier(exc, timeouts=3, code=7)
    seen = []
    assert volumes._wait(ctr, seen.append, timeout=None) == 7
    assert ctr.reloads == 3 and seen == ["3 of 4 files"]


def test_a_copy_past_its_deadline_is_an_error_naming_it():
    ctr = Copier(requests.exceptions.ReadTimeout("read timed out"), timeouts=10**6)
    with pytest.raises(StackError, match="copier was still running after 0s"):
        volumes._wait(ctr, None, timeout=0.0)


def test_an_engine_that_stops_answering_is_not_mistaken_for_a_slow_copy():
    class Gone(Copier):
        def reload(self):
            raise requests.exceptions.ConnectionError("connection refused")

    with pytest.raises(requests.exceptions.ConnectionError):
        volumes._wait(Gone(requests.exceptions.ReadTimeout("read timed out"), timeouts=1), None, timeout=None)

"""The host's side of a serving guest agent, whatever carries its requests.

Two transports implement it: the shared directory of a virtme-ng guest
(:class:`kfunc.vm.session.SessionClient`) and the virtio-serial port of
kfunc's machine (:class:`kfunc.vm.port.PortClient`). Kept apart from both so
that the guest's agent, which imports :mod:`kfunc.vm.port`, imports nothing
of the host's kernels and guests.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kfunc.vm.protocol import DONE, Event, Op, encode_request

__all__ = ["AgentClient"]


class AgentClient(ABC):
    """The host's side of a serving agent, whatever carries the requests.

    A transport implements :meth:`call` (one request there, its events back)
    and :meth:`stage` (a host file where the guest can open it).
    """

    #: the host's scratch directory of this guest (a run's files are made there)
    directory: Path

    @abstractmethod
    def call(self, request: dict[str, Any], timeout: float = 120.0) -> list[Event]:
        """Send ``request`` (:func:`~kfunc.vm.protocol.encode_request`); return its events."""

    @abstractmethod
    def stage(self, path: str | os.PathLike[str]) -> str:
        """Copy a host file where the guest can read it; the guest's path."""

    def run_steps(
        self, steps: Sequence[Op | dict[str, Any]], timeout: float = 120.0
    ) -> list[Event]:
        """Carry out ``steps`` in the guest; the events, without the closing ``done``."""
        events = self.call(encode_request(steps), timeout)
        return [e for e in events if e["step"] != DONE]

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the agent to unload what it holds and stop serving."""
        self.call(encode_request(None), timeout)

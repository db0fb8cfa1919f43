"""Concurrent ``Decide`` calls decided together: one pass of the engine and one commit for all of them.

A ``Decide`` call hands its validated input to :class:`DecideCombiner`. If no call is deciding, it *leads*: it
takes every input waiting (at most ``max_group``, its own first), decides them with one
:meth:`DecisionEngine.decide <service.engine.DecisionEngine.decide>`, hands each caller its answer and passes
the lead to the first call that arrived meanwhile. One call alone is decided as before; under load the
waiting calls share the engine's per-call work (claims, waves, the writer's hand-off and commit) the way a
``DecideBatch`` does, and fewer threads contend for the GIL.

Each call keeps its own verdict:

- an event id the server makes is made here, before the group is decided, so deciding a call again is
  idempotent (the engine answers a committed id from its claims or the log, never a second row);
- a caller's mistake (``InvalidInput``, ``NotFound``, ``AlreadyExists``) or an answer too big for the transport
  (``Overloaded`` from ``answer``) in a group of several: every call of the group is decided again on its
  own, so only the call at fault gets the error;
- any other error (the log unavailable or full, a timeout) is every call's: alone, each would have got it.

Two calls with one event id (a client's retry racing its first try) are never in one group: the second waits
for the next group, which answers it from what the first committed. A ``DecideBatch`` waiting for one of
this group's event ids gets the group's error if the group fails before its calls are decided again alone;
its retry is answered.
"""
from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from offerbandit.errors import AlreadyExists, InvalidInput, NotFound, Overloaded
from service.engine import DecisionEngine
from service.outcomes import DecisionOutcome
from service.validation import DecideInput

__all__ = ["DecideCombiner"]

#: How long a call waits in line before it is decided beside the group ahead. A group takes a few ms to
#: ~50 ms (64 calls); one much slower waits on the log (PostgreSQL restarting, a lock), and the calls behind
#: it would wait for it and then for their own group: past their deadline (DEADLINE_EXCEEDED) where each,
#: alone, would have been answered UNAVAILABLE in time.
LINE_PATIENCE_S = 0.2

#: errors that are one call's own: in a group of several, every call is decided again alone
_CALLERS_MISTAKES = (InvalidInput, NotFound, AlreadyExists)


@dataclass(eq=False)
class _Call:
    input: DecideInput
    timeout: float | None
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    outcome: DecisionOutcome | None = None
    answer: bytes = b""
    error: BaseException | None = None


class DecideCombiner:
    """Thread-safe. ``answer(outcome)`` builds one call's wire answer (raising ``Overloaded`` refuses it with
    nothing logged); ``on_group(size)`` is told the size of every group decided."""

    def __init__(self, engine: DecisionEngine, answer: Callable[[DecisionOutcome], bytes], max_group: int,
                 on_group: Callable[[int], None] | None = None, patience_s: float = LINE_PATIENCE_S) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1, not {max_group}")
        self._engine = engine
        self._answer = answer
        self._max_group = max_group
        self._on_group = on_group
        self._patience_s = patience_s
        self._lock = threading.Lock()
        self._waiting: deque[_Call] = deque()
        self._leading = False

    @property
    def waiting(self) -> int:
        """Calls waiting for a group (the one deciding not counted)."""
        with self._lock:
            return len(self._waiting)

    def decide(self, inp: DecideInput, timeout: float | None = None) -> tuple[DecisionOutcome, bytes]:
        """Decide one call (with whichever calls wait beside it); its outcome and wire answer, or its error."""
        if not inp.event_id:
            inp = replace(inp, event_id=uuid.uuid4().hex, server_made_id=True)
        call = _Call(inp, timeout)
        with self._lock:
            self._waiting.append(call)
            call.leads = not self._leading
            self._leading = True
        if not call.leads and not call.done.wait(self._patience_s) and self._leave_line(call):
            self._decide_alone(call)
        else:
            if not call.leads:
                call.done.wait()  # answered by a leader, or handed the lead
            if call.leads:
                self._lead()
        if call.error is not None:
            raise call.error
        assert call.outcome is not None
        return call.outcome, call.answer

    def _leave_line(self, call: _Call) -> bool:
        """Whether ``call`` left the line (no leader took it into a group, nor handed it the lead)."""
        with self._lock:
            if call.leads or call not in self._waiting:
                return False
            self._waiting.remove(call)
            return True

    def _decide_alone(self, call: _Call) -> None:
        """A call that waited in line longer than the patience: the group ahead is slow (the log, most
        likely), so it is decided beside it, as every call was without combining, within its own deadline."""
        if self._on_group is not None:
            self._on_group(1)
        try:
            self._decide_group([call])
        except BaseException as exc:  # noqa: BLE001 - as in _lead
            call.error = exc

    def _lead(self) -> None:
        with self._lock:  # the leader is first in line: it arrived alone or was handed the lead as first
            group, later, event_ids = [], [], set()
            while self._waiting and len(group) < self._max_group:
                call = self._waiting.popleft()
                # one event id once per group (the engine decides each id of a call once): a retry racing its
                # first try waits for the next group, where it is answered from what the first committed
                (later if call.input.event_id in event_ids else group).append(call)
                event_ids.add(call.input.event_id)
            self._waiting.extendleft(reversed(later))
        try:
            if self._on_group is not None:
                self._on_group(len(group))
            self._decide_group(group)
        except BaseException as exc:  # noqa: BLE001 - whatever stopped the group is every unanswered call's
            for call in group:
                if call.outcome is None and call.error is None:
                    call.error = exc
        finally:
            # the lead passes on only once this group is committed: the calls arriving meanwhile make the
            # next group (handing it on as soon as the rows were with the writer made groups of 1-2 and
            # saved nothing: 8 in flight, 3.9-4.3 ms of server CPU a call, as without combining)
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                if following is None:
                    self._leading = False
                else:
                    following.leads = True
            for call in group:
                call.leads = False
                call.done.set()
            if following is not None:
                following.done.set()

    def _decide_group(self, group: list[_Call]) -> None:
        answers: list[bytes] = []
        refused: list[Overloaded] = []

        def respond(outcomes: list[DecisionOutcome]) -> None:
            answers.clear()
            for outcome in outcomes:
                try:
                    answers.append(self._answer(outcome))
                except Overloaded as exc:
                    refused.append(exc)
                    raise

        try:
            outcomes = self._engine.decide([call.input for call in group], self._timeout_of(group), respond=respond)
        except BaseException as exc:  # noqa: BLE001 - sorted below: one call's own, or every call's
            if len(group) > 1 and (isinstance(exc, _CALLERS_MISTAKES) or any(exc is r for r in refused)):
                for call in group:  # each alone: only the call at fault fails (idempotent: ids are fixed)
                    self._decide_group([call])
                return
            for call in group:
                call.error = exc
            return
        for call, outcome, answer in zip(group, outcomes, answers):
            call.outcome, call.answer = outcome, answer

    @staticmethod
    def _timeout_of(group: list[_Call]) -> float | None:
        """The longest deadline of the group's calls (a caller whose own passed has already been answered
        DEADLINE_EXCEEDED by gRPC; the others still want their answers)."""
        timeouts = [call.timeout for call in group]
        return None if None in timeouts else max(timeouts)

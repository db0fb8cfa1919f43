"""Group commit, shared by both backends: one thread writes every operation queued at that moment in one
transaction and resolves their futures only after its COMMIT returned.

The request path never opens a transaction: it hands a *write operation* (a callable taking the backend's
connection) to `GroupCommitWriter.submit` and waits on the future. A caller that gives up may
``cancel()`` it: an operation the writer has not taken yet is then never written (so "timed out" can mean
"nothing committed"); once taken, cancel fails and the future resolves with the commit. A backend
subclass says how one group is written (`GroupCommitWriter._commit_group`: its transaction, savepoints,
faults); everything about the queue, the thread, cancellation and close is here.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from offerbandit.errors import LogClosed, Overloaded

__all__ = ["GroupCommitWriter", "Item", "Result", "runs_of"]

#: A queued write operation and the future its caller waits on.
Item = tuple[Callable[[Any], Any], Future]
#: What one operation of a committed group gives its caller: a value or an error of its own.
Result = tuple[Future, Any, BaseException | None]


def runs_of(batch: list[Item], kind: type) -> list[list[Item]]:
    """Split a group into runs: consecutive operations of ``kind`` together (one merged statement), every
    other operation alone."""
    runs: list[list[Item]] = []
    for item in batch:
        if isinstance(item[0], kind) and runs and isinstance(runs[-1][0][0], kind):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class GroupCommitWriter:
    """The writer thread of one process on a log. Thread-safe `submit`; one thread does all writes."""

    thread_name = "decision-log-writer"

    def __init__(self, *, max_group: int = 512, max_queue: int = 20000,
                 on_queue_depth: Callable[[int], None] | None = None) -> None:
        self._max_group = max_group
        self._queue: queue.Queue[Item | None] = queue.Queue(maxsize=max_queue)
        self._on_queue_depth = on_queue_depth
        self._closed = threading.Event()
        self.commits = 0
        self.ops_written = 0
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, op: Callable[[Any], Any]) -> Future:
        """Queue ``op``; the future resolves with its result after the COMMIT that contains it."""
        if self._closed.is_set():
            raise LogClosed("the decision log is closed")
        future: Future = Future()
        try:
            self._queue.put_nowait((op, future))
        except queue.Full:
            raise Overloaded("decision log queue is full; retry later") from None
        return future

    def write(self, op: Callable[[Any], Any], timeout: float | None = None) -> Any:
        """Submit and wait for the commit."""
        return self.submit(op).result(timeout)

    def _commit_group(self, batch: list[Item]) -> list[Result] | None:
        """Write ``batch`` in one transaction; the per-operation results once committed, or None after
        failing every future of the group (nothing of it was committed)."""
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            stop = False
            while len(batch) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if self._on_queue_depth is not None:
                self._on_queue_depth(self._queue.qsize())
            if stop:
                break
        leftovers = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                leftovers.append(item)
        if leftovers:
            self._commit(leftovers)

    def _commit(self, batch: list[Item]) -> None:
        batch = [(op, future) for op, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        results = self._commit_group(batch)
        if results is None:
            return
        self.commits += 1
        self.ops_written += len(batch)
        for future, value, exc in results:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)

    @staticmethod
    def fail_all(batch: list[Item], exc: BaseException) -> None:
        """The whole group failed: every caller of it learns it."""
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _stop(self, timeout: float) -> bool:
        """Write everything queued, then end the thread; False if it was stopped already."""
        if self._closed.is_set():
            return False
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)
        return True

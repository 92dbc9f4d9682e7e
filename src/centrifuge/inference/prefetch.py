"""Work in background threads: PyAV and torch release the GIL, so decoding, the model and
encoding overlap on different cores."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator

__all__ = ["prefetch"]


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Yield ``items`` produced by a background thread, up to ``depth`` ahead (decode while the
    model runs). An exception in the thread is raised here, in the consumer.

    Closing the returned generator (or dropping it) stops the thread and closes ``items`` (when
    it is a generator), so a failed input leaves no thread behind holding its file open.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                q.put(item, timeout=0.1)
                return True
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer
            put(exc)
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()

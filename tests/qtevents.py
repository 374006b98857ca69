"""Delivering what other threads posted, without waiting for time to pass.

A signal emitted on a worker thread to an object on the GUI thread is a posted event. Once the
worker is known to be idle (its ``wait_until_idle`` returned), everything it emitted is already
posted, so sending the posted events delivers all of it — a test can then check that a late
result was dropped without "wait 20 ms and see nothing happened".
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent


def deliver_posted_events() -> None:
    """Deliver every event posted to the GUI thread so far, deferred deletes included."""
    for _ in range(3):  # a delivered event may post another (a queued slot emitting again)
        QCoreApplication.sendPostedEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()

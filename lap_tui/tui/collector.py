"""When Python's garbage collector may walk the heap: the app-wide policy.

A full collection walks every tracked object; with a chat's history paged in (10,002 messages)
that held the loop 0.4-0.9 s on a loaded machine, several times while paging up. So:

- No collection runs during start-up (`hold`): what it builds is nearly all kept (a complete
  pass seconds later found ~3,000 unreachable objects, and took 242 ms on a loaded machine).
- What the app builds to keep (start-up, each page of a chat's history once shown) is frozen
  (`gc.freeze()`): it leaves the generations the collector walks, so an automatic full pass
  walks only what was made since, and the young passes never see it either.
- Full passes run when the app is quiet (no key and no streamed text for `QUIET` s), then freeze
  what survived. The automatic one comes only after `FULL_BACKSTOP` middle passes (Python's
  default: 10), a backstop for an app that is never quiet.
- Frozen objects are never collected, so what a frozen cycle holds stays until it is unfrozen:
  after a screen closed (its widgets are cycles) the next quiet pass unfreezes and walks
  everything (the one pass that costs what a full pass used to); so does a quiet pass once the
  frozen heap has doubled since the last complete one (garbage frozen along with a page is then
  bounded by what is live).
"""

from __future__ import annotations

import gc
import time
from typing import Callable

QUIET = 5.0  # seconds without a key or streamed text before a full collection runs
FULL_BACKSTOP = 1000  # middle-generation passes before an automatic full one (Python's default: 10;
# at 2,000 chunks/s a middle pass comes about every 0.12 s: two minutes of streaming)
REGROW = 2.0  # a quiet pass walks the frozen heap too once it has grown this much since the last one
START_LIMIT = 15.0  # seconds: collections resume by then even if start-up never finished


def hold() -> None:
    """No collections while the app starts (launch.py): everything start-up builds lives as long
    as the app, yet the imports alone set off full passes on the way to the first paint. `start()`
    (or `resume()`, the backstop) lets them run again."""
    gc.disable()


class Collector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._collected_for = 0.0  # the activity time whose quiet spell had its pass (0: none yet; start() froze)
        self._complete_due = False  # something frozen may have become garbage: walk everything
        self._frozen_after_complete = 0
        self.started = False
        self.passes = 0  # quiet passes run (tests)
        self.complete_passes = 0

    def start(self) -> None:
        """Start-up is built: it lives as long as the app."""
        gc.freeze()
        self._frozen_after_complete = gc.get_freeze_count()
        gc.set_threshold(*gc.get_threshold()[:2], FULL_BACKSTOP)
        self.started = True
        gc.enable()

    def resume(self) -> None:
        """The backstop: start-up did not finish (a store never opened, a failure): collect as usual."""
        if not self.started:
            gc.enable()

    def settled(self) -> None:
        """Long-lived objects were just built (a page of history shown): out of every pass. The
        young generations are collected first, so their garbage is not frozen with them. Before
        `start()` nothing: the collector is held, all of start-up is young (a pass would walk it
        all: 90-150 ms, a chat opened at start-up waited for it), and start() freezes it."""
        if not self.started:
            return
        gc.collect(1)
        gc.freeze()

    def released(self) -> None:
        """A screen closed: what it held may be frozen garbage now; the next quiet pass walks all."""
        self._complete_due = True

    def quiet(self, active_at: float) -> bool:
        """Run from a timer: one full pass per quiet spell (`active_at`: the last key or streamed
        text). True if it ran."""
        if self._clock() - active_at < QUIET or active_at == self._collected_for:
            return False
        self._collected_for = active_at
        complete = self._complete_due or gc.get_freeze_count() > REGROW * max(1, self._frozen_after_complete)
        if complete:
            gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.passes += 1
        if complete:
            self._complete_due = False
            self._frozen_after_complete = gc.get_freeze_count()
            self.complete_passes += 1
        return True

"""The garbage collector of a server process, set for thousands of long-lived sockets.

CPython collects its youngest generation every 700 allocations by default, and the older
ones after every 10 collections of the one below. A server process holds Django's, DRF's
and the project's ~180,000 objects for its whole life, plus a few dozen per open socket;
every collection of the oldest generation walks all of them. While 5,000 clients connect
(a reconnect storm after a deploy), that was 20% of the server's CPU (0.2 ms of ~1 ms
per connect, measured with `gc.callbacks`; bench/RESULTS.md, "Connects (2026-12-07
evening)"): a collection of the oldest generation each time the heap had grown by a
quarter, each walking every socket connected so far.

At start-up, once the application is loaded:

- `gc.freeze()` moves every object that exists then into the permanent generation, which
  no collection walks again: modules, classes, settings, URL patterns live as long as the
  process anyway (Python's documentation suggests it for pre-forking servers; Instagram's
  Django servers made it known);
- the youngest generation is collected every GC_YOUNG_THRESHOLD allocations instead of
  700: a connect's short-lived objects are mostly gone by then, so fewer of them are
  carried into the older generations, whose collections (the costly ones) come as
  rarely, relative to allocations, as the threshold is larger. Cyclic garbage waits a
  little longer: at most that many allocations.

`SERVER_GC_YOUNG_THRESHOLD=0` leaves the collector as Python sets it (and freezes nothing).
"""

import gc


def tune_for_server(young_threshold):
    """Freeze what is loaded and collect the youngest generation every `young_threshold`
    allocations; with 0, change nothing. Called once per process, by threatlens/asgi.py."""
    if not young_threshold:
        return
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)

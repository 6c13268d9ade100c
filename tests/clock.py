"""A clock tests move on by hand, for token expiry (read through `realtime.clock`)."""

import time


class FakeClock:
    """Starts at the real time and only moves when told: `advance(seconds)`."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds

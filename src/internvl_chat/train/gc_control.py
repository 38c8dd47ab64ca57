"""Python's garbage collector on a schedule: off inside the training loop, collected every N steps.

An automatic collection pauses one rank at a random moment and every other rank then waits for
it in the next collective; collecting on the same step everywhere keeps the ranks in lockstep
(torchtitan does the same). Generation 1 is enough: the loop creates no long-lived cycles.
"""

from __future__ import annotations

import gc


class ManualGC:
    def __init__(self, every: int):
        self.every = every
        self._was_enabled = gc.isenabled()

    def __enter__(self) -> "ManualGC":
        if self.every > 0:
            gc.disable()
            gc.collect(1)
        return self

    def step(self, step: int) -> bool:
        """Call after optimizer step `step` (1-based); True when it collected."""
        if self.every > 0 and step % self.every == 0:
            gc.collect(1)
            return True
        return False

    def __exit__(self, *exc) -> None:
        if self.every > 0 and self._was_enabled:
            gc.enable()

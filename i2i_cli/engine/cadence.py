"""When a run renders its sample grids: a share of the training time, never every step.

A grid costs a forward pass of the method's sample rows over four images plus a PNG; for CUT at 256 px on a
CPU that is about two thirds of a training step. A cadence fixed in steps ("about 10 grids per run") therefore
rendered a grid at every step of a run shorter than 20 steps and made short runs 1.5x slower than the paper's
code. With the default (`--sample-every 0`) a grid is due at the count cadence only while everything periodic
so far (grids, checkpoints, logs), plus the next grid and the final one, stays within BUDGET of the time spent
training. The last step always renders its grid. An explicit `--sample-every N` is obeyed as given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

BUDGET = 0.05  # periodic work over training time


@dataclass
class SampleCadence:
    total: int  # the run's last step: its grid is always rendered
    every: int  # the count cadence: a grid is never due between its multiples
    budgeted: bool  # False: --sample-every was given, every `every` steps whatever it costs
    budget: float = BUDGET
    clock: Callable[[], float] = time.perf_counter
    periodic_seconds: float = 0.0  # grids, checkpoints, logs so far
    grid_seconds: float | None = None  # the last grid's cost (None: none rendered yet)
    _started: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def training_seconds(self) -> float:
        return max(0.0, self.clock() - self._started - self.periodic_seconds)

    def due(self, done: int, steps_this_run: int) -> bool:
        """Whether the grid of step `done` is rendered; `steps_this_run` counts the steps since the start."""
        if done == self.total:
            return True
        if done % self.every:
            return False
        if not self.budgeted:
            return True
        trained = self.training_seconds()
        # before the first grid, assume one costs a training step (a CUT grid is about 2/3 of one)
        grid = self.grid_seconds if self.grid_seconds is not None else trained / max(1, steps_this_run)
        return self.periodic_seconds + 2 * grid <= self.budget * trained

    @contextmanager
    def periodic(self, grid: bool = False) -> Iterator[None]:
        """Times a piece of periodic work (a grid when `grid`) so that it counts against the budget."""
        start = self.clock()
        try:
            yield
        finally:
            spent = self.clock() - start
            self.periodic_seconds += spent
            if grid:
                self.grid_seconds = spent

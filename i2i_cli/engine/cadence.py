"""When a run renders its sample grids and saves its checkpoints: a share of the training time, never every step.

A grid costs a forward pass of the method's sample rows over four images plus a PNG; for CUT at 256 px on a
CPU that is about two thirds of a training step. A cadence fixed in steps ("about 10 grids per run") therefore
rendered a grid at every step of a run shorter than 20 steps and made short runs 1.5x slower than the paper's
code. A checkpoint (weights and optimizer state: about 0.7 GB for pix2pix) costs about half a pix2pix step on
a CPU, and "5 per run" saved one every 3 steps of a 16-step run (pix2pix 1.13x slower than the official code,
which saves every 5 epochs). With the defaults (`--sample-every 0`, `--save-every 0`) a grid or a checkpoint is
due at its count cadence only while everything periodic so far (grids, checkpoints, logs), plus this one and
the last step's grid and checkpoint, stays within BUDGET of the time spent training. The last step always
renders its grid and saves its checkpoint. An explicit `--sample-every N` / `--save-every N` is obeyed as given.
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
    save_every: int = 0  # the checkpoints' count cadence (0: the last step's only)
    save_budgeted: bool = False  # True: --save-every 0, a checkpoint at the count cadence only within the budget
    checkpoint_seconds: float | None = None  # the last checkpoint's cost (None: none saved yet)
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
        return not self.budgeted or self._fits(self.grid_seconds, steps_this_run)

    def checkpoint_due(self, done: int, steps_this_run: int) -> bool:
        """Whether a checkpoint is saved after step `done`."""
        if done == self.total:
            return True
        if not self.save_every or done % self.save_every:
            return False
        return not self.save_budgeted or self._fits(self.checkpoint_seconds, steps_this_run)

    def _fits(self, cost: float | None, steps_this_run: int) -> bool:
        """Whether periodic work so far, one more piece costing `cost` and the last step's grid and checkpoint
        stay within the budget; a cost not measured yet is taken as a training step (a CUT grid is about 2/3 of
        one, a pix2pix checkpoint about 1/2)."""
        trained = self.training_seconds()
        step = trained / max(1, steps_this_run)
        grid = self.grid_seconds if self.grid_seconds is not None else step
        checkpoint = self.checkpoint_seconds if self.checkpoint_seconds is not None else step
        return self.periodic_seconds + (cost if cost is not None else step) + grid + checkpoint <= self.budget * trained

    @contextmanager
    def periodic(self, grid: bool = False, checkpoint: bool = False) -> Iterator[None]:
        """Times a piece of periodic work (a grid, a checkpoint) so that it counts against the budget."""
        start = self.clock()
        try:
            yield
        finally:
            spent = self.clock() - start
            self.periodic_seconds += spent
            if grid:
                self.grid_seconds = spent
            if checkpoint:
                self.checkpoint_seconds = spent

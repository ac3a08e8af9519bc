"""Sample grids cost a share of the training time by default (a simulated clock: no timed test)."""

from __future__ import annotations

from i2i_cli.engine.cadence import SampleCadence


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(total: int, every: int, budgeted: bool, step: float = 1.0, grid: float = 0.67) -> tuple[list[int], float]:
    """Steps of `step` seconds and grids of `grid` seconds; returns the steps with a grid and the periodic share."""
    clock = FakeClock()
    cadence = SampleCadence(total, every, budgeted, clock=clock)
    rendered = []
    for done in range(1, total + 1):
        clock.now += step
        if cadence.due(done, done):
            with cadence.periodic(grid=True):
                clock.now += grid
            rendered.append(done)
    return rendered, cadence.periodic_seconds / cadence.training_seconds()


def test_a_short_run_renders_its_last_grid_only_and_a_long_one_its_ten():
    # CUT at 256 px on a CPU: a grid costs about 2/3 of a step; the old default drew one at each of 16 steps
    short, share = _run(16, max(1, 16 // 10), budgeted=True)
    assert short == [16] and share <= 0.05
    long, share = _run(1000, 100, budgeted=True)
    assert long == list(range(100, 1001, 100)) and share <= 0.05
    # a grid dearer than a step: fewer grids, still within the budget, still the last one
    dear, share = _run(1000, 100, budgeted=True, grid=8.0)
    assert dear[-1] == 1000 and len(dear) < 10 and share <= 0.05 + 8.0 / 1000


def test_an_explicit_sample_every_is_obeyed_whatever_it_costs():
    assert _run(6, 2, budgeted=False)[0] == [2, 4, 6]
    assert _run(5, 2, budgeted=False)[0] == [2, 4, 5]


def _saves(total: int, every: int, budgeted: bool, step: float = 1.8, checkpoint: float = 1.0) -> tuple[list[int], float]:
    """Steps of `step` seconds and checkpoints of `checkpoint` seconds: the steps saved and the periodic share."""
    clock = FakeClock()
    cadence = SampleCadence(total, total, True, clock=clock, save_every=every, save_budgeted=budgeted)
    saved = []
    for done in range(1, total + 1):
        clock.now += step
        if cadence.checkpoint_due(done, done):
            with cadence.periodic(checkpoint=True):
                clock.now += checkpoint
            saved.append(done)
    return saved, cadence.periodic_seconds / cadence.training_seconds()


def test_default_checkpoints_fit_the_budget_and_the_last_step_always_saves():
    # pix2pix at 256 px on a CPU: a 1.8 s step, a 1 s checkpoint; "5 per run" saved at 3, 6, 9, 12, 15 and 16
    short, share = _saves(16, 16 // 5, budgeted=True)
    assert short == [16] and share <= 0.05
    long, share = _saves(2000, 400, budgeted=True)
    assert long == [400, 800, 1200, 1600, 2000] and share <= 0.05


def test_an_explicit_save_every_is_obeyed_whatever_it_costs():
    assert _saves(16, 3, budgeted=False)[0] == [3, 6, 9, 12, 15, 16]
    assert _saves(4, 0, budgeted=False)[0] == [4]  # no count cadence: the last step only

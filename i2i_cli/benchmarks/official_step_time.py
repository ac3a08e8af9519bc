"""Training step time: the official code against `i2i train` with default options, same data, same environment.

    I2I_OFFICIAL_CUT=/path/to/contrastive-unpaired-translation [I2I_OFFICIAL_JZ=/path/to/pytorch-CycleGAN-and-pix2pix] \\
    python -m i2i_cli.benchmarks.official_step_time --unaligned U --aligned A --steps 16 --repeats 3 cut fastcut cyclegan

Runs outside CI (it needs the official checkouts, named by the environment variables; no official code is here).
Each repeat runs the official script, then `i2i train`, alternating (ABAB...), as subprocesses with the same thread
count, and timestamps every line they print as it arrives. Steady state, with everything periodic counted:
- official: the wall clock between the end of its first epoch and the end of its last ("End of epoch" lines), over
  the iterations in between (its own per-epoch timer prints whole seconds only, hence the timestamps);
- i2i: from its progress line at the end of the first epoch (I2I_PROGRESS_SECONDS=0: a line per step) to the
  line that says the run is done (after the last step's sample grid, checkpoint and report), over the steps in
  between; "steady" stops at the step before the last (no final grid and checkpoint).
pix2pix and CycleGAN run JZ's checkout (I2I_OFFICIAL_JZ: pix2pix on the aligned A|B folder), or
I2I_OFFICIAL_JZ_MODELS: a copy of the CUT checkout (whose training loop descends from JZ's) with JZ's
models/networks.py, pix2pix_model.py and cycle_gan_model.py put in (the CUT repository's own cycle_gan model
does not run under its train.py: its data_dependent_initialize takes no data). There pix2pix reads the pairs as
trainA/trainB halves in order (--pairs, --serial_batches), the schedule is a step one (JZ's networks.py reads
JZ's schedule option names) and JZ's --norm option is added to CUT's parser by a launcher (SHIM below: an
argparse line, no official code).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OFFICIAL = {  # method -> (checkout variable, train.py arguments), defaults otherwise
    "cut": ("I2I_OFFICIAL_CUT", ["--model", "cut", "--CUT_mode", "CUT"]),
    "fastcut": ("I2I_OFFICIAL_CUT", ["--model", "cut", "--CUT_mode", "FastCUT"]),
    "cyclegan": ("I2I_OFFICIAL_JZ", ["--model", "cycle_gan"]),
    "pix2pix": ("I2I_OFFICIAL_JZ", ["--model", "pix2pix", "--direction", "AtoB"]),
}
JZ_MODELS_IN_CUT = {  # I2I_OFFICIAL_JZ_MODELS: JZ's defaults where CUT's parser differs
    "pix2pix": ["--model", "pix2pix", "--direction", "AtoB", "--dataset_mode", "unaligned", "--serial_batches",
                "--lr_policy", "step", "--no_dropout", "False"],
    "cyclegan": ["--model", "cycle_gan", "--lr_policy", "step"],
}
SHIM = """import runpy, sys
from options.base_options import BaseOptions
_initialize = BaseOptions.initialize
def initialize(self, parser):
    parser = _initialize(self, parser)
    parser.add_argument('--norm', type=str, default='instance')  # JZ's option; pix2pix sets batch
    return parser
BaseOptions.initialize = initialize
sys.argv = ['train.py'] + sys.argv[1:]
runpy.run_path('train.py', run_name='__main__')
"""
I2I_PROGRESS = re.compile(r"^train \S+:\s+(\d+)/(\d+)")


def timed_lines(command: list[str], cwd: Path, env: dict[str, str]) -> list[tuple[float, str]]:
    """Run `command`, returning each line of its output with the time it arrived (seconds since the start)."""
    start = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip()))
    if process.returncode:
        tail = "\n".join(text for _, text in lines[-20:])
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{tail}")
    return [*lines, (time.perf_counter() - start, "")]  # the last entry: the process has exited


def official_command(method: str, steps: int, per_epoch: int, data: Path, work: Path) -> tuple[list[str], Path]:
    variable, arguments = OFFICIAL[method]
    checkout = os.environ.get(variable)
    script = ["train.py"]
    if method in JZ_MODELS_IN_CUT and os.environ.get("I2I_OFFICIAL_JZ_MODELS"):
        checkout, arguments, variable = os.environ["I2I_OFFICIAL_JZ_MODELS"], JZ_MODELS_IN_CUT[method], "CUT"
        script = ["-c", SHIM]
    if not checkout:
        raise SystemExit(f"{method}: set {variable} to the official checkout")
    epochs = max(2, steps // per_epoch)
    command = [sys.executable, "-u", *script, "--dataroot", str(data), "--name", f"bench_{method}",
               "--checkpoints_dir", str(work / "official"), "--gpu_ids", "-1", "--display_id", "0",
               "--n_epochs", str(epochs), "--n_epochs_decay", "0", *arguments]
    if variable == "I2I_OFFICIAL_JZ":  # JZ's spelling of the schedule
        command = [c.replace("--n_epochs_decay", "--niter_decay").replace("--n_epochs", "--niter") for c in command]
    return command, Path(checkout)


def official_step_seconds(lines: list[tuple[float, str]], per_epoch: int) -> float:
    ends = [t for t, text in lines if text.startswith("End of epoch")]
    if len(ends) < 2:
        raise RuntimeError("the official run printed fewer than two 'End of epoch' lines")
    return (ends[-1] - ends[0]) / (per_epoch * (len(ends) - 1))


def i2i_step_seconds(lines: list[tuple[float, str]], per_epoch: int, method: str) -> tuple[float, float]:
    """Seconds per step after the first epoch: to the line saying the run is done (the last step's grid,
    checkpoint and report included), and to the line of the step before the last (steady state)."""
    progress: dict[int, float] = {}
    for t, text in lines:  # the first line of each step (the heartbeat repeats it while nothing moves)
        if m := I2I_PROGRESS.match(text):
            progress.setdefault(int(m.group(1)), t)
    done = [t for t, text in lines if re.match(rf"^{method}: \d+ steps in ", text)]
    total = max(progress, default=0)
    if per_epoch not in progress or total - 1 not in progress or not done:
        raise RuntimeError("`i2i train` printed no line for the first epoch's end, the last steps or the run's end")
    return ((done[-1] - progress[per_epoch]) / (total - per_epoch),
            (progress[total - 1] - progress[per_epoch]) / (total - 1 - per_epoch))


def measure(method: str, steps: int, data: tuple[Path, Path], work: Path, per_epoch: int) -> dict[str, float]:
    """One official run (on data[0]), then one `i2i train` run with default options (on data[1]): seconds per step."""
    env = dict(os.environ)
    command, checkout = official_command(method, steps, per_epoch, data[0], work)
    official_lines = timed_lines(command, checkout, env)
    official = official_step_seconds(official_lines, per_epoch)
    out = work / f"i2i_{method}"
    i2i = [str(Path(sys.executable).with_name("i2i")), "train", "--model", method, "--data", str(data[1]), "--out",
           str(out), "--size", "256", "--steps", str(steps), "--device", "cpu", "--overwrite"]
    # a progress line at every step (it only says when each step ended); the options stay the defaults
    i2i_lines = timed_lines(i2i, Path.cwd(), {**env, "I2I_PROGRESS_SECONDS": "0"})
    ours, steady = i2i_step_seconds(i2i_lines, per_epoch, method)
    # whole runs, start-up and first epoch included, to the process's exit: what a user waits for
    return {"official_s": official, "i2i_s": ours, "i2i_steady_s": steady, "official_run_s": official_lines[-1][0],
            "i2i_run_s": i2i_lines[-1][0], "load": os.getloadavg()[0]}


def summary(rows: list[dict[str, float]]) -> dict[str, object]:
    official, ours = [r["official_s"] for r in rows], [r["i2i_s"] for r in rows]
    return {"official_median_s": statistics.median(official), "official_range_s": [min(official), max(official)],
            "i2i_median_s": statistics.median(ours), "i2i_range_s": [min(ours), max(ours)],
            "i2i_over_official": statistics.median(ours) / statistics.median(official), "runs": rows}


def main() -> None:
    from i2i_cli.models import registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="+", choices=sorted(OFFICIAL))
    parser.add_argument("--unaligned", type=Path, required=True, help="trainA/trainB folder (CUT, CycleGAN)")
    parser.add_argument("--aligned", type=Path, help="train/ of A|B pairs (pix2pix)")
    parser.add_argument("--pairs", type=Path, help="the same pairs as trainA/trainB halves (I2I_OFFICIAL_JZ_MODELS)")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-epoch", type=int, default=8, help="images per side = iterations per epoch")
    args = parser.parse_args()
    results = {}
    for method in args.methods:
        data = (args.unaligned, args.unaligned)
        if registry.method_class(method).accepts[0] == "aligned":  # paired: A|B pairs for i2i
            data = (args.pairs if os.environ.get("I2I_OFFICIAL_JZ_MODELS") else args.aligned, args.aligned)
        rows = []
        with tempfile.TemporaryDirectory() as work:
            for repeat in range(args.repeats):
                rows.append(measure(method, args.steps, (data[0].resolve(), data[1].resolve()), Path(work),
                                    args.per_epoch))
                print(json.dumps({"method": method, "steps": args.steps, "repeat": repeat, **rows[-1]}), flush=True)
        results[method] = summary(rows)
        print(json.dumps({"method": method, "steps": args.steps, **results[method]}), flush=True)


if __name__ == "__main__":
    main()

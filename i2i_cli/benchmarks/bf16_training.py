"""bf16 autocast training on the CPU against fp32: step time and loss curves, same seed, per method.

    python -m i2i_cli.benchmarks.bf16_training --steps 200 --size 64 pix2pix cyclegan cut fastcut [--json out.json]

For each method it runs `i2i train` three times on the same synthetic data (`i2i data synth scenes`, written to a
temporary folder unless --unaligned / --aligned name one): fp32 with seed 0, bf16 with seed 0, fp32 with seed 1.
bf16 rounds differently from fp32, so two runs part ways after a few steps whatever the precision; the question
is whether bf16 trains the same, and the yardstick is how far fp32 moves with another seed. For every loss term
the mean over the last quarter of the steps is compared: bf16 "agrees" when its distance from fp32 (seed 0) is
within 1.5x the seed-to-seed distance plus 5% of the term (a term nearly equal across seeds would otherwise ask
for more agreement than fp32 has with itself). Step time is the median of the per-step wall clock in
metrics.jsonl (`--log-every 1`), the first tenth of the steps left out as warm-up. The training default stays
fp32 unless every method agrees (docs/benchmarks.md, "bf16 training on this CPU").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = (("fp32", 0), ("bf16", 0), ("fp32", 1))  # (precision, seed)
UNALIGNED = {"cyclegan", "cut", "fastcut", "fsesim", "lsesim", "agcyclegan"}


def synth(root: Path, layout: str, size: int) -> Path:
    out = root / layout
    subprocess.run([sys.executable, "-m", "i2i_cli", "data", "synth", "scenes", str(out), "--layout", layout,
                    "--size", str(size), "--n-train", "64", "--n-test", "4"], check=True, capture_output=True)
    return out


def train_run(method: str, data: Path, out: Path, size: int, steps: int, precision: str, seed: int) -> list[dict]:
    """One `i2i train` subprocess; its metrics.jsonl rows (a row per step)."""
    command = [sys.executable, "-m", "i2i_cli", "train", "--model", method, "--data", str(data), "--size", str(size),
               "--steps", str(steps), "--device", "cpu", "--precision", precision, "--seed", str(seed),
               "--log-every", "1", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"losses"' in line]


def summarize(rows: list[dict]) -> dict:
    """Median step seconds after warm-up, and each loss term's mean over the last quarter of the steps."""
    times = [row["time"] for row in rows]
    steps = [b - a for a, b in zip(times, times[1:])][max(1, len(times) // 10):]
    tail = rows[-max(1, len(rows) // 4):]
    terms = {k: statistics.mean(row["losses"][k] for row in tail) for k in tail[0]["losses"]}
    return {"step_s": statistics.median(steps), "step_s_min": min(steps), "step_s_max": max(steps), "tail": terms}


def compare(fp32: dict, bf16: dict, other_seed: dict) -> dict:
    """Per loss term: bf16's distance from fp32, the seed-to-seed distance, and whether bf16 agrees."""
    verdict = {}
    for term, value in fp32["tail"].items():
        bf16_gap = abs(bf16["tail"][term] - value)
        seed_gap = abs(other_seed["tail"][term] - value)
        verdict[term] = {"fp32": value, "bf16": bf16["tail"][term], "fp32_seed1": other_seed["tail"][term],
                         "bf16_gap": bf16_gap, "seed_gap": seed_gap,
                         "agrees": bf16_gap <= 1.5 * seed_gap + 0.05 * abs(value)}
    return verdict


def measure(method: str, data: Path, size: int, steps: int, root: Path, timing_only: bool = False) -> dict:
    runs = {f"{p}-s{s}": summarize(train_run(method, data, root / f"{method}-{p}-s{s}-{size}", size, steps, p, s))
            for p, s in (RUNS[:2] if timing_only else RUNS)}
    terms = {} if timing_only else compare(runs["fp32-s0"], runs["bf16-s0"], runs["fp32-s1"])
    speedup = runs["fp32-s0"]["step_s"] / runs["bf16-s0"]["step_s"]
    return {"method": method, "size": size, "steps": steps, "runs": runs, "terms": terms, "bf16_speedup": speedup,
            "agrees": all(t["agrees"] for t in terms.values()) if terms else None}


def print_result(result: dict) -> None:
    runs = result["runs"]
    print(f"\n{result['method']} at {result['size']} px, {result['steps']} steps: step s fp32 "
          f"{runs['fp32-s0']['step_s']:.3f}, bf16 {runs['bf16-s0']['step_s']:.3f} ({result['bf16_speedup']:.2f}x) "
          + ("" if result["agrees"] is None else f"curves {'agree' if result['agrees'] else 'DIFFER'}"))
    if not result["terms"]:
        return
    print(f"  {'term':10s} {'fp32 s0':>9s} {'bf16 s0':>9s} {'fp32 s1':>9s} {'|bf16-fp32|':>12s} {'|s1-s0|':>9s}")
    for term, t in result["terms"].items():
        print(f"  {term:10s} {t['fp32']:9.4f} {t['bf16']:9.4f} {t['fp32_seed1']:9.4f} {t['bf16_gap']:12.4f} "
              f"{t['seed_gap']:9.4f} {'' if t['agrees'] else '  differs'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--unaligned", type=Path)
    parser.add_argument("--aligned", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--timing-only", action="store_true", help="fp32 and bf16 with seed 0: step time only")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory(prefix="i2i-bf16-training-") as tmp:
        root = Path(tmp)
        unaligned = args.unaligned or synth(root, "unaligned", args.size + args.size // 8)
        aligned = args.aligned or synth(root, "aligned", args.size + args.size // 8)
        results = []
        for method in args.methods:
            data = unaligned if method in UNALIGNED else aligned
            results.append(measure(method, data, args.size, args.steps, root, args.timing_only))
            print_result(results[-1])
            if args.json:
                args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

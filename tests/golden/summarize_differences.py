"""Summarise a golden run's measured differences into tests/golden/README.md's table (run outside CI).

    I2I_GOLDEN_REPORT=/tmp/report.tsv python -m pytest tests/golden -q
    python tests/golden/summarize_differences.py /tmp/report.tsv

Each comparison of golden_fixtures appends a line (test, what, max |difference|, relative to its scale); per
test file this prints the largest of each, apart for the weights after an optimizer step (where a float64
fixture's float32 storage of the step is part of the difference).
"""

from __future__ import annotations

import sys
from collections import defaultdict


def summarize(path: str) -> dict[tuple[str, str], tuple[float, float]]:
    worst: dict[tuple[str, str], tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    with open(path) as lines:
        for line in lines:
            test, what, absolute, relative = line.rstrip("\n").split("\t")
            name = test.split("::")[0].rsplit("/", 1)[-1].removeprefix("test_golden_").removesuffix(".py")
            kind = "after a step" if "after" in what and "step" in what else "values"
            a, r = worst[name, kind]
            r = r if relative == "nan" else max(r, float(relative))  # nan: an all-zero expected tensor
            worst[name, kind] = (max(a, float(absolute)), r)
    return dict(worst)


def main() -> None:
    for (name, kind), (absolute, relative) in sorted(summarize(sys.argv[1]).items()):
        print(f"{name:12s} {kind:13s} abs {absolute:.1e}  rel {relative:.1e}")


if __name__ == "__main__":
    main()

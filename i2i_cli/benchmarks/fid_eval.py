"""`i2i eval --metrics fid` end to end against clean-fid's compute_fid, each a fresh process, on the same two
folders and the same TorchScript network (clean-fid's InceptionV3W interface; a cheap stand-in with 2048
features, since the TF-2015 file cannot be downloaded here). Runs alternate, so a machine shared with other jobs
slows both alike. Run: `python -m i2i_cli.benchmarks.fid_eval --real 48 --fake 12 --repeats 3`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CLEAN_FID = """
import sys, torch
from cleanfid import fid
from i2i_cli.evaluation.fid_kid import _TorchScriptInception
model = _TorchScriptInception(torch.jit.load(sys.argv[3]).eval(), resize_inside=False).eval()
print(repr(float(fid.compute_fid(sys.argv[1], sys.argv[2], mode="clean", custom_feat_extractor=model,
                                 device=torch.device("cpu"), num_workers=0, use_dataparallel=False,
                                 verbose=False))))
"""


class _Layers(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 8, stride=8)
        self.proj = torch.nn.Conv2d(16, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.proj(torch.relu(self.conv(x))))
        return torch.nn.functional.adaptive_avg_pool2d(x, 1)


class CheapInception(torch.nn.Module):
    """clean-fid's InceptionV3W interface (forward and .layers), one strided conv and a 1x1 to 2048 features."""

    def __init__(self, dim: int = 2048) -> None:
        super().__init__()
        self.layers = _Layers(dim)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


def make_images(folder: Path, n: int, seed: int, height: int = 48, width: int = 40) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 200, (height, width, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=48)
    parser.add_argument("--fake", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fid-sqrt", default="eigh")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "real", args.real, 1)
        make_images(root / "fake", args.fake, 2)
        (root / "w").mkdir()
        torch.manual_seed(0)
        torch.jit.script(CheapInception()).save(str(root / "w" / "inception-2015-12-05.pt"))
        ours_cmd = [sys.executable, "-m", "i2i_cli", "eval", "--real", str(root / "real"), "--fake",
                    str(root / "fake"), "--metrics", "fid", "--fid-sqrt", args.fid_sqrt, "--device", "cpu",
                    "--weights-dir", str(root / "w"), "--json", str(root / "fid.json")]
        theirs_cmd = [sys.executable, "-c", CLEAN_FID, str(root / "real"), str(root / "fake"),
                      str(root / "w" / "inception-2015-12-05.pt")]
        ours_s, theirs_s = [], []
        for _ in range(args.repeats):
            seconds, _ = _timed(ours_cmd, env)
            ours_s.append(seconds)
            ours = json.loads((root / "fid.json").read_text())["fid"]
            seconds, out = _timed(theirs_cmd, env)
            theirs_s.append(seconds)
            theirs = float(out.strip().splitlines()[-1])
    result = {"real_images": args.real, "fake_images": args.fake, "fid_sqrt": args.fid_sqrt,
              "omp_num_threads": env["OMP_NUM_THREADS"], "i2i_eval_s": ours_s, "clean_fid_compute_fid_s": theirs_s,
              "median_ratio": statistics.median(theirs_s) / statistics.median(ours_s),
              "i2i_fid": ours, "clean_fid_fid": theirs, "relative_difference": abs(ours / theirs - 1)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

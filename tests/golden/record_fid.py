"""Record the FID / KID golden fixture from clean-fid's and StarGAN v2's own formulas.

Outside CI: `I2I_OFFICIAL_STARGAN_V2=/tmp/official/stargan python tests/golden/record_fid.py`, the checkout's
metrics/ and core/ extracted from clovaai/stargan-v2 (its metrics/fid.py imports core.data_loader), clean-fid
installed from PyPI (its fid.frechet_distance and fid.kernel_distance). Writes tests/golden/fid.pt: the feature
sets (float32; the official functions ran on their float64 conversion) and the numbers the official code gave.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def feature_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Well-conditioned (more images than dimensions), rank-deficient (fewer), and ill-conditioned (10 large
    non-negative features of 64 dims; in float64 clean-fid refuses such a case as imaginary, see tests/test_fid.py,
    but stored as float32 this one passes its check, so the fixture holds its value)."""
    rng = np.random.default_rng(2026)

    def mixed(n: int, d: int, scale: float, shift: float, mixing: np.ndarray) -> np.ndarray:
        return ((rng.standard_normal((n, d)) @ mixing) * scale + shift).astype(np.float32)

    m64, m256 = rng.standard_normal((64, 64)) / 8, rng.standard_normal((256, 256)) / 16
    return {
        "well_conditioned": (mixed(300, 64, 1.0, 0.2, m64), mixed(200, 64, 1.1, 0.0, m64)),
        "rank_deficient": (mixed(48, 256, 1.0, 0.1, m256), mixed(20, 256, 0.9, 0.0, m256)),
        "ill_conditioned": tuple((100 * np.maximum(few.standard_normal((10, 64)), 0)).astype(np.float32)
                                 for few in [np.random.default_rng(0)] * 2),
    }


def _commit(official: Path) -> str:
    """The checkout's commit, or I2I_OFFICIAL_STARGAN_V2_GIT's (a bare mirror the files were archived from)."""
    git_dir = os.environ.get("I2I_OFFICIAL_STARGAN_V2_GIT", str(official / ".git"))
    done = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> None:
    official = Path(os.environ["I2I_OFFICIAL_STARGAN_V2"])
    sys.path.insert(0, str(official))
    from cleanfid import fid as clean_fid
    from metrics import fid as stargan_fid  # StarGAN v2's metrics/fid.py

    fixture: dict[str, object] = {
        "official_repo": "GaParmar/clean-fid (PyPI clean-fid) fid.frechet_distance, fid.kernel_distance; "
                         "clovaai/stargan-v2 metrics/fid.py frechet_distance",
        "official_commit": f"clean-fid=={metadata.version('clean-fid')}; stargan-v2 {_commit(official)}",
        "kid_subsets": 10, "kid_seed": 7,
    }
    for name, (real32, fake32) in feature_sets().items():
        real, fake = real32.astype(np.float64), fake32.astype(np.float64)
        mu1, s1, mu2, s2 = real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)
        case: dict[str, object] = {"real": torch.from_numpy(real32), "fake": torch.from_numpy(fake32),
                                   "stargan_v2_fid": float(stargan_fid.frechet_distance(mu1, s1, mu2, s2))}
        try:
            case["clean_fid_fid"] = float(clean_fid.frechet_distance(mu1, s1, mu2, s2))
        except ValueError as exc:
            case["clean_fid_error"] = str(exc).split(" ")[0] + " " + str(exc).split(" ")[1]
        np.random.seed(fixture["kid_seed"])  # clean-fid draws its subsets from the global NumPy RNG
        case["clean_fid_kid"] = float(clean_fid.kernel_distance(real, fake, num_subsets=fixture["kid_subsets"]))
        fixture[name] = case
        print(name, {k: v for k, v in case.items() if not isinstance(v, torch.Tensor)})
    torch.save(fixture, HERE / "fid.pt")


if __name__ == "__main__":
    main()

"""Record the lsesim golden fixture from the official F-LSeSim code (`--model sc --learned_attn --augment`).

Runs outside CI:  I2I_OFFICIAL_FLSESIM=/tmp/official/flsesim python tests/golden/record_lsesim.py
The setting is record_fsesim.py's (32 px, ngf 2, ndf 4, tiny seeded VGG16), with the learned head and the
loader's colour jitter, and local maps (`--patch_size 4`: relu3_1's 8x8 map is windowed, relu4's 4x4 maps are
global) with 32 queries per layer, so both similarity paths and a subset draw are pinned. Also recorded: the
head's InfoNCE loss, the head's weights after its Adam step and its gradients, the jittered images and the
jitter draws.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_fsesim import record  # noqa: E402


def main() -> None:
    fixture = record("lsesim", ["--learned_attn", "--augment", "--patch_size", "4", "--patch_nums", "32"])
    out = Path(__file__).resolve().parent / "lsesim.pt"
    torch.save(fixture, out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""FID feature extraction speed: i2i's pipeline (threaded decode + clean resize overlapped with the network)
against clean-fid's own compute_fid on the same folder and the same network.

The TF-2015 Inception file cannot be downloaded here, so the network is a stand-in with the same cost:
torchvision's Inception-v3 architecture (random weights, ~5.7 GFLOP per 299 px image) behind clean-fid's
TorchScript interface. Run: `python -m i2i_cli.benchmarks.fid_features --images 1000 --size 256`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class _Layers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        import torchvision

        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        self.body = torch.nn.Sequential(*[m for n, m in net.named_children() if n not in ("dropout", "fc")])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class StandInInception(torch.nn.Module):
    """clean-fid's InceptionV3W interface: forward(x in [0, 255]) and .layers((x - 128) / 128) -> (N, 2048)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


def make_folder(folder: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)  # smooth, photo-like PNG sizes
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-clean-fid", action="store_true")
    args = parser.parse_args()

    from cleanfid import fid as cleanfid

    from i2i_cli.evaluation import fid_kid

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folder(root / "images", args.images, args.size)
        script = root / "inception-2015-12-05.pt"
        torch.jit.script(StandInInception()).save(str(script))
        model = fid_kid._TorchScriptInception(torch.jit.load(str(script)).eval(), resize_inside=False).eval()
        result = {"images": args.images, "size": args.size, "batch_size": args.batch_size,
                  "torch_threads": torch.get_num_threads(), "network": "stand-in: torchvision Inception-v3 "
                  "architecture, random weights, clean-fid TorchScript interface"}
        start = time.perf_counter()
        ours, _ = fid_kid.folder_features(root / "images", model, "clean", batch_size=args.batch_size,
                                          threads=args.threads)
        result["i2i_images_per_s"] = args.images / (time.perf_counter() - start)
        if not args.skip_clean_fid:
            start = time.perf_counter()
            theirs = cleanfid.get_folder_features(str(root / "images"), model, num_workers=0,
                                                  batch_size=args.batch_size, device=torch.device("cpu"),
                                                  mode="clean", verbose=False)
            result["clean_fid_images_per_s"] = args.images / (time.perf_counter() - start)
            result["max_abs_feature_difference"] = float(np.abs(ours - theirs).max())
        for sqrt in fid_kid.FID_SQRT:
            start = time.perf_counter()
            fid_kid.fid_from_features(ours, ours[::-1].copy() + 1e-3, sqrt)
            result[f"fid_{sqrt}_seconds"] = time.perf_counter() - start
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Record agcyclegan_same.pt: TensorFlow's own "SAME" stride-2 convolution and transposed convolution.

Beside agcyclegan.pt (the official networks, record_agcyclegan.py), this pins the padding rule of the official
strided layers against TensorFlow itself, on sizes other than the networks' 32 px:
tf.nn.conv2d and tf.nn.conv2d_transpose with padding "SAME", stride 2, 3x3 kernels, as its generator's c2/c3
and c4/c5 and its attention network's c2 call them. Runs outside CI:  pip install tensorflow-cpu, then
python tests/golden/record_agcyclegan_same.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import torch


def main() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for size in (8, 32):
        x = rng.standard_normal((2, size, size, 3)).astype(np.float32)  # NHWC
        kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)  # HWIO
        down = tf.nn.conv2d(x, kernel, strides=2, padding="SAME").numpy()
        z = rng.standard_normal((2, size // 2, size // 2, 4)).astype(np.float32)
        t_kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)  # H, W, out 3, in 4
        up = tf.nn.conv2d_transpose(z, t_kernel, output_shape=(2, size, size, 3), strides=2, padding="SAME").numpy()
        # stored in PyTorch's layouts: NCHW, conv OIHW, transposed conv (in, out, H, W)
        cases.append({"x": torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(),
                      "weight": torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(),
                      "down": torch.from_numpy(down).permute(0, 3, 1, 2).contiguous(),
                      "z": torch.from_numpy(z).permute(0, 3, 1, 2).contiguous(),
                      "t_weight": torch.from_numpy(t_kernel).permute(3, 2, 0, 1).contiguous(),
                      "up": torch.from_numpy(up).permute(0, 3, 1, 2).contiguous()})
    fixture = {"official_repo": "tensorflow/tensorflow (tf.nn.conv2d, tf.nn.conv2d_transpose)",
               "official_commit": f"{tf.__version__} {tf.version.GIT_VERSION}", "cases": cases}
    out = Path(__file__).resolve().parent / "agcyclegan_same.pt"
    torch.save(fixture, out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

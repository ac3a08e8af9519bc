"""Record agcyclegan.pt from the official TensorFlow code of attention-guided CycleGAN (model.py, losses.py).

Runs outside CI, with a Python that has tensorflow-cpu 2.x, tf_keras and torch:
  I2I_OFFICIAL_AGCYCLEGAN=/tmp/official/agg python tests/golden/record_agcyclegan.py
(a checkout of AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation; commit from
I2I_OFFICIAL_AGCYCLEGAN_COMMIT or its .git).

The official code is TensorFlow 1. It runs unmodified on tf.compat.v1 (graph mode, legacy Keras layers) with
one rename: its `tf.contrib.layers.conv2d` / `conv2d_transpose` calls are routed to `tf.compat.v1.layers.conv2d`
/ `conv2d_transpose`, which take the same arguments under other names (filters, strides, activation,
kernel_initializer, bias_initializer). Tiny setting: 32 px, batch 1, the module globals ngf 2 and ndf 2.
Recorded: every variable (TensorFlow layout, creation order), the inputs, and `get_outputs` (masks, fakes,
cycles, every discriminator output) and the four losses of main.py's compute_losses (lambda 10), twice:
before the switch (threshold 0, donorm on) and after it (threshold 0.1, donorm off; only what changes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as real_tf  # noqa: E402
import torch  # noqa: E402

OFFICIAL_REPO = "AlamiMejjati/Unsupervised-Attention-guided-Image-to-Image-Translation"
v1 = real_tf.compat.v1


def _contrib_conv(layer):
    def call(inputs, num_outputs, kernel_size, stride=1, padding="SAME", activation_fn=None,
             weights_initializer=None, biases_initializer=None):
        return layer(inputs, num_outputs, kernel_size, stride, padding, activation=activation_fn,
                     kernel_initializer=weights_initializer, bias_initializer=biases_initializer)
    return call


def official_modules(root: Path):
    v1.disable_eager_execution()
    v1.contrib = types.SimpleNamespace(layers=types.SimpleNamespace(
        conv2d=_contrib_conv(v1.layers.conv2d), conv2d_transpose=_contrib_conv(v1.layers.conv2d_transpose)))
    sys.modules["tensorflow"] = v1  # the official files `import tensorflow as tf` and use the TF1 API
    sys.path.insert(0, str(root))
    import losses
    import model
    model.ngf, model.ndf = 2, 2
    return model, losses


def nchw(a) -> torch.Tensor:
    """NHWC arrays -> NCHW tensors; scalars -> 0-d tensors."""
    return torch.from_numpy(np.asarray(a)).permute(0, 3, 1, 2).contiguous() if np.ndim(a) == 4 else torch.tensor(float(a))


def main() -> None:
    root = Path(os.environ.get("I2I_OFFICIAL_AGCYCLEGAN", ""))
    if not (root / "model.py").is_file():
        sys.exit("set I2I_OFFICIAL_AGCYCLEGAN to a checkout of " + OFFICIAL_REPO)
    commit = os.environ.get("I2I_OFFICIAL_AGCYCLEGAN_COMMIT") or subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    model, losses = official_modules(root)
    v1.set_random_seed(0)
    shape = [1, 32, 32, 3]
    names = ["images_a", "images_b", "fake_pool_a", "fake_pool_b", "fake_pool_a_mask", "fake_pool_b_mask"]
    inputs = {n: v1.placeholder(v1.float32, shape, name=n) for n in names}
    inputs["transition_rate"] = v1.placeholder(v1.float32, [], name="tr")
    inputs["donorm"] = v1.placeholder(v1.bool, [], name="donorm")
    out = model.get_outputs(inputs, skip=False)
    cyc_a = 10 * losses.cycle_consistency_loss(inputs["images_a"], out["cycle_images_a"])
    cyc_b = 10 * losses.cycle_consistency_loss(inputs["images_b"], out["cycle_images_b"])
    loss_ops = {"g_loss_A": cyc_a + cyc_b + losses.lsgan_loss_generator(out["prob_fake_b_is_real"]),
                "g_loss_B": cyc_b + cyc_a + losses.lsgan_loss_generator(out["prob_fake_a_is_real"]),
                "d_loss_A": losses.lsgan_loss_discriminator(out["prob_real_a_is_real"], out["prob_fake_pool_a_is_real"]),
                "d_loss_B": losses.lsgan_loss_discriminator(out["prob_real_b_is_real"], out["prob_fake_pool_b_is_real"])}
    fetch = {k: out[k] for k in ("prob_real_a_is_real", "prob_real_b_is_real", "prob_fake_a_is_real",
                                 "prob_fake_b_is_real", "prob_fake_pool_a_is_real", "prob_fake_pool_b_is_real",
                                 "cycle_images_a", "cycle_images_b", "fake_images_a", "fake_images_b")}
    fetch["mask_a"], fetch["mask_b"] = out["masks"][0][..., :1], out["masks"][1][..., :1]
    fetch.update(loss_ops)
    rng = np.random.default_rng(0)
    feed_values = {n: rng.uniform(-1, 1, shape).astype(np.float32) for n in names[:4]}
    for n in names[4:]:
        feed_values[n] = np.repeat(rng.uniform(0, 1, shape[:3] + [1]), 3, axis=3).astype(np.float32)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        variables = [(v.name, torch.from_numpy(sess.run(v))) for v in v1.global_variables()]
        runs = {}
        for phase, (rate, donorm) in {"before_switch": (0.0, True), "after_switch": (0.1, False)}.items():
            feed = {inputs[n]: feed_values[n] for n in names}
            feed[inputs["transition_rate"]], feed[inputs["donorm"]] = rate, donorm
            values = {k: nchw(v) for k, v in sess.run(fetch, feed).items()}
            if phase == "after_switch":  # masks, fakes and cycles do not depend on the switch: not stored twice
                values = {k: v for k, v in values.items() if k.startswith(("prob_", "g_loss", "d_loss"))}
            runs[phase] = {"threshold": rate, "donorm": donorm, **values}
    fixture = {"official_repo": OFFICIAL_REPO, "official_commit": commit, "tensorflow": real_tf.__version__,
               "ngf": 2, "ndf": 2, "variables": variables,
               # the pool masks are stored with one channel (the official feed repeats it over RGB)
               "inputs": {n: nchw(feed_values[n])[:, :1] if n.endswith("mask") else nchw(feed_values[n])
                          for n in names}, "runs": runs}
    path = Path(__file__).resolve().parent / "agcyclegan.pt"
    torch.save(fixture, path)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""Attention-guided CycleGAN against the official TensorFlow code (fixture agcyclegan.pt, made by
record_agcyclegan.py: the official model.py / losses.py run on tf.compat.v1 at 32 px, ngf 2, ndf 2).

With the official weights: the masks, translations, cycles, every discriminator output and the four losses,
before the switch (threshold 0, norms on) and after it (threshold 0.1, norms off), to 1e-5 (float32 through
~25 layers of two frameworks).
"""

from __future__ import annotations

import pytest
import torch

from tests.golden.golden_fixtures import assert_close, load_fixture

# the official networks and losses (fixture agcyclegan.pt, made by record_agcyclegan.py from the official TF code)
# official names: g_A maps A -> B (our G_A), g_A_ae attends A images (our Att_A), d_A judges domain A (our D_B)
OFFICIAL_NETS = {"G_A": "g_A", "G_B": "g_B", "Att_A": "g_A_ae", "Att_B": "g_B_ae", "D_A": "d_B", "D_B": "d_A"}
UNUSED_NORMS = ("/c6/instance_norm/", "/d_A/c5/instance_norm/", "/d_B/c5/instance_norm/")  # behind do_norm False


def _load_official(method, variables) -> None:
    """TensorFlow variables (creation order) -> our parameters (layer order); kernels HWIO / HW-out-in ->
    OIHW / in-out-HW are both a (3, 2, 0, 1) permutation."""
    for ours, theirs in OFFICIAL_NETS.items():
        tf_vars = [v for n, v in variables if n.startswith(f"Model/{theirs}/") and not any(u in n for u in UNUSED_NORMS)]
        net = getattr(method, ours)
        if ours.startswith("D_"):  # ours holds its convs and norms in two lists; TensorFlow's order is per layer
            params = [p for conv, norm in zip(net.convs, net.norms) for p in (*conv.parameters(), *norm.parameters())]
            params += list(net.last.parameters())
        else:
            params = list(net.parameters())
        assert len(tf_vars) == len(params), ours
        with torch.no_grad():
            for p, v in zip(params, tf_vars):
                p.copy_(v.permute(3, 2, 0, 1) if v.ndim == 4 else v)


@pytest.fixture(scope="module")
def official():
    return load_fixture("agcyclegan")


def test_networks_and_losses_equal_the_official_tensorflow_code(official):
    from i2i_cli.models.base import Progress
    from i2i_cli.models.methods.agcyclegan import AGCycleGAN, AGCycleGANConfig
    from i2i_cli.models.networks.attention import foreground

    method = AGCycleGAN(AGCycleGANConfig(ngf=official["ngf"], attention_ngf=official["ngf"], ndf=official["ndf"]))
    _load_official(method, official["variables"])
    inputs, before = official["inputs"], official["runs"]["before_switch"]
    batch = {"A": inputs["images_a"], "B": inputs["images_b"]}
    with torch.no_grad():
        out = method._cycle(batch)
        for ours, theirs in (("m_A", "mask_a"), ("m_B", "mask_b"), ("fake_B", "fake_images_b"),
                             ("fake_A", "fake_images_a"), ("rec_A", "cycle_images_a"), ("rec_B", "cycle_images_b")):
            assert_close(out[ours], before[theirs], atol=1e-5, what=ours)
        for run in official["runs"].values():
            t = run["threshold"]
            for disc in (method.D_A, method.D_B):
                disc.normalise = run["donorm"]
            probs = {"prob_real_b_is_real": method.D_A(foreground(batch["B"], out["m_B"], t)),
                     "prob_fake_b_is_real": method.D_A(foreground(out["fake_B"], out["m_A"], t)),
                     "prob_fake_pool_b_is_real": method.D_A(foreground(inputs["fake_pool_b"], inputs["fake_pool_b_mask"], t)),
                     "prob_real_a_is_real": method.D_B(foreground(batch["A"], out["m_A"], t)),
                     "prob_fake_a_is_real": method.D_B(foreground(out["fake_A"], out["m_B"], t)),
                     "prob_fake_pool_a_is_real": method.D_B(foreground(inputs["fake_pool_a"], inputs["fake_pool_a_mask"], t))}
            for name, value in probs.items():
                assert_close(value, run[name], atol=1e-5, what=f"{name} (threshold {t})")
    # the losses, through the method's own phases (the official g_loss_A / d_loss_B: ours G_A / D_A)
    for phase_name, run in official["runs"].items():
        progress = Progress(epoch=0 if phase_name == "before_switch" else 99, total_epochs=100)
        for disc in (method.D_A, method.D_B):
            disc.normalise = run["donorm"]
        switched = method.switched(progress)
        assert method._threshold(switched) == pytest.approx(run["threshold"])
        cache = {}
        with torch.no_grad():
            for side, official_g in (("A", "g_loss_A"), ("B", "g_loss_B")):
                terms = method._g_loss(batch, cache, side, switched)
                assert_close(sum(terms.values()), run[official_g], atol=1e-5, what=f"{official_g} ({phase_name})")
            # the discriminators' fakes come from the official pool inputs (the pools return them: not yet full)
            cache["pool_B_in"] = torch.cat([inputs["fake_pool_b"], inputs["fake_pool_b_mask"]], 1)
            cache["pool_A_in"] = torch.cat([inputs["fake_pool_a"], inputs["fake_pool_a_mask"]], 1)
            for side, official_d in (("A", "d_loss_B"), ("B", "d_loss_A")):
                loss = method._d_loss(batch, cache, side, switched)[f"D_{side}"]
                assert_close(loss, run[official_d], atol=1e-5, what=f"{official_d} ({phase_name})")

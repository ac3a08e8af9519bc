"""The img2img-turbo training fixtures (record_turbo_training.py; keys in turbo_training_format.md) are complete
and self-consistent, checked with plain tensor arithmetic and no official or i2i code:

- every optimizer step: torch's foreach AdamW, written out op by op over the official param list (duplicates
  included, in order), from the initial weights and the recorded gradients, gives the recorded step and step
  counters (a duplicated parameter is stepped twice);
- every clip_grad_norm_: the recorded coefficient scaled each gradient once per listing (coef^2 for duplicated
  parameters), and the pre-clip gradients rebuilt from that give the recorded total norm;
- every weighted loss the script logs is its recorded unweighted terms times the official lambdas;
- before PR #62 only the discriminator steps differ, and they do;
- the first generator output (i2i's OneStepTranslator, 1e-9), the first LPIPS term, pix2pix's CLIP logits and the
  first discriminator term (LPIPS, CLIP, DiffAugment with the recorded draws and the spectral-norm heads written
  out here, 1e-12) rebuild from the fixture's weights, seeds and draws.
These are what a replay of i2i's methods (pix2pix_turbo, cyclegan_turbo) will rely on.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from tests.golden.golden_fixtures import FLOAT32_STORAGE, FLOAT64_RTOL, load_fixture


def unpack(packed: dict) -> dict[str, torch.Tensor]:
    sizes = [int(torch.tensor(shape).prod()) for shape in packed["shapes"]]
    parts = torch.split(packed["flat"].double(), sizes)
    return {key: part.reshape(shape) for key, part, shape in zip(packed["keys"], parts, packed["shapes"])}


@pytest.fixture(scope="module", params=["pix2pix", "cyclegan"])
def fixture(request) -> dict:
    return load_fixture(f"turbo_training_{request.param}")


def initial_weights(fixture: dict) -> dict[str, torch.Tensor]:
    """Every network's initial weights by parameter name (`<network>.<name>`)."""
    initial, weights = fixture["initial"], {}
    for network, packed in initial.items():
        if isinstance(packed, dict) and network != "vae_b2a_differs":
            prefix = f"{network}.decoder." if network.startswith("net_disc") else f"{network}."
            weights.update({prefix + k: v for k, v in unpack(packed).items()})
    if "vae_b2a_differs" in initial:
        b2a = {**unpack(initial["vae_a2b"]), **unpack(initial["vae_b2a_differs"])}
        weights.update({f"vae_b2a.{k}": v for k, v in b2a.items()})
    return weights


def split(flat: torch.Tensor, optimizer: dict) -> dict[str, torch.Tensor]:
    sizes = [int(torch.tensor(shape).prod()) for shape in optimizer["trained_shapes"]]
    parts = torch.split(flat.double(), sizes)
    return {n: p.reshape(s) for n, p, s in zip(optimizer["trained"], parts, optimizer["trained_shapes"])}


class ForeachAdamW:
    """torch.optim.AdamW(foreach=True)'s _multi_tensor_adam on a list that may hold a tensor twice: each
    foreach op runs over the whole list, entry by entry (as on the CPU)."""

    def __init__(self, params: dict[str, torch.Tensor], entries: list[str], hyper: dict) -> None:
        self.params, self.entries, self.hyper = params, entries, hyper
        self.exp_avg = {n: torch.zeros_like(params[n]) for n in set(entries)}
        self.exp_avg_sq = {n: torch.zeros_like(params[n]) for n in set(entries)}
        self.count = {n: 0.0 for n in set(entries)}

    def step(self, grads: dict[str, torch.Tensor]) -> None:
        lr, (beta1, beta2) = self.hyper["lr"], self.hyper["betas"]
        entries = self.entries
        for n in entries:
            self.count[n] += 1
        for n in entries:
            self.params[n].mul_(1 - lr * self.hyper["weight_decay"])
        for n in entries:
            self.exp_avg[n].lerp_(grads[n], 1 - beta1)
        for n in entries:
            self.exp_avg_sq[n].mul_(beta2)
        for n in entries:
            self.exp_avg_sq[n].addcmul_(grads[n], grads[n], value=1 - beta2)
        step_size = [(lr / (1 - beta1 ** self.count[n])) * -1 for n in entries]
        denominators = [self.exp_avg_sq[n].sqrt() for n in entries]
        for i, n in enumerate(entries):
            denominators[i].div_((1 - beta2 ** self.count[n]) ** 0.5).add_(self.hyper["eps"])
        for i, n in enumerate(entries):
            self.params[n].addcdiv_(self.exp_avg[n], denominators[i], value=step_size[i])


def test_adamw_from_the_recorded_gradients_gives_the_recorded_steps(fixture) -> None:
    weights = initial_weights(fixture)
    for name, optimizer in fixture["optimizers"].items():
        trained = set(optimizer["trained"])
        entries = [n for n in optimizer["param_names"] if n in trained]  # AdamW skips grad-less entries
        params = {n: weights[n].clone() for n in trained}
        adamw = ForeachAdamW(params, entries, optimizer["hyper"])
        for step in [s for s in fixture["steps"] if s["optimizer"] == name]:
            before = {n: p.clone() for n, p in params.items()}
            adamw.step(split(step["grads"], optimizer))
            recorded = split(step["step"], optimizer)
            for n in optimizer["trained"]:
                taken = params[n] - before[n]
                scale = float(recorded[n].abs().max())
                bound = FLOAT32_STORAGE * recorded[n].abs() + FLOAT64_RTOL * scale + 1e-300
                assert torch.all((taken - recorded[n]).abs() <= bound), f"{name} {step['phase']} {n}"
            counts = torch.tensor([adamw.count[n] for n in optimizer["trained"]], dtype=torch.float64)
            assert torch.equal(counts, step["adam_step_count"])


def test_duplicated_parameters_are_stepped_and_clipped_twice(fixture) -> None:
    for name, optimizer in fixture["optimizers"].items():
        entries = optimizer["param_names"]
        duplicated = {n for n in entries if entries.count(n) == 2}
        assert bool(duplicated) == (name != "optimizer_disc"), name  # the generators' lists hold some twice
        if not duplicated:
            continue
        first = next(s for s in fixture["steps"] if s["optimizer"] == name)
        counts = dict(zip(optimizer["trained"], first["adam_step_count"].tolist()))
        assert {n for n, c in counts.items() if c == 2} == duplicated


def test_clipping_scaled_each_listing_and_the_norm_counts_each_listing(fixture) -> None:
    for clip in fixture["clips"]:
        step = fixture["steps"][clip["before_step"]]
        optimizer = fixture["optimizers"][step["optimizer"]]
        grads = split(step["grads"], optimizer)
        names = optimizer["param_names"] if clip["param_names"] == step["optimizer"] else clip["param_names"]
        listed = [n for n in names if n in grads]
        for n, factor in zip(optimizer["trained"], clip["grad_scaled_by"].tolist()):
            if not math.isnan(factor):  # NaN: an all-zero gradient
                assert factor == pytest.approx(clip["coef"] ** listed.count(n), rel=1e-12), n
        pre_clip = {n: grads[n] / clip["coef"] ** listed.count(n) for n in set(listed)}
        total = torch.stack([pre_clip[n].norm() for n in listed]).norm()
        assert float(total) == pytest.approx(float(clip["total_norm"]), rel=1e-12)
        assert clip["coef"] == min(1.0, clip["max_norm"] / (float(clip["total_norm"]) + 1e-6))


def _terms(fixture: dict, what: str) -> list[torch.Tensor]:
    return [t["value"] for t in fixture["terms"] if t["what"] == what]


def test_pix2pix_losses_are_the_terms_times_the_lambdas() -> None:
    fixture = load_fixture("turbo_training_pix2pix")
    args, losses = fixture["args"], fixture["losses"]
    (mse,), (lpips,), (logits,) = _terms(fixture, "mse"), _terms(fixture, "lpips_per_sample"), _terms(
        fixture, "clip_logits_per_image")
    generator, real, fake = _terms(fixture, "disc_loss_per_sample")
    assert torch.equal(losses["loss_l2"], mse * args["lambda_l2"])
    assert torch.equal(losses["loss_lpips"], lpips.mean() * args["lambda_lpips"])
    assert torch.equal(losses["loss_clipsim"], 1 - logits.mean() / 100)
    assert torch.equal(losses["loss"], losses["loss_l2"] + losses["loss_lpips"]
                       + losses["loss_clipsim"] * args["lambda_clipsim"])
    for key, per_sample in (("lossG", generator), ("lossD_real", real), ("lossD_fake", fake)):
        assert torch.equal(losses[key], per_sample.mean() * args["lambda_gan"]), key
    assert [d["kind"] for d in fixture["draws"]] == ["vae_posterior", "ddpm_step"] * 2 + (
        ["diffaug_rand"] * 3 + ["diffaug_randint"] * 4) * 3
    assert [s["phase"] for s in fixture["steps"]] == ["reconstruction", "generator_gan", "disc_real", "disc_fake"]


def test_cyclegan_losses_are_the_terms_times_the_lambdas() -> None:
    fixture = load_fixture("turbo_training_cyclegan")
    args, losses = fixture["args"], fixture["losses"]
    cycle, idt, lpips = _terms(fixture, "l1_cycle"), _terms(fixture, "l1_idt"), _terms(fixture, "lpips_per_sample")
    for i, key in enumerate(("loss_cycle_a", "loss_cycle_b")):
        expected = cycle[i] * args["lambda_cycle"] + lpips[i].mean() * args["lambda_cycle_lpips"]
        assert torch.equal(losses[key], expected), key
    for i, key in enumerate(("loss_idt_a", "loss_idt_b")):
        expected = idt[i] * args["lambda_idt"] + lpips[2 + i].mean() * args["lambda_idt_lpips"]
        assert torch.equal(losses[key], expected), key
    disc = _terms(fixture, "disc_loss_per_sample")
    for i, key in enumerate(("loss_gan_a", "loss_gan_b", "loss_D_A_fake", "loss_D_B_fake", "loss_D_A_real",
                             "loss_D_B_real")):
        assert torch.equal(losses[key], disc[i].mean() * args["lambda_gan"]), key
    assert torch.equal(losses["loss_D_fake"], (losses["loss_D_A_fake"] + losses["loss_D_B_fake"]) * 0.5)
    assert torch.equal(losses["loss_D_real"], (losses["loss_D_A_real"] + losses["loss_D_B_real"]) * 0.5)
    assert len(fixture["outputs"]) == 8 and len(fixture["draws"]) == 8 * 3 + 6 * 7  # posterior + 2 ddpm_step


def test_before_pr62_only_the_discriminator_steps_differ() -> None:
    head, before = load_fixture("turbo_training_cyclegan"), load_fixture("turbo_training_cyclegan_pre62")
    assert [s["phase"] for s in before["steps"]] == ["disc_fake", "disc_real"]
    for key, value in head["losses"].items():
        same = torch.equal(value, before["losses"][key])
        assert same == (key not in ("loss_D_A_real", "loss_D_B_real", "loss_D_real")), key
    for head_step, before_step in zip(head["steps"][3:], before["steps"]):
        assert (head_step["grads"] - before_step["grads"]).abs().max() > 1e-3 * head_step["grads"].abs().max()


def _translator(fixture: dict, vae_key: str, vae_state: dict[str, torch.Tensor]):
    """i2i's one-step generator (models/networks/turbo.py) with the fixture's initial weights, strictly."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from i2i_cli.models.networks import turbo

    config, args = fixture["config"], fixture["args"]
    vae, unet = AutoencoderKL(**config["vae"]), UNet2DConditionModel(**config["unet"])
    turbo.add_skip_convs(vae)
    turbo.add_vae_lora(vae, rank=args["lora_rank_vae"])
    if vae_key == "vae":
        turbo.add_unet_lora_paired(unet, rank=args["lora_rank_unet"])
    else:
        turbo.add_unet_lora_unpaired(unet, rank=args["lora_rank_unet"])
    translator = turbo.OneStepTranslator(unet, vae, turbo.OneStepScheduler.from_config(config["scheduler"]))
    translator = translator.double()
    translator.unet.load_state_dict(unpack(fixture["initial"]["unet"]), strict=True)
    translator.vae.load_state_dict(vae_state, strict=True)
    return translator


def test_the_first_generator_forward_rebuilds_from_the_fixture(fixture) -> None:
    """The initial weights, the configs and the first posterior draw give the first recorded output (i2i's
    generator leaves out the DDPM step's 1e-10 noise: 1e-9, as test_golden_turbo_generator)."""
    pytest.importorskip("diffusers")
    pytest.importorskip("peft")
    initial, batch = fixture["initial"], fixture["batch"]
    if "vae" in initial:
        from transformers import CLIPTextConfig, CLIPTextModel

        text = CLIPTextModel(CLIPTextConfig(**fixture["config"]["text"])).double().eval()
        text.load_state_dict(unpack(initial["text_encoder"]), strict=True)
        with torch.no_grad():
            caption = text(batch["input_ids"])[0]
        translator, x = _translator(fixture, "vae", unpack(initial["vae"])), batch["conditioning_pixel_values"]
    else:
        caption = initial["fixed_a2b_emb_base"].repeat(2, 1, 1)
        translator, x = _translator(fixture, "vae_a2b", unpack(initial["vae_a2b"])), batch["pixel_values_src"]
    first = fixture["draws"][0]
    assert first["kind"] == "vae_posterior" and first["forward"] == fixture["outputs"][0]["forward"]
    with torch.no_grad():
        output = translator(x, caption, noise=first["value"])
    assert (output - fixture["outputs"][0]["value"]).abs().max() <= 1e-9


@functools.cache
def _vgg16_features(seed: int) -> torch.nn.Sequential:
    """torchvision's vgg16().features layout (convs at record_turbo_training.VGG_CONVS' indices, ReLU after
    each, max pools between the stages), float64, with the seeded weights."""
    from tests.golden.record_turbo_training import VGG_CONVS, seeded_vgg16_features

    layers: list[torch.nn.Module] = []
    for index in range(31):
        if index in VGG_CONVS:
            out_channels, in_channels = VGG_CONVS[index]
            layers.append(torch.nn.Conv2d(in_channels, out_channels, 3, padding=1, dtype=torch.float64))
        elif index - 1 in VGG_CONVS:
            layers.append(torch.nn.ReLU(inplace=True))
        else:
            layers.append(torch.nn.MaxPool2d(2, 2))
    features = torch.nn.Sequential(*layers)
    features.load_state_dict(seeded_vgg16_features(seed), strict=True)
    return features


def _lpips(fixture: dict, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS 0.1 (VGG, lpips=True, spatial=False) written out: scaling layer, VGG16 relu1_2..relu5_3 of the
    seeded features, unit-normalised channels, squared difference, the stored 1x1 heads, spatial mean, sum."""
    state = fixture["lpips"]["state"]
    features = _vgg16_features(fixture["lpips"]["vgg_seed"])
    slices = [features[0:4], features[4:9], features[9:16], features[16:23], features[23:30]]
    shift, scale = state["scaling_layer.shift"], state["scaling_layer.scale"]
    ha, hb, total = (a - shift) / scale, (b - shift) / scale, 0
    for k, layers in enumerate(slices):
        ha, hb = layers(ha), layers(hb)
        na = ha / (ha.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = hb / (hb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        head = torch.nn.functional.conv2d((na - nb) ** 2, state[f"lin{k}.model.1.weight"])
        total = total + head.mean([2, 3], keepdim=True)
    return total


def test_the_lpips_term_rebuilds_from_the_seeded_vgg_and_the_stored_heads(fixture) -> None:
    batch, (term, *_) = fixture["batch"], _terms(fixture, "lpips_per_sample")
    if "output_pixel_values" in batch:  # pix2pix: lpips(x_tgt_pred of the first forward, x_tgt)
        a, b = fixture["outputs"][0]["value"], batch["output_pixel_values"]
    else:  # CycleGAN: lpips(cyc_rec_a, img_a)
        a, b = fixture["outputs"][1]["value"], batch["pixel_values_src"]
    with torch.no_grad():
        value = _lpips(fixture, a, b)
    assert (value - term).abs().max() <= 1e-12 * term.abs().max()


def _clip_blocks(x: torch.Tensor, state: dict, prefix: str, heads: int, mask: torch.Tensor | None,
                 layers: range) -> torch.Tensor:
    """CLIP's residual attention blocks (LND layout): x + attn(ln_1 x), then x + c_proj(QuickGELU(c_fc(ln_2 x)))."""
    f = torch.nn.functional
    for i in layers:
        p = f"{prefix}{i}."
        h = f.layer_norm(x, x.shape[-1:], state[p + "ln_1.weight"], state[p + "ln_1.bias"])
        h = f.multi_head_attention_forward(
            h, h, h, x.shape[-1], heads, state[p + "attn.in_proj_weight"], state[p + "attn.in_proj_bias"], None, None,
            False, 0.0, state[p + "attn.out_proj.weight"], state[p + "attn.out_proj.bias"], need_weights=False,
            attn_mask=mask)[0]
        x = x + h
        h = f.layer_norm(x, x.shape[-1:], state[p + "ln_2.weight"], state[p + "ln_2.bias"])
        h = f.linear(h, state[p + "mlp.c_fc.weight"], state[p + "mlp.c_fc.bias"])
        x = x + f.linear(h * torch.sigmoid(1.702 * h), state[p + "mlp.c_proj.weight"], state[p + "mlp.c_proj.bias"])
    return x


def _clip_image_levels(fixture: dict, images: torch.Tensor) -> list[torch.Tensor]:
    """openai/CLIP's ViT image tower written out on `seeded_clip_state` weights: the (N, 50, width) tokens after
    blocks 4 and 8 (vision_aided_loss's feature points) and the final image embedding."""
    from tests.golden.record_turbo_training import seeded_clip_state

    f, clip, config = torch.nn.functional, fixture["clip"], fixture["clip"]["config"]
    s = seeded_clip_state(clip["keys"], clip["shapes"], clip["seed"])
    x = f.conv2d(images, s["visual.conv1.weight"], stride=config["vision_patch_size"]).flatten(2).permute(0, 2, 1)
    x = torch.cat([s["visual.class_embedding"].expand(x.shape[0], 1, -1), x], 1) + s["visual.positional_embedding"]
    x = f.layer_norm(x, x.shape[-1:], s["visual.ln_pre.weight"], s["visual.ln_pre.bias"]).permute(1, 0, 2)
    levels, heads = [], config["vision_width"] // 64
    for start, stop in ((0, 4), (4, 8), (8, config["vision_layers"])):
        x = _clip_blocks(x, s, "visual.transformer.resblocks.", heads, None, range(start, stop))
        levels.append(x.permute(1, 0, 2))
    last = levels.pop()[:, 0]
    levels.append(f.layer_norm(last, last.shape[-1:], s["visual.ln_post.weight"], s["visual.ln_post.bias"])
                  @ s["visual.proj"])
    return levels


def _clip_logits_per_image(fixture: dict, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """openai/CLIP's CLIP.forward written out: logit_scale.exp() x cosine(image, text) embeddings."""
    from tests.golden.record_turbo_training import seeded_clip_state

    f, clip, config = torch.nn.functional, fixture["clip"], fixture["clip"]["config"]
    s = seeded_clip_state(clip["keys"], clip["shapes"], clip["seed"])
    image = _clip_image_levels(fixture, images)[-1]
    length = config["context_length"]
    mask = torch.full((length, length), float("-inf"), dtype=torch.float64).triu_(1)
    t = (s["token_embedding.weight"][tokens] + s["positional_embedding"]).permute(1, 0, 2)
    t = _clip_blocks(t, s, "transformer.resblocks.", config["transformer_heads"], mask,
                     range(config["transformer_layers"])).permute(1, 0, 2)
    t = f.layer_norm(t, t.shape[-1:], s["ln_final.weight"], s["ln_final.bias"])
    text = t[torch.arange(t.shape[0]), tokens.argmax(dim=-1)] @ s["text_projection"]
    image, text = image / image.norm(dim=1, keepdim=True), text / text.norm(dim=1, keepdim=True)
    return s["logit_scale"].exp() * image @ text.t()


def test_the_clip_similarity_term_rebuilds_from_the_seeded_clip() -> None:
    """pix2pix-Turbo's CLIP-sim input: the first output renormalised with CLIP's statistics, resized to 224
    bilinearly; the caption's `clip_tokens`: the recorded logits_per_image, 1e-12."""
    fixture = load_fixture("turbo_training_pix2pix")
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=torch.float64).view(1, 3, 1, 1)
    images = (fixture["outputs"][0]["value"] * 0.5 + 0.5 - mean) / std
    images = torch.nn.functional.interpolate(images, (224, 224), mode="bilinear", align_corners=False)
    with torch.no_grad():
        logits = _clip_logits_per_image(fixture, images, fixture["batch"]["clip_tokens"])
    (term,) = _terms(fixture, "clip_logits_per_image")
    assert (logits - term).abs().max() <= 1e-12 * term.abs().max()


def _diff_augment(x: torch.Tensor, draws: list[torch.Tensor]) -> torch.Tensor:
    """DiffAugment 'color,translation,cutout' with its 7 recorded draws (brightness, saturation, contrast,
    translation x / y, cutout offset x / y)."""
    brightness, saturation, contrast, shift_x, shift_y, offset_x, offset_y = draws
    x = x + (brightness - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (saturation * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - mean) * (contrast + 0.5) + mean
    n, _, h, w = x.shape
    grid_n, grid_x, grid_y = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    grid_x = torch.clamp(grid_x + shift_x + 1, 0, h + 1)
    grid_y = torch.clamp(grid_y + shift_y + 1, 0, w + 1)
    x = torch.nn.functional.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)[grid_n, grid_x, grid_y].permute(0, 3, 1, 2)
    size_x, size_y = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    grid_n, grid_x, grid_y = torch.meshgrid(torch.arange(n), torch.arange(size_x), torch.arange(size_y), indexing="ij")
    grid_x = torch.clamp(grid_x + offset_x - size_x // 2, min=0, max=h - 1)
    grid_y = torch.clamp(grid_y + offset_y - size_y // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype)
    mask[grid_n, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


def _spectral_normalised(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """torch's spectral_norm in training mode: one power iteration from the stored u, v, then weight / sigma."""
    f = torch.nn.functional
    weight = state[prefix + "weight_orig"]
    matrix = weight.reshape(weight.shape[0], -1)
    v = f.normalize(matrix.t() @ state[prefix + "weight_u"], dim=0, eps=1e-12)
    u = f.normalize(matrix @ v, dim=0, eps=1e-12)
    return weight / torch.dot(u, matrix @ v)


def _discriminator_loss(fixture: dict, state: dict, images: torch.Tensor, draws: list[torch.Tensor],
                        target: float) -> torch.Tensor:
    """vision_aided_loss 0.1.0's Discriminator(cv_type='clip') + multilevel sigmoid loss, written out: DiffAugment,
    CLIP's features at blocks 4 and 8 (as 7 x 7 maps) and its embedding, MultiLevelDViT's three spectral-norm heads
    (conv 3x3, LeakyReLU 0.2, BlurPool [1 3 3 1] zero-padded, conv 1x1 stride 2; linear, LeakyReLU, linear), BCE
    with logits against `target`, each level averaged per sample, summed."""
    f = torch.nn.functional
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], dtype=torch.float64).view(1, 3, 1, 1)
    x = f.interpolate(_diff_augment(images, draws) * 0.5 + 0.5, size=(224, 224), mode="area")
    first, second, embedding = _clip_image_levels(fixture, (x - mean) / std)
    loss = 0
    for i, tokens in enumerate((first, second)):
        p = f"0.decoder.{i}."
        maps = tokens[:, 1:, :].permute(0, 2, 1).reshape(tokens.shape[0], -1, 7, 7)
        h = f.leaky_relu(f.conv2d(maps, _spectral_normalised(state, p + "1."), state[p + "1.bias"], padding=1), 0.2)
        h = f.conv2d(f.pad(h, [1, 1, 1, 1]), state[p + "3.filt"], groups=h.shape[1])
        logits = f.conv2d(h, _spectral_normalised(state, p + "4."), state[p + "4.bias"], stride=2).squeeze(1)
        bce = f.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="none")
        loss = loss + bce.mean([1, 2]).reshape(-1, 1)
    h = f.leaky_relu(f.linear(embedding, _spectral_normalised(state, "0.decoder.2.0."), state["0.decoder.2.0.bias"]),
                     0.2)
    logits = f.linear(h, _spectral_normalised(state, "0.out."), state["0.out.bias"])
    return loss + f.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="none")


def test_the_first_discriminator_term_rebuilds_from_the_fixture(fixture) -> None:
    """The generator's GAN term (the first discriminator forward, before any discriminator step) from the
    initial heads, the seeded CLIP, the recorded output and the recorded DiffAugment draws: 1e-12."""
    if "net_disc" in fixture["initial"]:  # pix2pix: D(second forward's output), multilevel_sigmoid_s (0.8)
        label, source, network, target = "net_disc(for_G) #1", "net_pix2pix #2", "net_disc", 0.8
    else:  # CycleGAN: disc_a(fake_b = a2b(img_a) of the GAN step), multilevel_sigmoid
        label, source, network, target = "net_disc_a(for_G) #1", "forward_with_networks(a2b) #3", "net_disc_a", 1.0
    images = next(o["value"] for o in fixture["outputs"] if o["forward"] == source)
    draws = [d["value"] for d in fixture["draws"] if d["forward"] == label]
    term = next(t["value"] for t in fixture["terms"] if t["forward"] == label)
    with torch.no_grad():
        loss = _discriminator_loss(fixture, unpack(fixture["initial"][network]), images, draws, target)
    assert (loss - term).abs().max() <= 1e-12 * term.abs().max()

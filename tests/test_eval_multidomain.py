"""`i2i eval --checkpoint` of a multi-domain (StarGAN v2) run: StarGAN v2's protocol, and `--mode stargan_v2`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.evaluation import fid_kid
from i2i_cli.main import app

K = 3  # outputs per input in the CLI test (StarGAN v2 uses 10)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """Stand-in weight files under their registry names: clean-fid's Inception, LPIPS's AlexNet backbone,
    torchvision's Inception-v3 (for --mode stargan_v2)."""
    import lpips
    import torchvision

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.jit.script(_Clean()).save(str(folder / "inception-2015-12-05.pt"))
    alex = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    torch.save({"features." + k.split(".", 1)[1]: v for k, v in alex.net.state_dict().items()},
               folder / "alexnet-owt-7be5be79.pth")
    inception = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    for module in inception.modules():  # batch-norm statistics of one batch: features of order 1, not 1e-8
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        inception.train()(torch.rand(4, 3, 299, 299) * 4 - 2)
    torch.save(inception.state_dict(), folder / "inception_v3_google-0cc3c7bd.pth")
    return folder


class _Layers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 32, 8, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1)


class _Clean(torch.nn.Module):
    """clean-fid's TorchScript Inception interface (`layers` on (x - 128) / 128, or the whole net with its own
    resize) with 32 seeded random features, so FID's sqrtm is instant."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


@pytest.fixture(scope="module")
def domains_data(tmp_path_factory) -> Path:
    """Three domains, train/ (3 images each: the FID reference) and val/ (2 each: translated)."""
    from i2i_cli.data.synth import synthesize

    return synthesize("scenes", tmp_path_factory.mktemp("data") / "d", "domains", size=32, n_train=3, n_test=2,
                      n_domains=3, seed=1).root


@pytest.fixture(scope="module")
def run(tmp_path_factory, domains_data) -> Path:
    """A tiny StarGAN v2 run (random weights, one checkpoint at step 1) under ./runs of its own folder."""
    from tests.run_factory import make_run

    domains = sorted(p.name for p in (domains_data / "val").iterdir())
    return make_run(tmp_path_factory.mktemp("home") / "runs" / "sg", "starganv2", domains=domains,
                    data={"root": str(domains_data)})


def _tasks(data: Path) -> list[str]:
    domains = sorted(p.name for p in (data / "val").iterdir())
    return [f"{s}2{t}" for t in domains for s in domains if s != t]


def test_bare_eval_scores_every_task_of_the_newest_run_both_guidances(run, domains_data, weights_dir,
                                                                     monkeypatch, tmp_path):
    monkeypatch.chdir(run.parent.parent)  # bare `i2i eval`: the newest run under ./runs and its dataset
    result = CliRunner().invoke(app, ["eval", "--outputs-per-input", str(K), "--weights-dir", str(weights_dir),
                                      "--json", str(tmp_path / "e.json")], terminal_width=200)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    tasks = _tasks(domains_data)
    assert len(tasks) == 6
    protocol = report["protocol"]
    assert protocol["tasks"] == tasks and protocol["guidance"] == ["latent", "reference"]
    assert protocol["outputs_per_input"] == K and protocol["lpips_pairs_per_input"] == K * (K - 1) // 2
    assert protocol["evaluation_split"] == "val" and protocol["fid_reference_split"] == "train"
    assert protocol["mode"] == "clean" and protocol["seeds"]["multidomain"] == 0 and protocol["step"] == 1
    assert set(protocol["weights"]) == {"inception", "lpips_backbone"}
    assert protocol["lpips"]["averaging"] == "per_input"  # outside --mode stargan_v2: the per-input mean
    for guidance in ("latent", "reference"):
        for task in tasks:
            written = list((run / "eval" / "step_00000001" / guidance / task).glob("*.png"))
            assert len(written) == K * 2  # K outputs for each of the source domain's 2 val images
            assert protocol["task_counts"][guidance][task] == {"inputs": 2, "outputs": K * 2,
                                                              "fid_reference_images": 3}
            assert report[f"fid_{guidance}_{task}"] > 0 and report[f"lpips_{guidance}_{task}"] > 0
            assert task in result.output
        for metric in ("fid", "lpips"):
            per_task = [report[f"{metric}_{guidance}_{t}"] for t in tasks]
            assert report[f"{metric}_{guidance}_mean"] == pytest.approx(np.mean(per_task), rel=1e-12)
    assert "mean" in result.output and "LPIPS reference" in result.output  # one row per task, then the means


def test_same_seed_same_numbers_and_a_smaller_k_replaces_earlier_outputs(run, weights_dir, tmp_path):
    from i2i_cli.evaluation.evaluate import EvalOptions, evaluate_run
    from i2i_cli.evaluation.multidomain import MultiDomainOptions

    options = EvalOptions(weights_dir=weights_dir)

    def latent(seed: int, k: int, out: Path) -> dict[str, float | None]:
        return evaluate_run(run, None, options, out, multidomain=MultiDomainOptions(("latent",), k, seed))[0].values

    first, again, other = latent(5, 3, tmp_path / "a"), latent(5, 3, tmp_path / "b"), latent(6, 3, tmp_path / "c")
    assert first == again and first["lpips_latent_mean"] != other["lpips_latent_mean"]
    assert all(k.startswith(("fid_latent_", "lpips_latent_")) for k in first)
    latent(5, 2, tmp_path / "a")  # the same folder with fewer outputs: earlier files must not enter the FID
    for task in (tmp_path / "a" / "latent").iterdir():
        assert len(list(task.glob("*.png"))) == 2 * 2


def test_stargan_v2_lpips_diversity_averages_per_loader_batch_elsewhere_per_input():
    """metrics/eval.py appends one LPIPS per loader batch (val_batch_size inputs) and averages those: a last,
    smaller batch weighs as much as a full one. The per-input mean weighs every input alike."""
    from i2i_cli.evaluation.lpips_metric import average_diversity

    distances = [torch.tensor(d, dtype=torch.float64) for d in
                 ([0.1, 0.2, 0.3], [0.4, 0.4, 0.4], [0.2, 0.2, 0.5], [0.3, 0.3, 0.3], [0.9, 0.6, 0.6])]
    means = [float(d.mean()) for d in distances]
    batched = average_diversity(distances, "stargan_v2", batch_size=2)  # batches of inputs {0, 1}, {2, 3}, {4}
    assert batched == pytest.approx(np.mean([np.mean(means[:2]), np.mean(means[2:4]), means[4]]), abs=1e-12)
    assert average_diversity(distances) == pytest.approx(np.mean(means), abs=1e-12)
    assert abs(batched - np.mean(means)) > 0.01
    assert average_diversity(distances, "stargan_v2", batch_size=5) == pytest.approx(np.mean(means), abs=1e-12)


def test_bad_options_and_a_dataset_without_domains_are_one_line_errors(run, weights_dir, tmp_path):
    from i2i_cli.data.synth import synthesize

    runner = CliRunner()
    base = ["eval", "--checkpoint", str(run), "--weights-dir", str(weights_dir)]
    wrong = runner.invoke(app, [*base, "--guidance", "random"])
    assert wrong.exit_code == 2 and "--guidance: unknown random" in wrong.output
    one = runner.invoke(app, [*base, "--outputs-per-input", "1"])
    assert one.exit_code == 2 and "--outputs-per-input must be >= 2" in one.output
    mode = runner.invoke(app, [*base, "--mode", "tf"])
    assert mode.exit_code == 2 and "--mode tf" in mode.output
    paired = synthesize("scenes", tmp_path / "p", "aligned", size=32, n_train=2, n_test=2).root
    refused = runner.invoke(app, [*base, "--data", str(paired)])
    assert refused.exit_code == 2 and "one folder per domain" in refused.output


def _direct_stargan_v2_features(files: list[Path], net: torch.nn.Module, size: int) -> np.ndarray:
    """StarGAN v2's FID features written out independently: torchvision Resize([size]) then Resize([299]) on
    the PIL image (bilinear), ToTensor, ImageNet Normalize, the Inception blocks to Mixed_7c, average pool."""
    import torchvision.transforms as T

    transform = T.Compose([T.Resize([size, size]), T.Resize([299, 299]), T.ToTensor(),
                           T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    captured: list[torch.Tensor] = []
    hook = net.avgpool.register_forward_hook(lambda m, i, o: captured.append(o.flatten(1)))
    net.transform_input = False  # StarGAN v2 runs the blocks, never the model's own input transform
    with torch.no_grad():
        net(x)
    hook.remove()
    return captured[0].double().numpy()


def test_stargan_v2_mode_equals_a_direct_torchvision_recomputation_at_the_runs_size(run, domains_data,
                                                                                   weights_dir):
    """The named mode (spelled stargan-v2 too) on a run's outputs and the target's train images: equal within
    1e-6 relative to torchvision's inception_v3 with the same stand-in weights, ImageNet normalisation and
    StarGAN v2's two resizes (to the run's size, 32 here, then 299)."""
    import torchvision

    from i2i_cli.evaluation.evaluate import EvalOptions

    assert EvalOptions(mode="stargan-v2").mode == "stargan_v2"
    model, weights = fid_kid.inception("stargan-v2", weights_dir=weights_dir)
    assert weights.path.name == "inception_v3_google-0cc3c7bd.pth"
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    net.load_state_dict(torch.load(weights_dir / "inception_v3_google-0cc3c7bd.pth"))
    train = domains_data / "train" / sorted(p.name for p in (domains_data / "train").iterdir())[0]
    for folder, size in ((train, 32), (train, 256)):
        files = sorted(folder.iterdir())
        ours, bad = fid_kid.folder_features(folder, model, "stargan_v2", batch_size=len(files), image_size=size)
        expected = _direct_stargan_v2_features(files, net, size)
        assert ours.shape == (len(files), 2048) and not bad
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=0)
        assert np.abs(ours).mean() > 1e-2  # features of order 1: the tolerance is meaningful
    generic = fid_kid.folder_features(train, model, "stargan_v2", batch_size=8)[0]
    at_run_size = fid_kid.folder_features(train, model, "stargan_v2", image_size=32)[0]
    assert np.abs(generic - at_run_size).max() > 1e-3 * np.abs(generic).max()  # the first resize matters


@pytest.mark.slow
def test_run_eval_in_stargan_v2_mode_uses_the_runs_size_and_the_target_train_images(weights_dir, tmp_path):
    """End to end with the 2048-d network on two domains: FID of a task equals the Fréchet distance of direct
    features (~25 s per 2048 x 2048 sqrtm, three of them, hence slow)."""
    import torchvision

    from i2i_cli.data.synth import synthesize
    from i2i_cli.evaluation.evaluate import EvalOptions, evaluate_run
    from i2i_cli.evaluation.multidomain import MultiDomainOptions
    from tests.run_factory import make_run

    data = synthesize("scenes", tmp_path / "d", "domains", size=32, n_train=3, n_test=2, n_domains=2, seed=2).root
    domains = sorted(p.name for p in (data / "val").iterdir())
    run = make_run(tmp_path / "run", "starganv2", domains=domains, data={"root": str(data)})
    options = EvalOptions(mode="stargan-v2", weights_dir=weights_dir, batch_size=64)
    result, work = evaluate_run(run, None, options, tmp_path / "e", multidomain=MultiDomainOptions(("latent",), 2))
    assert "32x32" in result.protocol.resize and result.protocol.mode == "stargan_v2"
    assert result.protocol.lpips["averaging"] == "stargan_v2" and "batches of 32" in result.protocol.lpips[
        "averaging_formula"]
    task = result.protocol.extra["tasks"][0]
    target = task.split("2")[1]
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    net.load_state_dict(torch.load(weights_dir / "inception_v3_google-0cc3c7bd.pth"))
    real = _direct_stargan_v2_features(sorted((data / "train" / target).iterdir()), net, 32)
    fake = _direct_stargan_v2_features(sorted((work / "latent" / task).iterdir()), net, 32)
    assert result.values[f"fid_latent_{task}"] == pytest.approx(fid_kid.fid_from_features(real, fake), rel=1e-6)

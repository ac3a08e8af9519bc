"""FID's trace term from symmetric eigenvalues equals clean-fid's scipy sqrtm; the modes' edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from cleanfid.fid import frechet_distance as clean_fid_frechet
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.benchmarks.fid_eval import CheapInception, make_images
from i2i_cli.errors import ConfigError, I2IError
from i2i_cli.evaluation import fid_kid
from i2i_cli.main import app


def _spd(rng: np.random.Generator, d: int, low: float, high: float) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * rng.uniform(low, high, d)) @ q.T


def _features(rng: np.random.Generator, n: int, d: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mixing) * scale + shift


def _clean_fid(real: np.ndarray, fake: np.ndarray) -> float:
    return float(clean_fid_frechet(real.mean(0), np.cov(real, rowvar=False), fake.mean(0),
                                   np.cov(fake, rowvar=False)))


@pytest.mark.parametrize("d", [64, 512])
def test_eigh_equals_clean_fid_on_well_conditioned_random_covariances(d):
    rng = np.random.default_rng(d)
    s1, s2 = _spd(rng, d, 0.5, 2.0), _spd(rng, d, 0.3, 3.0)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    ours = fid_kid.frechet_distance(mu1, s1, mu2, s2, sqrt="eigh")
    assert math.isclose(ours, float(clean_fid_frechet(mu1, s1, mu2, s2)), rel_tol=1e-6)
    assert math.isclose(fid_kid.frechet_distance(mu1, s1, mu2, s2, sqrt="sqrtm"), float(clean_fid_frechet(mu1, s1, mu2, s2)),
                        rel_tol=1e-12)


@pytest.mark.parametrize(("n_real", "n_fake", "d"), [(40, 30, 512), (12, 48, 512), (300, 100, 64), (700, 20, 512)])
def test_eigh_equals_clean_fid_on_features_with_and_without_fewer_images_than_dimensions(n_real, n_fake, d):
    """Rank-deficient covariances (n < d) take the n x n form; n >= d the d x d one; both equal clean-fid."""
    rng = np.random.default_rng(n_real + n_fake)
    real, fake = _features(rng, n_real, d, shift=0.2), _features(rng, n_fake, d, scale=1.1)
    ours = fid_kid.fid_from_features(real, fake)
    assert math.isclose(ours, _clean_fid(real, fake), rel_tol=1e-5 if min(n_real, n_fake) < d else 1e-6)
    from_covariances = fid_kid.frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0),
                                                np.cov(fake, rowvar=False))
    # the same eigenproblem; the d x d form adds sqrt of its ~d round-off eigenvalues near 0 (~1e-8 relative)
    assert math.isclose(ours, from_covariances, rel_tol=1e-7)
    assert fid_kid.fid_from_features(real, real) < 1e-9 * ours


def test_trace_term_is_exact_on_commuting_covariances():
    """Diagonal S1, S2: tr sqrt(S1 S2) = sum sqrt(s1 s2), a value known without any square-root routine."""
    s1, s2 = np.diag(np.arange(1.0, 9.0)), np.diag(np.arange(8.0, 0.0, -1.0) ** 2)
    assert math.isclose(fid_kid.trace_sqrt_product(s1, s2), float(np.sqrt(np.diag(s1) * np.diag(s2)).sum()),
                        rel_tol=1e-12)


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory):
    """A TorchScript stand-in for clean-fid's Inception (its interface, 2048 features, seeded weights)."""
    folder = tmp_path_factory.mktemp("inception")
    torch.manual_seed(0)
    torch.jit.script(CheapInception(2048)).save(str(folder / "inception-2015-12-05.pt"))
    return folder


@pytest.fixture(scope="module")
def image_features(network_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    make_images(root / "real", 24, 1)
    make_images(root / "fake", 10, 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("I2I_WEIGHTS_DIR", str(network_dir))
        model, _ = fid_kid.inception("clean")
    return [fid_kid.folder_features(root / name, model, "clean")[0] for name in ("real", "fake")]


@pytest.mark.slow
def test_eigh_equals_clean_fid_on_real_2048_feature_sets(image_features):
    """Network features (24 and 10 images, 2048 dims): one 2048 x 2048 scipy sqrtm on clean-fid's side."""
    real, fake = image_features
    assert math.isclose(fid_kid.fid_from_features(real, fake), _clean_fid(real, fake), rel_tol=1e-5)


def test_eigh_equals_clean_fid_on_real_feature_sets_in_fewer_dimensions(image_features):
    real, fake = (f[:, :256] for f in image_features)
    assert math.isclose(fid_kid.fid_from_features(real, fake), _clean_fid(real, fake), rel_tol=1e-5)
    assert math.isclose(fid_kid.fid_from_features(real, fake, "sqrtm"), _clean_fid(real, fake), rel_tol=1e-12)


def _ill_conditioned() -> tuple[np.ndarray, np.ndarray]:
    """Few large non-negative features, where scipy's sqrtm of S1 S2 has an imaginary diagonal > 1e-3."""
    rng = np.random.default_rng(0)
    return (np.maximum(rng.standard_normal((10, 64)), 0) * 100 for _ in range(2))


def test_sqrtm_imaginary_component_is_a_one_line_error_in_clean_fid_modes_and_the_real_part_in_stargan_v2():
    real, fake = _ill_conditioned()
    with pytest.raises(ValueError, match="Imaginary component"):
        _clean_fid(real, fake)  # clean-fid itself refuses this case
    for mode in ("clean", "legacy_tensorflow", "legacy_pytorch"):
        with pytest.raises(I2IError, match="--fid-sqrt eigh") as info:
            fid_kid.fid_from_features(real, fake, "sqrtm", mode)
        assert "\n" not in str(info.value)
    exact = fid_kid.fid_from_features(real, fake, "eigh")
    assert math.isclose(fid_kid.fid_from_features(real, fake, "sqrtm", "stargan_v2"), exact, rel_tol=1e-6)


def test_unknown_square_root_is_a_config_error():
    with pytest.raises(ConfigError, match="--fid-sqrt"):
        fid_kid.fid_from_features(np.zeros((3, 4)), np.ones((3, 4)), "cholesky")


def test_legacy_tensorflow_takes_a_folder_of_mixed_image_sizes(network_dir, tmp_path, monkeypatch):
    """That mode resizes inside the network: each image's features equal its own forward pass."""
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(network_dir))
    rng = np.random.default_rng(0)
    sizes = [(48, 40), (32, 64), (48, 40), (50, 50), (32, 64)]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    model, _ = fid_kid.inception("legacy_tensorflow")
    feats, bad = fid_kid.folder_features(tmp_path, model, "legacy_tensorflow", batch_size=4)
    assert not bad and feats.shape == (5, 2048)
    for i in range(len(sizes)):
        x = torch.from_numpy(np.asarray(Image.open(tmp_path / f"{i}.png"), dtype=np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            np.testing.assert_allclose(feats[i], model(x).numpy()[0], rtol=1e-5, atol=1e-6)


def test_eval_records_the_square_root_and_warns_about_fewer_images_than_features(network_dir, tmp_path):
    make_images(tmp_path / "real", 6, 1)
    make_images(tmp_path / "fake", 4, 2)
    out = tmp_path / "m.json"
    common = ["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--metrics", "fid",
              "--device", "cpu", "--weights-dir", str(network_dir)]
    result = CliRunner().invoke(app, [*common, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "fewer than the 2048 features" in result.output
    data = json.loads(out.read_text())
    assert data["protocol"]["fid_sqrt"]["method"] == "eigh"
    assert any("6 real and 4 fake images" in w for w in data["protocol"]["warnings"])
    bad = CliRunner().invoke(app, [*common, "--fid-sqrt", "cholesky"])
    assert bad.exit_code == 2 and "--fid-sqrt cholesky: choose eigh or sqrtm" in bad.output

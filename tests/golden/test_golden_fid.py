"""FID and KID equal clean-fid's frechet_distance / kernel_distance and StarGAN v2's metrics/fid.py formula,
recorded from that code (tests/golden/record_fid.py) on well-conditioned, rank-deficient (fewer images than
dimensions) and large-valued feature sets. FID to 1e-6 relative (1e-5 rank-deficient, where scipy's sqrtm of a
singular S1 S2 is itself only that accurate); KID to 1e-6 relative, on the float64 features."""

from __future__ import annotations

import math

import pytest
from golden_fixtures import load_fixture

from i2i_cli.evaluation import fid_kid

FIXTURE = load_fixture("fid")
CASES = ("well_conditioned", "rank_deficient", "ill_conditioned")


def _features(case: str):
    data = FIXTURE[case]
    return data["real"].double().numpy(), data["fake"].double().numpy()


def test_fixture_names_its_source():
    assert "clean-fid" in FIXTURE["official_repo"] and "stargan-v2" in FIXTURE["official_repo"]
    assert "clean-fid==" in FIXTURE["official_commit"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("sqrt", ["eigh", "sqrtm"])
def test_fid_equals_clean_fid_and_stargan_v2(case, sqrt):
    real, fake = _features(case)
    tolerance = 1e-5 if case == "rank_deficient" and sqrt == "eigh" else 1e-6
    if "clean_fid_fid" in FIXTURE[case]:
        ours = fid_kid.fid_from_features(real, fake, sqrt, "clean")
        assert math.isclose(ours, FIXTURE[case]["clean_fid_fid"], rel_tol=tolerance)
    ours = fid_kid.fid_from_features(real, fake, sqrt, "stargan_v2")
    assert math.isclose(ours, FIXTURE[case]["stargan_v2_fid"], rel_tol=tolerance)


@pytest.mark.parametrize("case", CASES)
def test_kid_equals_clean_fid_with_its_global_rng_seeded(case):
    real, fake = _features(case)
    mean, _, _ = fid_kid.kid_from_features(real, fake, FIXTURE["kid_subsets"], seed=FIXTURE["kid_seed"])
    assert math.isclose(mean, FIXTURE[case]["clean_fid_kid"], rel_tol=1e-6)

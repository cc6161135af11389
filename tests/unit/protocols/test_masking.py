"""Masking: exact sums under every dropout pattern, typed aborts, known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import safeflow as sf
from safeflow.crypto.keys import hkdf_sha256
from safeflow.errors import ProtocolError, TooFewSurvivors
from safeflow.protocols import SessionInfo
from safeflow.protocols.masking import pair_mask, self_mask
from tests.conftest import lung, lung_federation, split_by_inst

STAGES = [(0, "advertise"), (0, "share_keys"), (1, "masked_input"), (1, "unmask")]
N_SITES = 5  # threshold 3: up to 2 dropouts


def _expected(names: list[str]) -> pd.DataFrame:
    parts = split_by_inst(lung(), N_SITES)
    rows = pd.concat([parts[int(n[4:])] for n in names])
    return rows.dropna(subset=["wt.loss"])  # the only column read with on_missing="drop"


@pytest.mark.parametrize("stage", STAGES, ids=[s for _, s in STAGES])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_exact_sum_with_k_dropouts_at_each_stage(stage: tuple[int, str], k: int) -> None:
    fed = lung_federation(N_SITES)
    dropped = [f"site{i}" for i in range(k)]
    fed.simulate_faults(dropouts={s: stage for s in dropped})
    rel = sf.describe(fed, ["age", "wt.loss", "sex"], protocol="masking")
    contrib = rel.facts["run"]["contributors"]
    # a site that drops at unmask has already sent its masked input: it is in the sum
    expect_in = ([f"site{i}" for i in range(N_SITES)] if stage[1] == "unmask"
                 else [f"site{i}" for i in range(k, N_SITES)])
    assert contrib == sorted(expect_in)
    ref = _expected(expect_in)
    t = rel.value.set_index(["variable", "level"])
    assert t.loc[("age", ""), "n"] == len(ref)
    assert t.loc[("age", ""), "mean"] == ref["age"].mean()  # integer ages: exact
    np.testing.assert_allclose(t.loc[("wt.loss", ""), "sd"], ref["wt.loss"].std(), rtol=1e-12)
    assert t.loc[("sex", "1"), "count"] == (ref["sex"] == 1).sum()


@pytest.mark.parametrize("stage", STAGES, ids=[s for _, s in STAGES])
def test_below_threshold_aborts_and_releases_nothing(stage: tuple[int, str]) -> None:
    fed = lung_federation(N_SITES)
    fed.simulate_faults(dropouts={f"site{i}": stage for i in range(3)})
    with pytest.raises(TooFewSurvivors, match=r"threshold is 3.*nothing was released"):
        sf.describe(fed, ["age"], protocol="masking")


def test_masked_vectors_hide_the_statistics() -> None:
    """What the aggregator receives at masked_input is not the site's encoded vector."""
    seen: dict[str, bytes] = {}

    def spy(site: str, rnd: int, stage: str, raw: bytes) -> bytes:
        if stage == "masked_input":
            seen[site] = raw
        return raw

    fed = lung_federation(3)
    fed.simulate_faults(tamper=spy)
    sf.describe(fed, ["sex"], protocol="masking")
    plain_fed = lung_federation(3)
    plain_seen: dict[str, bytes] = {}
    plain_fed.simulate_faults(tamper=lambda s, r, st, raw: plain_seen.setdefault(s, raw) or raw)
    sf.describe(plain_fed, ["sex"], protocol="plain")
    from safeflow.envelope import Envelope

    for raw in seen.values():
        masked = Envelope.from_bytes(raw).payload.arrays["vector"]
        # counts are small numbers in the clear; masked words look uniform over 2^64
        assert np.all(masked > np.uint64(2**40))


def test_multi_round_reuses_keys_and_refreshes_masks() -> None:
    info = SessionInfo("s", "r", ("a", "b", "c"), 2)
    shared = bytes(range(32))
    m1 = pair_mask(info, shared, 1, "a", "b", 8)
    m2 = pair_mask(info, shared, 2, "a", "b", 8)
    assert not np.array_equal(m1, m2)
    assert np.array_equal(m1, pair_mask(info, shared, 1, "b", "a", 8))  # symmetric in the pair
    assert not np.array_equal(self_mask(info, shared, 1, "a", 8),
                              self_mask(info, shared, 1, "b", 8))


def test_mask_generator_known_answer() -> None:
    """Recompute the mask construction independently: HKDF-SHA256 then AES-256-CTR."""
    from Crypto.Cipher import AES

    info = SessionInfo("study", "run", ("a", "b"), 2)
    shared = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    ctx = b"safeflow-masking-v1|study|run|pair|1|a|b"
    key = hkdf_sha256(shared, salt=b"safeflow/v1", info=ctx, length=32)
    ks = AES.new(key, AES.MODE_ECB).encrypt(b"".join(
        i.to_bytes(16, "big") for i in range(4)))
    want = np.frombuffer(ks, dtype="<u8")
    got = pair_mask(info, shared, 1, "a", "b", 8)
    assert got.tolist() == want.tolist()


def test_inconsistent_unmask_request_is_refused() -> None:
    """A site never reveals both seeds of one site, nor anything below the threshold."""
    from safeflow.envelope import Payload
    from safeflow.protocols.masking import MaskingSite

    site = MaskingSite("a", SessionInfo("s", "r", ("a", "b", "c"), 2))
    site._round, site._b_shares = 1, {"a": b"", "b": b"", "c": b""}
    with pytest.raises(ProtocolError, match="both a survivor and dropped"):
        site._unmask(1, Payload("none", meta={"survivors": ["a", "b"], "dropped": ["b"]}))
    with pytest.raises(ProtocolError, match="at least t survivors"):
        site._unmask(1, Payload("none", meta={"survivors": ["a"], "dropped": ["b", "c"]}))


@pytest.mark.parametrize("n_sites", [2, 3, 4])
def test_all_sites_all_protocols_agree(n_sites: int) -> None:
    fed = lung_federation(n_sites)
    outs = [sf.describe(fed, ["age", "wt.loss", "ph.ecog"], protocol=p).value
            for p in ("plain", "masking")]
    for a, b in itertools.pairwise(outs):
        pd.testing.assert_frame_equal(a, b, check_exact=True)

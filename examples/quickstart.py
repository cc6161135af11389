"""Quickstart: a two-site CN/NL Table 1 on the real NCCTG lung data, under secure sums.

The 18 institutions of the NCCTG lung cancer study are split between a Beijing hospital
(CN) and Amsterdam UMC (NL), treated as health data. Neither site's rows leave it: each
computes its local sums, masks them (pairwise masks agreed with X25519, AES-CTR keystreams,
Shamir-shared seeds), and only the masked vectors cross the border. Customs checks the
result against the CN and EU/NL packs and the ACRO disclosure-control profile (small cells
are suppressed), signs a certificate that both hospitals co-sign, and the certified table
is exported and verified offline. The same Table 1 is then computed under homomorphic
encryption (TenSEAL BFV) and checked to be bit-identical.

Run with ``make demo`` (or ``python examples/quickstart.py`` in the project's venv).
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import pandas as pd

import safeflow as sf
from safeflow.policy.export import verify_export

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out" / "quickstart"

SCHEMA = sf.Schema([
    sf.Column("inst", role="group", kind="categorical", categories=tuple(range(1, 34)),
              on_missing="drop"),
    sf.Column("time", role="time", bounds=(0, 1100), resolution=1.0),
    sf.Column("status", role="event", kind="binary", categories=(0, 1)),
    sf.Column("age", bounds=(18, 100)),
    sf.Column("sex", kind="categorical", categories=(1, 2)),
    sf.Column("ph.ecog", kind="categorical", categories=(0, 1, 2, 3), on_missing="drop"),
    sf.Column("wt.loss", bounds=(-30, 70), on_missing="drop"),
])


def main() -> int:
    """Run the quickstart; return a process exit code."""
    lung = pd.read_csv(HERE / "data" / "ncctg_lung.csv")[list(SCHEMA.names)]
    beijing = lung[lung["inst"].fillna(0) % 2 == 1]    # odd institution codes
    amsterdam = lung[lung["inst"].fillna(0) % 2 == 0]  # even codes (and the unknown one)
    fed = sf.Federation.local(
        [sf.Site("beijing", beijing, jurisdiction="CN", schema=SCHEMA),
         sf.Site("amsterdam", amsterdam, jurisdiction="NL", schema=SCHEMA)],
        destination="NL", purpose="scientific-research", study="ncctg-quickstart",
    )
    print(fed)
    columns = ["age", "wt.loss", "time", "ph.ecog", "status"]
    t1 = sf.describe(fed, columns, by="sex", protocol="masking")
    print(f"\n{t1!r}\n")
    print(t1.value.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1_he = sf.describe(fed, columns, by="sex", protocol="he")
    same = t1.value.equals(t1_he.value)
    print(f"\nHE (BFV) Table 1 bit-identical to the masked one: {same}")
    print(f"bytes crossing borders: masking {t1.bytes_cross_border:,}, "
          f"HE {t1_he.bytes_cross_border:,}")
    target = OUT / "table1"
    if target.exists():
        shutil.rmtree(target)
    exported = t1.export(target)
    report = verify_export(exported, trusted=fed.customs.trusted_keys())
    print(f"\ncertified Table 1 exported to {exported}")
    print(f"decision {t1.decision.outcome.value} by {', '.join(t1.decision.rules)}; "
          f"signed by {', '.join(sorted(t1.certificate.signers))}")
    print(f"verified offline: {report}")
    print(f"check it yourself: safeflow verify {exported}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

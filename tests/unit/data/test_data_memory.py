"""Streaming keeps memory bounded: a 2-million-row Parquet file is summed in small batches.

Peak RSS is measured in a fresh subprocess (``resource.getrusage().ru_maxrss``) so the
test process's own allocations do not blur it. A control run that reads the whole file
shows that the measurement does see a materialised source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import safeflow

N_ROWS = 2_000_000
ROW_GROUP = 100_000
N_COLUMNS = 12  # the file is ~190 MB uncompressed; streamed, only the asked columns are read
LIMIT_MB = 150

_PROBE = """
import json, resource, sys, time
import numpy as np
import pyarrow.parquet as pq
from safeflow.data import SQL, Column, Schema, SiteData

path, mode = sys.argv[1], sys.argv[2]
kb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
names = [f.name for f in pq.read_schema(path)]
schema = Schema([Column(n, bounds=(0, 1)) for n in names])
columns = names if mode == "parquet-all-columns" else ["x"]
if mode.startswith("parquet"):
    sd = SiteData(path, schema)
elif mode == "sql":
    sd = SiteData(SQL(f"SELECT * FROM read_parquet('{path}')"), schema)
before = kb()
if mode == "control":
    total = float(pq.read_table(path).column("x").to_numpy().sum())
else:
    total = 0.0
    for batch in sd.batches(columns, batch_size=65_536):
        total += float(batch["x"].sum())
        time.sleep(0.004)  # an analysis is slower than the reader: no read-ahead may pile up
print(json.dumps({"growth_mb": (kb() - before) / 1024, "total": total}))
"""


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    path = tmp_path_factory.mktemp("big") / "big.parquet"
    rng = np.random.default_rng(2024)
    names = ["x"] + [f"c{i}" for i in range(1, N_COLUMNS)]
    schema = pa.schema([(n, pa.float64()) for n in names])
    total = 0.0
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(N_ROWS // ROW_GROUP):
            cols = [rng.random(ROW_GROUP) for _ in names]
            total += float(cols[0].sum())
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
    assert pq.ParquetFile(path).metadata.num_row_groups == N_ROWS // ROW_GROUP
    return path, total


def probe(path: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(safeflow.__file__).parents[1])},
    )
    return json.loads(out.stdout)


# "parquet-all-columns" reads every column (~160 MB in all): it catches readers that run
# ahead of the consumer (pyarrow's pre_buffer does, and held ~250 MB here).
@pytest.mark.parametrize("mode", ["parquet", "parquet-all-columns", "sql"])
def test_streaming_a_large_parquet_file_uses_bounded_memory(
    big_parquet: tuple[Path, float], mode: str
) -> None:
    path, total = big_parquet
    result = probe(path, mode)
    assert result["total"] == pytest.approx(total, rel=1e-12)
    assert result["growth_mb"] < LIMIT_MB, result


def test_the_measurement_detects_a_materialised_source(big_parquet: tuple[Path, float]) -> None:
    path, total = big_parquet
    result = probe(path, "control")
    assert result["total"] == pytest.approx(total, rel=1e-12)
    assert result["growth_mb"] > LIMIT_MB, result

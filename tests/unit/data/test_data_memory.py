"""Streaming keeps memory bounded: a 2-million-row Parquet file is summed in small batches.

Peak RSS is measured outside the test process, so its own allocations do not blur it: one
subprocess imports safeflow once, then forks a fresh child per reading mode, and each
child reports how far its peak RSS (``ru_maxrss``) grew while reading. A control child
that reads the whole file shows that the measurement does see a materialised source.
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
N_COLUMNS = 12  # ~190 MB of float64 in all; streamed, only the asked columns are read
LIMIT_MB = 150
# "parquet-all-columns" reads every column: it catches readers that run ahead of a slow
# consumer (pyarrow's pre_buffer does, and held ~235 MB here).
MODES = ("parquet", "parquet-all-columns", "sql", "control")

_PROBE = """
import json, os, resource, sys, time, types
import pyarrow.parquet as pq

# Load safeflow.data without safeflow/__init__.py (the analyses take seconds to import).
package = types.ModuleType("safeflow")
package.__path__ = [sys.argv[1]]
sys.modules["safeflow"] = package
from safeflow.data import SQL, Column, Schema, SiteData

def measure(path, mode):
    kb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    names = [f.name for f in pq.read_schema(path)]
    schema = Schema([Column(n, bounds=(0, 1)) for n in names])
    columns = names if mode == "parquet-all-columns" else ["x"]
    sd = SiteData(SQL(f"SELECT * FROM read_parquet('{path}')") if mode == "sql" else path, schema)
    before = kb()
    total = 0.0
    if mode == "control":
        total = float(pq.read_table(path).column("x").to_numpy().sum())
    else:
        for batch in sd.batches(columns, batch_size=65_536):
            total += float(batch["x"].sum())
            time.sleep(0.004)  # an analysis is slower than the reader: read-ahead must not pile up
    return {"growth_mb": (kb() - before) / 1024, "total": total}

path = sys.argv[2]
results = {}
for mode in sys.argv[3:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh address space that has only imported
        os.close(r)
        os.write(w, json.dumps(measure(path, mode)).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        results[mode] = json.loads(f.read())
    os.waitpid(pid, 0)
print(json.dumps(results))
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


@pytest.fixture(scope="module")
def measured(big_parquet: tuple[Path, float]) -> dict[str, dict[str, float]]:
    path, _ = big_parquet
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(Path(safeflow.__file__).parent), str(path), *MODES],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("mode", ["parquet", "parquet-all-columns", "sql"])
def test_streaming_a_large_parquet_file_uses_bounded_memory(
    measured: dict[str, dict[str, float]], big_parquet: tuple[Path, float], mode: str
) -> None:
    result = measured[mode]
    assert result["total"] == pytest.approx(big_parquet[1], rel=1e-12)
    assert result["growth_mb"] < LIMIT_MB, result


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_the_measurement_detects_a_materialised_source(
    measured: dict[str, dict[str, float]], big_parquet: tuple[Path, float]
) -> None:
    result = measured["control"]
    assert result["total"] == pytest.approx(big_parquet[1], rel=1e-12)
    assert result["growth_mb"] > LIMIT_MB, result

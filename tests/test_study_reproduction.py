"""The kernel rows of the paper's Figure 3, reproduced at 10 trials.

``ntkeq run --preset paper-as-published --models kernels --trials 10``, run
through the library: every kernel's mean RMSE must lie within 3 combined
standard errors, sqrt(se_ours^2 + se_published^2), of the published value
(SE with ddof 0, as the paper computes it).
"""

import math
from pathlib import Path

import pytest

from ntkeq.study.config import apply_overrides, load_preset
from ntkeq.study.report import PUBLISHED_FIGURE3, report_table
from ntkeq.study.runner import run_study

#: Figure 3 of the seed paper for the nine kernel rows: (mean RMSE, SE), 50 trials.
FIGURE3 = {m: v for m, v in PUBLISHED_FIGURE3.items() if not m.startswith("NN")}


@pytest.mark.slow
def test_as_published_kernel_rows_match_figure3(tmp_path: Path) -> None:
    config = apply_overrides(
        load_preset("paper-as-published"), models="kernels", trials=10
    )
    results = run_study(config, tmp_path)
    rows = {r["model"]: r for r in report_table(results)}
    assert set(rows) == set(FIGURE3)
    for model, (mean_pub, se_pub) in FIGURE3.items():
        row = rows[model]
        assert row["trials"] == 10
        combined = math.hypot(row["se"], se_pub)
        assert abs(row["mean_rmse"] - mean_pub) <= 3 * combined, (model, row)

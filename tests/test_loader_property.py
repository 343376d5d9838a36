"""Property: whatever CSV text it is given, the loader either loads it or raises the project's own error."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab2_lightning.data.table import read_table
from lab2_lightning.utils.errors import LabError

cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "Iris-setosa", "x", '"1,2"', "1e400", "0x10", "1_0"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6),
)
# Rows separated by commas, semicolons or tabs, each of which the loader takes.
rows = st.sampled_from([",", ";", "\t"]).flatmap(
    lambda separator: st.lists(st.lists(cells, min_size=1, max_size=5).map(separator.join), max_size=6)
)
csv_text = st.one_of(rows.map("\n".join), st.text(max_size=80), st.binary(max_size=80))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=csv_text, label_column=st.sampled_from(["auto", None, -1, 0, 7]))
def test_loader_loads_or_raises_lab_error(text: str | bytes, label_column: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            table = read_table(path, label_column)
        except LabError as err:
            assert "\n" not in str(err)
            return
        assert table.features.ndim == 2 and table.features.shape[0] >= 1
        assert np.isfinite(table.features).all()
        assert table.labels is None or len(table.labels) == len(table.features)

"""The differential property test (tests/property/test_engine_differential.py) on a smaller sample on Spark:
random rules over records on window edges, with missing and null fields, IPv6, IPv4-mapped and malformed
addresses, letter case and Unicode, decided alike by the Python evaluator and Spark (whose regex conditions
Python applies after Spark's exact ones), the records read by DuckDB and handed to Spark as `run` does; and the
periodic case of tests/integration/test_engine_parity_periodic.py (segments summed per step)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.evaluate.sql.engine import evaluate_rule
from auditor.run.spark import SparkTables
from tests.integration.test_engine_parity_periodic import (
    assert_steps_alike,
    bound_records,
    periodic_rule,
    python_steps,
)
from tests.property.test_engine_differential import (
    CONDITIONS,
    assert_alike,
    expectations_st,
    loaded,
    python_outcome,
    records_st,
)
from tests.spark import MASTER

pytestmark = pytest.mark.spark


@settings(max_examples=4, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(records=records_st, conditions=st.lists(st.sampled_from(CONDITIONS), max_size=3),
       expectations=expectations_st, group_by=st.sampled_from([(), ("user_email",), ("ip_address",)]))
def test_python_and_spark_decide_alike(spark, records, conditions, expectations, group_by):
    compiled, expected = python_outcome(records, conditions, expectations, group_by)
    assert_alike(_on_spark(compiled, records), expected)


def test_a_multi_day_window_on_spark_decides_every_step_as_python(spark, tmp_path):
    """tests/integration/test_engine_parity_periodic.py on Spark: segments summed per step alike."""
    compiled = periodic_rule(tmp_path)
    records = bound_records()
    assert_steps_alike(_on_spark(compiled, records), python_steps(compiled, records))


def _on_spark(compiled, records):
    """The rule's outcome on Spark over the records (loaded by DuckDB, handed to Spark as Parquet)."""
    with tempfile.TemporaryDirectory() as tmp:
        con = loaded(records, tmp)
        tables = SparkTables(MASTER, small=True)
        try:
            tables.mirror(con, "access_requests", Path(tmp))
            got, _ = evaluate_rule(compiled, tables.dialect, tables.execute)
        finally:
            tables.close()
            con.close()
    return got

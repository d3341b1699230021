"""Run summaries maintained on ingest: a retried batch must leave them exactly as they were."""

import numpy as np
import pytest

from hub.tracking.ingest import Batch, merge_summary, summarize

pytestmark = pytest.mark.unit


def _batch(steps, values, key="loss"):
    n = len(steps)
    return Batch(
        [key],
        np.zeros(n, dtype=np.uint32),
        np.asarray(steps, dtype=np.int64),
        np.full(n, 1.7e9),
        np.asarray(values, dtype=np.float64),
    )


def test_a_retried_batch_leaves_the_summary_unchanged():
    first = merge_summary({}, summarize(_batch([0, 1, 2], [3.0, 1.0, 2.0])))
    again = merge_summary(first, summarize(_batch([0, 1, 2], [3.0, 1.0, 2.0])))
    assert again == first
    assert first["loss"] == {
        "last": 2.0,
        "last_step": 2,
        "min": 1.0,
        "min_step": 1,
        "max": 3.0,
        "max_step": 0,
    }


def test_a_double_counted_count_from_older_summaries_is_dropped():
    old = {
        "loss": {
            "last": 2.0,
            "last_step": 2,
            "min": 1.0,
            "min_step": 1,
            "max": 3.0,
            "max_step": 0,
            "count": 6,
        }
    }
    merged = merge_summary(old, summarize(_batch([3], [0.5])))
    assert (
        "count" not in merged["loss"]
        and merged["loss"]["last"] == 0.5
        and merged["loss"]["min"] == 0.5
    )

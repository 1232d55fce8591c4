"""pipeline.parallel: independent tasks in threads, results in task order, errors surface,
the worker cap comes from VASOFLOW_THREADS, and the BLAS limit is applied and restored."""

from __future__ import annotations

import threading
import time

import pytest
from threadpoolctl import threadpool_info

from pipeline import parallel
from pipeline.errors import ConfigError


def test_results_come_back_in_task_order_and_run_side_by_side():
    seen = set()

    def task(i):
        def run():
            seen.add(threading.current_thread().name)
            time.sleep(0.05 * (3 - i))  # later tasks finish first
            return i
        return run

    assert parallel.run_in_threads([task(i) for i in range(3)], workers=2) == [0, 1, 2]
    assert len(seen) == 2


def test_a_task_error_is_raised():
    def bad():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        parallel.run_in_threads([lambda: 1, bad], workers=2)


def test_worker_count_follows_vasoflow_threads(monkeypatch):
    monkeypatch.setenv("VASOFLOW_THREADS", "1")
    assert parallel.worker_count() == 1
    monkeypatch.setenv("VASOFLOW_THREADS", "two")
    with pytest.raises(ConfigError, match="VASOFLOW_THREADS"):
        parallel.worker_count()


def test_one_blas_thread_inside_the_block_only():
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl controls)

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with parallel.one_blas_thread():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before

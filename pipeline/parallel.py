"""How the model steps use the machine's cores (issue 16 item 6).

The model fits are many independent numpy/scipy computations on modest matrices (tens of
columns). Two ways to use two cores: BLAS threads inside each matrix product (OpenBLAS's
default, one thread per core) or independent fits side by side. Measured on the 2-core machine
(benchmarks/bench_steps.py; the block cross-product of pipeline.models.logit, 400k x 17): when
the other core was busy, two BLAS threads took 4.5x the wall time and 8x the CPU of one, because
OpenBLAS threads spin waiting for each other. So the model steps run with one BLAS thread
(``one_blas_thread``, threadpoolctl) and fit independent models in a thread pool
(``run_in_threads``): numpy releases the GIL inside its kernels, so two fits really run at once.

``VASOFLOW_THREADS`` (the DuckDB thread cap, pipeline.duckdb_settings) also caps these workers.
Results never depend on the number of workers: each task is a pure function of its inputs and
the results are returned in task order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from threadpoolctl import threadpool_limits

from pipeline.duckdb_settings import thread_cap

T = TypeVar("T")


def worker_count() -> int:
    """``VASOFLOW_THREADS`` when set, else the number of cores."""
    return thread_cap() or max(1, os.cpu_count() or 1)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, numpy/scipy's BLAS uses one thread (restored afterwards)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_in_threads(tasks: Sequence[Callable[[], T]], workers: int | None = None) -> list[T]:
    """Run the zero-argument ``tasks`` on up to ``workers`` threads; results in task order.
    The first exception raised by a task is raised here (after the others finish)."""
    workers = min(worker_count() if workers is None else workers, len(tasks))
    if workers <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vasoflow-fit") as pool:
        futures = [pool.submit(task) for task in tasks]
        return [f.result() for f in futures]

"""Benchmark: every relation of sql/build_order.toml on local Spark vs DuckDB, side by side.

    .venv/bin/python benchmarks/bench_spark.py --stays 80 [--variants default,test,interpreted]

Generates N synthetic stays, ingests them, builds every relation on DuckDB, then, for each Spark
settings variant in its own process (a JVM option needs a new JVM), times the session start and
the 33-odd relations (transpiled, each materialised with a local checkpoint) and checks every
relation equals DuckDB's. Variants:

* default: pipeline.spark.start_spark as `vasoflow run --engine spark` uses it;
* test: + no whole-stage code generation, one shuffle partition (tests/test_sql_spark.py);
* interpreted: test + expressions interpreted (no code generation at all) and the JIT's client
  compiler only (-XX:TieredStopAtLevel=1): less compiling for a short-lived run on tiny data.

Prints seconds per variant and the ratio to DuckDB. Needs the 'spark' extra and Java 17+.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIANTS = {
    "default": {},
    "test": {"spark.sql.codegen.wholeStage": "false", "spark.sql.shuffle.partitions": "1"},
    "interpreted": {
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.shuffle.partitions": "1",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    },
}


def prepare(workdir: Path, stays: int) -> tuple[Path, float]:
    import duckdb

    from pipeline.concepts import load_concepts, register_concept_tables
    from pipeline.config import load_study_config
    from pipeline.ingest import ingest
    from pipeline.spark import export_sources
    from pipeline.sqlbuild import build_relations
    from pipeline.synth import generate

    config = load_study_config()
    generate(workdir / "source", n_stays=stays, seed=17)
    db = workdir / "vasoflow.duckdb"
    ingest(workdir / "source", db, config)
    con = duckdb.connect(str(db))
    register_concept_tables(con, load_concepts(), config)
    t0 = time.perf_counter()
    build_relations(con)
    seconds = time.perf_counter() - t0
    export_sources(con, workdir / "parquet")
    con.close()
    return db, seconds


def run_variant(workdir: Path, variant: str) -> dict:
    """In this process: start Spark with the variant's settings, build and compare everything."""
    import duckdb

    from pipeline.spark import compare_frames, run_relations_on_spark, spark_frame, start_spark
    from pipeline.sqlbuild import build_order

    t0 = time.perf_counter()
    spark = start_spark("vasoflow-bench", conf=VARIANTS[variant])
    started = time.perf_counter() - t0
    relations = build_order()
    sources = {p.stem: p for p in sorted((workdir / "parquet").glob("*.parquet"))}
    t1 = time.perf_counter()
    run_relations_on_spark(spark, sources, relations)
    built = time.perf_counter() - t1
    con = duckdb.connect(str(workdir / "vasoflow.duckdb"), read_only=True)
    problems = []
    for rel in relations:
        problems += compare_frames(con.execute(f'select * from "{rel.name}"').pl(),
                                   spark_frame(spark, rel.name), rel.name)
    spark.stop()
    return {"variant": variant, "session_s": started, "relations_s": built,
            "n_relations": len(relations), "identical": not problems, "problems": problems[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=80)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--workdir")
    parser.add_argument("--_variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._variant:
        print(json.dumps(run_variant(Path(args.workdir), args._variant)))
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vasoflow-bench-spark-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _, duck_s = prepare(workdir, args.stays)
    print(f"{args.stays} synthetic stays; DuckDB: every relation in {duck_s:.2f} s")
    for variant in args.variants.split(","):
        out = subprocess.run([sys.executable, __file__, "--workdir", str(workdir), "--_variant", variant],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"spark {variant:<12} session {r['session_s']:6.1f} s  {r['n_relations']} relations "
              f"{r['relations_s']:6.1f} s  ({r['relations_s'] / duck_s:5.0f} x DuckDB)  "
              f"identical to DuckDB: {r['identical']} {'; '.join(r['problems'])}")


if __name__ == "__main__":
    main()

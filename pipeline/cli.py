"""The ``vasoflow`` command line. Each sub-command calls one pipeline function.

Errors the user can act on (``VasoflowError``) print as one line on stderr with exit code 2;
no traceback. Set ``VASOFLOW_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.errors import VasoflowError


def _cmd_synth(args: argparse.Namespace) -> int:
    from pipeline.synth import generate

    result = generate(Path(args.out), n_stays=args.stays, seed=args.seed)
    print(result.describe())
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pipeline.config import load_study_config
    from pipeline.ingest import ingest

    result = ingest(Path(args.source), Path(args.db), load_study_config(args.config))
    print(result.describe())
    return 0


def _cmd_cohort(args: argparse.Namespace) -> int:
    from pipeline.cohort import build_cohort
    from pipeline.config import load_study_config

    result = build_cohort(Path(args.db), Path(args.out), load_study_config(args.config))
    print(result.describe())
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from pipeline.config import load_study_config
    from pipeline.models import analyze

    result = analyze(Path(args.cohort), Path(args.out), load_study_config(args.config))
    print(result.describe())
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from pipeline.audit import run_audit
    from pipeline.config import load_study_config

    result = run_audit(Path(args.db), Path(args.out), load_study_config(args.config))
    print(result.describe())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.config import load_study_config
    from pipeline.report import build_report

    result = build_report(Path(args.out), load_study_config(args.config))
    print(result.describe())
    return 0


def _quiet_prefect_env() -> None:
    """Nothing may reach for the internet: Prefect's telemetry and server analytics off. A
    temporary local server (no server configured) may start slowly on a busy machine."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _cmd_run(args: argparse.Namespace) -> int:
    source = Path(args.source) if args.source else None
    config = Path(args.config) if args.config else None
    if args.no_prefect:
        from pipeline.config import load_study_config
        from pipeline.run import run_all

        result = run_all(source=source, out_root=Path(args.out), config=load_study_config(config))
    else:
        _quiet_prefect_env()
        from flows import study_flow

        result = study_flow(out=Path(args.out), source=source, config=config)
    print(result.describe())
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    _quiet_prefect_env()
    from flows.serve import serve

    serve(out=Path(args.out), source=Path(args.source) if args.source else None,
          config=Path(args.config) if args.config else None, timezone=args.timezone)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vasoflow",
        description="Vasopressin timing in septic shock: ingest, validate, cohort, models, audit, report.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic MIMIC-IV-layout dataset with ground truth")
    p.add_argument("--out", required=True, help="output folder (gets hosp/, icu/ and ground truth)")
    p.add_argument("--stays", type=int, default=2000, help="number of ICU stays (default 2000)")
    p.add_argument("--seed", type=int, default=20080228, help="random seed (default 20080228)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ingest", help="load and validate MIMIC-IV-layout files into DuckDB")
    p.add_argument("--source", required=True, help="folder with hosp/ and icu/")
    p.add_argument("--db", required=True, help="DuckDB file to build (replaced atomically)")
    p.add_argument("--config", help="study config TOML (defaults: the shipped study.toml)")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("cohort", help="build cohort.parquet and attrition.parquet from an ingested DB")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config")
    p.set_defaults(func=_cmd_cohort)

    p = sub.add_parser("analyze", help="survival and RRT models from cohort.parquet -> results.json")
    p.add_argument("--cohort", required=True, help="cohort.parquet (ne_timeline.parquet beside it)")
    p.add_argument("--out", required=True)
    p.add_argument("--config")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("audit", help="QI audit of vasopressor practice (after cohort) -> audit.parquet")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("report", help="the self-contained HTML report from an output folder")
    p.add_argument("--out", required=True, help="folder with the outputs of cohort, analyze and audit")
    p.add_argument("--config")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("run", help="the main job: every step from raw files to outputs (Prefect study flow)")
    p.add_argument("--source", help="folder with hosp/ and icu/ (default: embedded synthetic data)")
    p.add_argument("--out", required=True,
                   help="output root: each run in OUT/runs/<run>/, OUT/latest points at the last good one")
    p.add_argument("--config")
    p.add_argument("--no-prefect", action="store_true",
                   help="the same steps without the Prefect engine (no server, no UI records)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("serve", help="schedule the study (weekly) and audit (monthly) flows on a Prefect server")
    p.add_argument("--out", required=True, help="output root of the scheduled runs")
    p.add_argument("--source", help="folder with hosp/ and icu/ (default: embedded synthetic data)")
    p.add_argument("--config")
    p.add_argument("--timezone", default="UTC", help="IANA time zone of the schedules (default UTC)")
    p.set_defaults(func=_cmd_serve)
    return parser


def _setup_logging() -> None:
    """Warnings (e.g. a missing optional table) go to stderr as one line each."""
    logger = logging.getLogger("vasoflow")
    if not any(getattr(h, "_vasoflow", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("vasoflow: %(levelname)s: %(message)s"))
        handler._vasoflow = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging()
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except VasoflowError as exc:
        if os.environ.get("VASOFLOW_DEBUG"):
            raise
        print(f"vasoflow: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # memory or disk ran out: one line saying which, not a traceback
        from pipeline.errors import resource_exhausted

        error = resource_exhausted(exc, f"running 'vasoflow {args.command}'")
        if error is None or os.environ.get("VASOFLOW_DEBUG"):
            raise
        print(f"vasoflow: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vasoflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

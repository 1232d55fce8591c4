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

log = logging.getLogger("vasoflow")


def _cmd_synth(args: argparse.Namespace) -> int:
    from pipeline.synth import generate

    if args.format == "eicu":  # the same world, written as eICU-CRD tables (pipeline/synth/eicu.py)
        import tempfile

        from pipeline.config import load_study_config
        from pipeline.synth.eicu import write_eicu

        with tempfile.TemporaryDirectory(prefix="vasoflow-synth-") as tmp:
            generate(Path(tmp) / "mimic", n_stays=args.stays, seed=args.seed)
            truth = write_eicu(Path(tmp) / "mimic", Path(args.out), args.sites, args.seed, load_study_config(None))
        print(f"synth: {truth['n_stays']} unit stays at {args.sites} hospitals in the eICU-CRD layout -> {args.out} "
              f"(eicu_truth.json, ground_truth.parquet)")
        return 0
    result = generate(Path(args.out), n_stays=args.stays, seed=args.seed)
    print(result.describe())
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pipeline.config import load_study_config
    from pipeline.ingest import ingest

    _set_source_format(args)
    result = ingest(Path(args.source), Path(args.db), load_study_config(args.config))
    print(result.describe())
    return 0


def _set_source_format(args: argparse.Namespace) -> None:
    """--source-format forces the layout for this process (pipeline.sources reads it)."""
    if getattr(args, "source_format", None):
        from pipeline.sources import FORMAT_ENV

        os.environ[FORMAT_ENV] = args.source_format


def _cmd_pool(args: argparse.Namespace) -> int:
    from pipeline.config import load_study_config
    from pipeline.sites import pool_site_files

    result = pool_site_files([Path(f) for f in args.files], load_study_config(args.config))
    if args.out:
        import json

        from pipeline.atomic import write_text_atomic

        write_text_atomic(Path(args.out), json.dumps(result.payload, indent=2, sort_keys=True))
    print(result.describe())
    return 0


def _write_by_site(run_dir: Path, config) -> None:
    """--by-site: aggregate-only results per site from a finished run's folder."""
    from pipeline.sites import write_site_files

    paths, pooled = write_site_files(run_dir / "vasoflow.duckdb", run_dir / "cohort.parquet",
                                     run_dir / "sites", config)
    print(f"by site: {len(paths)} site files (aggregates only, counts < "
          f"{config.get('report.min_cell_count')} suppressed) -> {run_dir / 'sites'}")
    print(pooled.describe())


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


def _cmd_tte(args: argparse.Namespace) -> int:
    from pipeline.config import load_study_config
    from pipeline.tte import TTE_FILE, merge_into_results, run_tte
    from pipeline.tte.results import describe

    out = Path(args.out)
    section = run_tte(Path(args.cohort), out, load_study_config(args.config), n_bootstrap=args.bootstrap)
    print(describe(section))
    print(f"tte section -> {out / TTE_FILE}")
    if args.results:
        path = merge_into_results(Path(args.results), section, out / "results.json")
        print(f"results.json with the tte key -> {path}")
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


def _prefect_env(console_level: str | None = None) -> None:
    """Environment for Prefect, set before it is imported (it reads its settings then) and only
    for this process: nothing is written to a Prefect profile. Telemetry and server analytics
    off (nothing may reach for the internet); optionally Prefect's console output cut to
    ``console_level`` (its per-run INFO lines would drown the progress lines; they still reach
    the server). The pipeline's own log lines reach the run's Prefect logs through the handler
    flows/study.py attaches."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if console_level:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", console_level)


def _configured_prefect_api() -> tuple[str | None, str]:
    """The Prefect API URL this process would use (env var, ``.env``/``prefect.toml`` or the
    active profile) and where it came from, read through Prefect's own settings."""
    from prefect.context import get_settings_context

    ctx = get_settings_context()
    url = ctx.settings.api.url
    if os.environ.get("PREFECT_API_URL"):
        origin = "the environment"
    elif any(getattr(k, "name", str(k)) == "PREFECT_API_URL" for k in ctx.profile.settings):
        origin = f"Prefect profile '{ctx.profile.name}'"
    else:
        origin = "a Prefect settings file here (.env, prefect.toml or pyproject.toml)"
    return (str(url) if url else None), origin


def _check_prefect_server(url: str, origin: str, for_run: bool = True) -> None:
    """One line with the fix when the configured server does not answer (instead of Prefect's
    retries and a long traceback)."""
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/health", timeout=5.0)
    except httpx.HTTPError as exc:
        if origin == "the environment":
            unset = "unset PREFECT_API_URL"
        elif origin.startswith("Prefect profile"):
            unset = "`prefect config unset PREFECT_API_URL` (or switch profile)"
        else:
            unset = "remove PREFECT_API_URL from that file"
        fix = f", or run without it: {unset}, or `vasoflow run --no-prefect`" if for_run else f", or point elsewhere ({unset})"
        raise VasoflowError(
            f"Prefect server {url} (PREFECT_API_URL, from {origin}) is not reachable "
            f"({type(exc).__name__}); start it (`prefect server start`){fix}"
        ) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.run import preflight

    _set_source_format(args)
    source = Path(args.source) if args.source else None
    config_path = Path(args.config) if args.config else None
    # Bad input fails here, in about a second, whatever the mode (no engine started yet).
    config = preflight(source, config_path)
    from pipeline.run import check_engine

    check_engine(args.engine)  # a missing Java or pyspark stops here, before any step
    use_prefect = args.prefect
    if use_prefect is None:  # default: the Prefect flow only when a Prefect server is configured
        if os.environ.get("PREFECT_API_URL") or _prefect_may_be_configured():
            _prefect_env(console_level="CRITICAL")
            use_prefect = _configured_prefect_api()[0] is not None
        else:
            use_prefect = False
    if not use_prefect:
        from pipeline.run import run_all

        log.info("running in-process (%s; see docs/scheduling.md)",
                 "--no-prefect" if args.prefect is False else "no Prefect server configured")
        result = run_all(source=source, out_root=Path(args.out), config=config, engine=args.engine)
    else:
        _prefect_env(console_level="CRITICAL")
        url, origin = _configured_prefect_api()
        if url:
            _check_prefect_server(url, origin)
            log.info("running the Prefect flow on %s", url)
        else:
            log.info("running the Prefect flow on a temporary local Prefect server (takes 15-60 s to start)")
        from flows import study_flow

        result = study_flow(out=Path(args.out), source=source, config=config_path, engine=args.engine)
    print(result.describe())
    if args.by_site:
        _write_by_site(Path(result.run_dir), config)
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from pipeline.sqldialect import write_dialect

    written = write_dialect(args.dialect, Path(args.out))
    print(f"sql: {len(written) - 1} relations as {args.dialect} SQL -> {Path(args.out)} "
          f"(build order in {written[-1].name})")
    return 0


def _prefect_may_be_configured() -> bool:
    """Cheap test (no Prefect import, which costs ~2 s) for a Prefect setting that could name
    an API URL: a selected profile, a profiles or ``.env`` file that mentions PREFECT_API_URL,
    or a Prefect settings file in the working folder. False means surely none."""
    if os.environ.get("PREFECT_PROFILE") or Path("prefect.toml").exists():
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    for path, marker in ((Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml"), "PREFECT_API_URL"),
                         (Path(".env"), "PREFECT_API_URL"), (Path("pyproject.toml"), "[tool.prefect")):
        try:
            if marker in path.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def _cmd_serve(args: argparse.Namespace) -> int:
    from pipeline.run import preflight

    source = Path(args.source) if args.source else None
    config_path = Path(args.config) if args.config else None
    preflight(source, config_path)
    _prefect_env()
    url, origin = _configured_prefect_api()
    if not url:
        raise VasoflowError("vasoflow serve needs a Prefect server: start one (`prefect server start`) and "
                            "set PREFECT_API_URL=http://127.0.0.1:4200/api for this shell (docs/scheduling.md)")
    _check_prefect_server(url, origin, for_run=False)
    from flows.serve import serve

    serve(out=Path(args.out), source=source, config=config_path, timezone=args.timezone)
    return 0


def _cmd_alert(args: argparse.Namespace) -> int:
    _prefect_env()
    url, origin = _configured_prefect_api()
    if not url:
        raise VasoflowError("vasoflow alert needs a Prefect server: set PREFECT_API_URL (docs/scheduling.md)")
    _check_prefect_server(url, origin, for_run=False)
    from flows.alerts import ensure_failure_alert

    automation = ensure_failure_alert(args.block)
    print(f"automation '{automation.name}' on {url}: a failed or crashed vasoflow run sends a notification "
          f"through block '{args.block}'")
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
    p.add_argument("--format", choices=("mimic", "eicu"), default="mimic",
                   help="mimic (default) or eicu: the same synthetic world as eICU-CRD tables")
    p.add_argument("--sites", type=int, default=8, help="eicu only: number of hospitals (default 8)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ingest", help="load and validate MIMIC-IV-layout files into DuckDB")
    p.add_argument("--source", required=True, help="folder with hosp/ and icu/")
    p.add_argument("--db", required=True, help="DuckDB file to build (replaced atomically)")
    p.add_argument("--config", help="study config TOML (defaults: the shipped study.toml)")
    p.add_argument("--source-format", choices=("mimic", "eicu"),
                   help="layout of --source (default: detected; eICU-CRD = one folder with patient, infusionDrug, ...)")
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

    p = sub.add_parser("tte", help="target-trial emulation (primary analysis) from cohort.parquet -> tte.json")
    p.add_argument("--cohort", required=True, help="cohort.parquet (hourly_panel.parquet beside it)")
    p.add_argument("--out", required=True)
    p.add_argument("--config")
    p.add_argument("--results", help="an analyze results.json: also write OUT/results.json with the tte key added")
    p.add_argument("--bootstrap", type=int, default=None, help="bootstrap replicates (default: [tte].n_bootstrap)")
    p.set_defaults(func=_cmd_tte)

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
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--prefect", dest="prefect", action="store_true", default=None,
                      help="run as the Prefect study flow even without a configured server "
                           "(a temporary local server starts; slow)")
    mode.add_argument("--no-prefect", dest="prefect", action="store_false",
                      help="run in-process even when a Prefect server is configured")
    p.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                   help="duckdb (default); spark also runs the cohort and audit SQL on a local Spark "
                        "session and fails unless its outputs equal DuckDB's (needs the 'spark' extra and Java 17+)")
    p.add_argument("--source-format", choices=("mimic", "eicu"),
                   help="layout of --source (default: detected; eICU-CRD = one folder with patient, infusionDrug, ...)")
    p.add_argument("--by-site", action="store_true",
                   help="also write one aggregate-only results file per site (RUN/sites/site-<id>.json) "
                        "and their meta-analysis beside the pooled-data estimate (RUN/sites/sites_pooled.json)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("pool", help="random-effects meta-analysis of site results files (from run --by-site)")
    p.add_argument("files", nargs="+", help="site-<id>.json files, one per site")
    p.add_argument("--out", help="write the pooled result as JSON here")
    p.add_argument("--config")
    p.set_defaults(func=_cmd_pool)

    p = sub.add_parser("sql", help="write the SQL layer transpiled for a warehouse (Spark SQL or BigQuery)")
    p.add_argument("--dialect", required=True, choices=("spark", "bigquery"))
    p.add_argument("--out", required=True, help="folder for <layer>/<relation>.sql and build_order.txt")
    p.set_defaults(func=_cmd_sql)

    p = sub.add_parser("serve", help="schedule the study (weekly) and audit (monthly) flows on a Prefect server")
    p.add_argument("--out", required=True, help="output root of the scheduled runs")
    p.add_argument("--source", help="folder with hosp/ and icu/ (default: embedded synthetic data)")
    p.add_argument("--config")
    p.add_argument("--timezone", default="UTC", help="IANA time zone of the schedules (default UTC)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("alert", help="notify through a Prefect notification block when a vasoflow run fails")
    p.add_argument("--block", required=True,
                   help="name of a notification block on the server (e.g. an email or Slack webhook block)")
    p.set_defaults(func=_cmd_alert)
    return parser


class _LineFormatter(logging.Formatter):
    """``vasoflow: <message>`` for progress, ``vasoflow: WARNING: <message>`` above it."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else f"{record.levelname}: "
        return f"vasoflow: {level}{record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (not the one at set-up)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging() -> None:
    """Progress lines and warnings (e.g. a missing optional table) go to stderr, one line each."""
    logger = logging.getLogger("vasoflow")
    if not any(getattr(h, "_vasoflow", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_LineFormatter())
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

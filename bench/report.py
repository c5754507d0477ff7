"""The report: a rich table on the terminal and a JSON file with the machine's facts."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.results import Result, Stats

NOTE = (
    "ours, raw: median of the reps, ± half their min-max spread. ours/raw: the ratio "
    "within each rep (both sides back to back), median [min-max]. CPU us/msg: this "
    "process's CPU time per message (all threads), median; steadier than msg/s on a "
    "shared machine."
)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_facts(broker: dict[str, Any]) -> dict[str, Any]:
    """Where the figures come from: they mean little without this."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "aio_pika": _version("aio-pika"),
        "aiormq": _version("aiormq"),
        "pydantic": _version("pydantic"),
        "opentelemetry_sdk": _version("opentelemetry-sdk"),
        # The peers of ``make bench-peers`` (None when the [bench] extra is missing).
        "faststream": _version("faststream"),
        "dramatiq": _version("dramatiq"),
        "celery": _version("celery"),
        "broker": broker,
        "load_average": list(os.getloadavg()),
    }


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(samples: list[float]) -> str:
    if not samples:
        return "-"
    stats = Stats.of(samples)
    if stats.n == 1:
        return _fmt(stats.median)
    return f"{_fmt(stats.median)} ±{stats.spread_pct / 2:.0f}%"


def _ratio_cell(result: Result) -> str:
    ratios = result.ratios
    if not ratios:
        return "-"
    stats = Stats.of(ratios)
    return escape(f"{stats.median:.2f}x [{stats.low:.2f}-{stats.high:.2f}]")


def _cpu_cell(result: Result) -> str:
    if not (result.cpu_ours and result.cpu_raw):
        return ""
    return f"{Stats.of(result.cpu_ours).median:.0f} / {Stats.of(result.cpu_raw).median:.0f}"


def table(results: list[Result], title: str) -> Table:
    grid = Table(title=title, title_justify="left")
    columns = ("case", "unit", "ours", "raw aio-pika", "ours/raw [min-max]", "target", "met",
               "CPU us/msg ours / raw")
    for column in columns:
        grid.add_column(column, justify="left" if column in ("case", "unit") else "right")
    family = None
    for result in results:
        if family is not None and result.family != family:
            grid.add_section()
        family = result.family
        unit = f"{result.unit} ({'higher' if result.higher_is_better else 'lower'} is better)"
        met = result.met
        mark = "" if met is None else ("[green]yes[/]" if met else "[red]NO[/]")
        grid.add_row(
            f"{result.family}: {result.case}", unit, _cell(result.ours), _cell(result.raw),
            _ratio_cell(result), result.target.describe(result.unit) if result.target else "",
            mark, _cpu_cell(result),
        )
    return grid


def print_report(results: list[Result], facts: dict[str, Any], console: Console) -> None:
    broker = facts["broker"]
    title = (
        f"pipeline vs raw aio-pika, same run: {facts['cores']} cores ({facts['cpu']}), "
        f"RabbitMQ {broker.get('rabbitmq')}, Python {facts['python']}, "
        f"aio-pika {facts['aio_pika']}"
    )
    console.print(table(results, title))
    console.print(escape(NOTE))


def write_json(path: Path, results: list[Result], facts: dict[str, Any],
               run: dict[str, Any]) -> None:
    document = {"machine": facts, "run": run, "results": [r.to_json() for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def markdown(document: dict[str, Any]) -> str:
    """The JSON file's results as a Markdown table (for docs/performance.md)."""
    lines = [
        "| case | ours | raw aio-pika | ours/raw [min-max] | target | met "
        "| CPU µs/msg ours / raw |",
        "|---|---:|---:|---:|---:|:-:|---:|",
    ]
    for row in document["results"]:
        ours, raw, ratio = row["ours"], row["raw"], row["ratio"]
        cpu = row.get("cpu_us_per_message") or {}
        unit = row["unit"]
        cells = [
            f"{row['family']}: {row['case']}",
            f"{_fmt(ours['median'])} {unit}" if ours else "-",
            f"{_fmt(raw['median'])} {unit}" if raw else "-",
            f"{ratio['median']:.2f}x [{ratio['min']:.2f}-{ratio['max']:.2f}]" if ratio else "-",
            row["target"] or "",
            {True: "yes", False: "**no**", None: ""}[row["met"]],
            (f"{cpu['ours']['median']:.0f} / {cpu['raw']['median']:.0f}"
             if cpu.get("ours") and cpu.get("raw") else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PEER_SIDES = ("ours", "ours (BlockingPublisher)", "raw aio-pika", "FastStream", "Dramatiq",
              "Celery", "asyncio floor", "pika floor", "pika floor (default exchange)")


def _peer_rows(document: dict[str, Any]) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """The peers case's rows by work, then by (side, compared with)."""
    works: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for row in document["results"]:
        if row["family"] != "peers":
            continue
        work, pair = row["case"].rsplit(": ", 1)
        a, b = pair.split(" / ", 1)
        works.setdefault(work, {})[(a, b)] = row
    return works


def peers_markdown(document: dict[str, Any]) -> str:
    """The peers case (``make bench-peers``) as the README's table: every side's
    msg/s, ours / each side, each side / raw aio-pika; the date and the machine."""
    machine, run = document["machine"], document.get("run", {})
    broker = machine.get("broker", {})
    lines = [
        f"Measured {run.get('finished_at', 'at an unknown date')} "
        f"({run.get('reps', '?')} reps of publishing; consume: see each row's note) on "
        f"{machine['cores']} cores ({machine['cpu']}), {machine['platform']}, RabbitMQ "
        f"{broker.get('rabbitmq')}, Python {machine['python']}, aio-pika {machine['aio_pika']}, "
        f"FastStream {machine.get('faststream')}, Dramatiq {machine.get('dramatiq')}, "
        f"Celery {machine.get('celery')}. Medians; a ratio is taken within each rep.",
        "",
        "| work | | " + " | ".join(PEER_SIDES) + " |",
        "|---|---|" + "---:|" * len(PEER_SIDES),
    ]
    for work, rows in _peer_rows(document).items():
        speed, over_raw, ours_over = [], [], []
        for side in PEER_SIDES:
            if side == "raw aio-pika":
                row = rows.get(("ours", side))
                speed.append(_fmt(row["raw"]["median"]) if row else "-")
                over_raw.append("1x")
            else:
                row = rows.get((side, "raw aio-pika"))
                speed.append(_fmt(row["ours"]["median"]) if row else "-")
                over_raw.append(f"{row['ratio']['median']:.2f}x" if row else "-")
            mine = rows.get(("ours", side))
            ours_over.append(f"**{mine['ratio']['median']:.2f}x**"
                             if mine and side != "ours" else "")
        lines.append(f"| {work} | msg/s | " + " | ".join(speed) + " |")
        lines.append("| | ours / it | " + " | ".join(ours_over) + " |")
        lines.append("| | it / raw aio-pika | " + " | ".join(over_raw) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bench.report [--peers] bench/results/latest.json
    import sys

    arguments = sys.argv[1:]
    if arguments[0] == "--peers":
        print(peers_markdown(json.loads(Path(arguments[1]).read_text())))
    else:
        print(markdown(json.loads(Path(arguments[0]).read_text())))

"""Turns a load-test run (load_results/<timestamp>/) into LOAD_TEST_REPORT.md with PNG plots.

    .venv/bin/python -m scripts.load.load_report load_results/<timestamp>

Every figure comes from the run's own CSV files (Locust's *_stats.csv and *_stats_history.csv) and run.json
(written by scripts/load/loadtest.py: target, machine, exact commands). Deliberately invalid requests are their
own row ("/predict [invalid, expects 422]"); they count as failures only when not answered 422.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

AGGREGATED = "Aggregated"


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def number(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def history(run_dir: Path, scenario: str) -> list[dict]:
    """Aggregated rows of the stats history: one per second, with the time from the scenario's start."""
    rows = [r for r in read_csv(run_dir / f"{scenario}_stats_history.csv") if r["Name"] == AGGREGATED]
    if not rows:
        return []
    start = int(rows[0]["Timestamp"])
    return [
        {
            "t": int(r["Timestamp"]) - start,
            "users": int(number(r["User Count"])),
            "rps": number(r["Requests/s"]),
            "failures_s": number(r["Failures/s"]),
            "p50": number(r["50%"]),
            "p95": number(r["95%"]),
            "p99": number(r["99%"]),
        }
        for r in rows
    ]


def plot(run_dir: Path, scenario: str, rows: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [r["t"] for r in rows]
    figure, (throughput, latency, users) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    throughput.plot(times, [r["rps"] for r in rows], label="requests/s")
    throughput.plot(times, [r["failures_s"] for r in rows], label="failures/s", color="red")
    throughput.set_ylabel("per second")
    throughput.legend(loc="upper left")
    for key in ("p50", "p95", "p99"):
        latency.plot(times, [r[key] for r in rows], label=key)
    latency.set_ylabel("latency (ms)")
    latency.legend(loc="upper left")
    users.plot(times, [r["users"] for r in rows], color="gray")
    users.set_ylabel("users")
    users.set_xlabel("seconds since start")
    figure.suptitle(f"{scenario}: throughput, latency and users over time")
    figure.tight_layout()
    name = f"{scenario}.png"
    figure.savefig(run_dir / name, dpi=80)
    plt.close(figure)
    return name


def summary_table(run_dir: Path, scenario: str) -> list[str]:
    lines = [
        "| Request | Requests | Failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in read_csv(run_dir / f"{scenario}_stats.csv"):
        name = "**all**" if row["Name"] == AGGREGATED else f"`{row['Name']}`"
        lines.append(
            f"| {name} | {int(number(row['Request Count']))} | {int(number(row['Failure Count']))} | "
            f"{number(row['Requests/s']):.1f} | {number(row['50%']):.0f} | {number(row['95%']):.0f} | "
            f"{number(row['99%']):.0f} | {number(row['Max Response Time']):.0f} |"
        )
    return lines


def saturation(rows: list[dict], p95_limit_ms: float, failure_limit: float) -> dict | None:
    """Per user level of the step ramp: median req/s and p95 over its steady seconds; the saturation point is
    the first level whose p95 or failure share breaks the limit, or whose throughput is already within 10 % of
    the highest of the whole ramp (no later level adds more than that: more users only queue)."""
    levels: dict[int, list[dict]] = {}
    for row in rows:
        if row["users"]:
            levels.setdefault(row["users"], []).append(row)
    summary = []
    for users, samples in sorted(levels.items()):
        steady = samples[len(samples) // 3 :] or samples  # skip the ramp into the level
        rps = statistics.median(r["rps"] for r in steady)
        summary.append(
            {
                "users": users,
                "rps": rps,
                "p95": statistics.median(r["p95"] for r in steady),
                "failure_share": statistics.median(r["failures_s"] / r["rps"] if r["rps"] else 0 for r in steady),
            }
        )
    if not summary:
        return None
    best = max(summary, key=lambda level: level["rps"])
    point, reason = None, "no limit was broken up to the last level"
    for level in summary:
        if level["p95"] > p95_limit_ms:
            point, reason = level, f"p95 {level['p95']:.0f} ms > {p95_limit_ms:.0f} ms"
        elif level["failure_share"] > failure_limit:
            point, reason = level, f"failures {level['failure_share']:.1%} > {failure_limit:.0%}"
        elif level["rps"] * 1.10 >= best["rps"]:
            point, reason = level, f"{level['rps']:.0f} req/s, within 10 % of the ramp's highest ({best['rps']:.0f} req/s)"
        if point:
            break
    return {"levels": summary, "point": point, "reason": reason, "best": best}


def write_report(run_dir: Path) -> Path:
    run = json.loads((run_dir / "run.json").read_text())
    lines = [
        "# Load test report",
        "",
        f"Generated by `scripts/load/load_report.py` from the CSV files beside it (run started {run['started_at']}).",
        "",
        f"- Target: {run['target']}",
        f"- Machine: {run['machine']}",
        f"- Time scale: {run['time_scale']} (1.0 = the full scenario durations)",
        f"- Request mix: {run['invalid_share']:.0%} deliberately invalid (must get 422; counted as success when "
        f"they do, reported as their own row), {run['batch_share']:.0%} batches of {run['batch_size']} records, "
        "the rest single predictions. Every answer is checked: a wrong species for a known record is a failure.",
        "",
        "Commands:",
        "",
        "```",
        *run["commands"],
        "```",
    ]
    saturation_result = None
    for scenario in run["scenarios"]:
        rows = history(run_dir, scenario)
        lines += ["", f"## {scenario}", "", *summary_table(run_dir, scenario), ""]
        if rows:
            lines.append(f"![{scenario}]({plot(run_dir, scenario, rows)})")
        if scenario == "step" and rows:
            saturation_result = saturation(rows, run["p95_limit_ms"], run["failure_limit"])
            lines += ["", "| Users | median req/s | median p95 ms | failure share |", "|---:|---:|---:|---:|"]
            lines += [
                f"| {lvl['users']} | {lvl['rps']:.0f} | {lvl['p95']:.0f} | {lvl['failure_share']:.2%} |"
                for lvl in saturation_result["levels"]
            ]
    lines += ["", "## Analysis", ""]
    if saturation_result:
        point, best = saturation_result["point"], saturation_result["best"]
        where = f"at {point['users']} concurrent users" if point else "not reached"
        lines.append(f"- Saturation point (step ramp): {where}: {saturation_result['reason']}.")
        lines.append(
            f"- Highest throughput: {best['rps']:.0f} requests/s at {best['users']} users (median p95 {best['p95']:.0f} ms)."
        )
        last = saturation_result["levels"][-1]
        lines.append(
            f"- Past the saturation point more users only queue: at {last['users']} users "
            f"{last['rps']:.0f} requests/s, p95 {last['p95']:.0f} ms. Little's law gives the mean wait: "
            f"{last['users']} users / {last['rps']:.0f} req/s = {1000 * last['users'] / last['rps']:.0f} ms "
            "per request: throughput is capped by CPU, latency grows with the queue."
        )
    lines += [f"- {note}" for note in run.get("notes", [])]
    report = run_dir / "LOAD_TEST_REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    print(write_report(Path(sys.argv[1])))

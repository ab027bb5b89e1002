"""The dashboard's panels drawn from a Prometheus server's HTTP API: the same PromQL as monitoring/dashboard.json
(what Cloud Monitoring shows), over a local run, so that a reader sees what an operator sees.

    .venv/bin/python -m monitoring.render_dashboard http://127.0.0.1:9090 docs/images/dashboard.png --minutes 10
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import requests

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DASHBOARD = Path(__file__).resolve().parent / "dashboard.json"


def query_range(prometheus: str, query: str, start: float, end: float, step: float) -> list[dict]:
    answer = requests.get(
        f"{prometheus}/api/v1/query_range", params={"query": query, "start": start, "end": end, "step": step}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def render(prometheus: str, out: Path, minutes: float) -> None:
    tiles = json.loads(DASHBOARD.read_text())["mosaicLayout"]["tiles"]
    end = time.time()
    start = end - minutes * 60
    unit, unit_name = (1, "seconds") if minutes < 3 else (60, "minutes")
    columns = 2
    rows = (len(tiles) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(13, 2.6 * rows), squeeze=False)
    for axis, tile in zip(axes.flat, sorted(tiles, key=lambda t: (t["yPos"], t["xPos"]))):
        widget = tile["widget"]
        for data_set in widget["xyChart"]["dataSets"]:
            for series in query_range(prometheus, data_set["prometheusQuery"], start, end, max(1.0, minutes * 60 / 200)):
                times = [(float(t) - start) / unit for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                label = ", ".join(f"{k}={v}" for k, v in series["metric"].items() if not k.startswith("__")) or "all"
                axis.plot(times, values, label=label)
        axis.set_title(widget["title"], fontsize=9)
        axis.set_xlabel(unit_name, fontsize=7)
        axis.tick_params(labelsize=7)
        if axis.lines:
            axis.legend(fontsize=6, loc="upper left")
    for axis in axes.flat[len(tiles) :]:
        axis.axis("off")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prometheus", help="Prometheus base URL")
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=10, help="how far back")
    args = parser.parse_args()
    render(args.prometheus, args.out, args.minutes)

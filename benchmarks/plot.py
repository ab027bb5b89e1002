"""Plots `make bench` results: requests/s and p99 latency per server.

.venv/bin/python benchmarks/plot.py docs/performance.json docs/performance.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path: str, image_path: str) -> None:
    results = json.load(open(results_path))["results"]
    names = list(results)
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    for offset, connections in ((-width / 2, 16), (width / 2, 64)):
        positions = [i + offset for i in range(len(names))]
        throughput.bar(
            positions, [results[n][f"c{connections}"]["rps"] for n in names], width, label=f"{connections} connections"
        )
        latency.bar(positions, [results[n][f"c{connections}"]["p99"] for n in names], width, label=f"{connections} connections")
    for axis, label in ((throughput, "/predict requests/s (median of 3)"), (latency, "/predict p99 latency, ms (median of 3)")):
        axis.set_xticks(range(len(names)), names)
        axis.set_title(label)
        axis.legend()
    figure.tight_layout()
    figure.savefig(image_path, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

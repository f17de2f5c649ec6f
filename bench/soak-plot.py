#!/usr/bin/env python3
"""Draws `loadgen soak`'s CSV: memory, descriptors, WAL size and p99 over time, in one PNG.

    python3 bench/soak-plot.py soak.csv bench/soak.png   (needs matplotlib: pip install matplotlib)
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
t = [float(r["seconds"]) / 60 for r in rows]
series = [
    ("resident memory (MiB)", [int(r["rss_kib"]) / 1024 for r in rows]),
    ("open file descriptors", [int(r["fds"]) for r in rows]),
    ("SQLite WAL (MiB)", [int(r["wal_kib"]) / 1024 for r in rows]),
    ("p99 latency per 10 s (ms)", [float(r["p99_ms"]) for r in rows]),
    ("steps per second", [float(r["steps_per_s"]) for r in rows]),
]
fig, axes = plt.subplots(len(series), 1, figsize=(8, 10), sharex=True)
for ax, (name, values) in zip(axes, series):
    ax.plot(t, values, linewidth=1)
    ax.set_ylabel(name, fontsize=8)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
axes[-1].set_xlabel("minutes")
fig.suptitle("loadgen soak: mixed load at half capacity")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)

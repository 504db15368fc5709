"""The roster benchmark reads its latencies from wrk's distribution, not from the statistics above it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

# Output of wrk 4.1 of the kind a roster page gave on 2026-12-04: the thread statistics' "+/- Stdev"
# of Req/Sec ends in "50%", which an unanchored "50%" matched first, taking the next word, "Latency"
# of "Latency Distribution" (the bench printed "p50 Latency").
WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:40123/households
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    44.02ms   18.11ms 120.73ms   88.00%
    Req/Sec    44.67      9.12    60.00     70.50%
  Latency Distribution
     50%   41.51ms
     75%   46.20ms
     90%   58.03ms
     99%  116.94ms
  880 requests in 10.01s, 37.31MB read
Requests/sec:     87.91
Transfer/sec:      3.73MB
"""


def _roster_bench():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("roster_bench")


def test_the_percentiles_come_from_the_latency_distribution():
    bench = _roster_bench()
    assert bench.latency_at(WRK_OUTPUT, 50) == "41.51ms"
    assert bench.latency_at(WRK_OUTPUT, 99) == "116.94ms"

"""GMSRF-Net speed benchmark: `python benchmarks/bench_gmsrf.py [--quick] [--out results.json]`."""
import sys

from polyplib.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--suite", "gmsrf", *sys.argv[1:]]))

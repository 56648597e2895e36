"""Benchmarks behind `make bench`: scenarios against the real platform, results in results.json."""

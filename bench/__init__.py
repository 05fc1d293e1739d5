"""Benchmarks: each measures ours against an anchor in the same run and writes bench/results/<name>.json."""

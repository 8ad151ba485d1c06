"""Benchmarks for digest: ``python -m bench`` (see README, "Performance")."""

"""Benchmarks (make bench, make soak) and their helpers."""

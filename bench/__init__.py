"""Benchmarks: they measure and print; only the no-op check can fail a run."""

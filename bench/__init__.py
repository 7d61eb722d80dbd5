"""Benchmarks: kueatomic side by side with the Python job queues on Redis (see RESULTS.md)."""

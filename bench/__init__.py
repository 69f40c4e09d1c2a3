"""Scoring against VIEW360+, data adapters, synthetic scenarios and latency profiling."""

"""Benchmarks against reference implementations; run with ``python -m bench NAME``."""

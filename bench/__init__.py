"""Benchmarks and the fault suite; run from the repository root: ``python bench/bulk_send.py``."""

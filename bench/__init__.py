"""Benchmarks of rootfi-sync (run as `python -m bench.<name>`)."""

"""Benchmarks of dataflywheel: `python benchmarks/run.py` (tables on stdout, JSON in results/)."""

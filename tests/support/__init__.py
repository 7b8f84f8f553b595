"""Helpers shared by several test folders (importable as tests.support.*; pytest's
`pythonpath = ["."]` puts the root on the path for `pytest` and `python -m pytest` alike)."""

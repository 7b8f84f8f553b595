"""Benchmarks: the engine-level replay (one engine, every policy) and the HTTP load generator."""

"""Simulation and queueing theory for TRAIL's scheduling policy.

Three levels, all driven by `trail.policy` so the simulator ranks exactly like the engine:
an M/G/1 server (`mg1`), an iteration-level batched LLM engine (`engine`), and a cluster of
engines behind a router (`cluster`). `theory` holds the SOAP closed form that the M/G/1 level
validates.
"""

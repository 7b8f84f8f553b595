"""The lab: workloads, training, replay, the simulator and analyses that measure the product.

Imports run one way: the lab uses the product (trail.policy, predict, engine, serve, store,
metrics, models); nothing in the product imports the lab (import-linter contracts in
pyproject.toml, checked by `make lint`). Inside the lab: analyses > bench > sim > learn >
workload, stats.
"""

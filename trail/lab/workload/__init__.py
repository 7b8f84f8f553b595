"""Workloads: prompts, request sets, arrival processes and the ShareGPT split."""

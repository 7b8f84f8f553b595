"""Statistics of measured runs: paired bootstrap ratios and latency summaries (pure numpy)."""

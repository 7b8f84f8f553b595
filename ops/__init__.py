"""Operations as code: Grafana dashboards, Prometheus scrape config (see docs/observability.md)."""

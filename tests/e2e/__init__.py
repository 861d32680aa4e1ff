"""End-to-end tests: the daemon, a real Prometheus and Alertmanager, and a webhook receiver."""

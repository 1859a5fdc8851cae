"""Operations as code: the Prometheus rules and Grafana dashboards generated from
dashboards/slos.yaml (`make dashboards`, `python -m rag_ops`)."""

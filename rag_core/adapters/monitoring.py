"""Prometheus and Alertmanager from Debian (`apt-get install prometheus
prometheus-alertmanager`) as child servers on loopback: what `ragctl dev` starts beside the
platform, with the rules and alerts `make dashboards` generates, and what the dashboard tests
query. Production runs its own, with dashboards/prometheus.yml and dashboards/alertmanager.yml.
"""

import shutil
from pathlib import Path
from typing import Any

import yaml

from rag_core.adapters.processes import ChildServer, free_port, responds_ok

API_JOB = "rag-api"
WORKER_JOB = "rag-worker"


def scrape_config(
    template: Path,
    *,
    api: str,
    worker: str,
    alertmanager: str | None = None,
    interval: str | None = None,
) -> dict[str, Any]:
    """`template` (dashboards/prometheus.yml) scraping the API and the worker at these
    `host:port`s, its rule files made absolute, alerts sent to `alertmanager` (none if None)
    and every `interval` when given."""
    config: dict[str, Any] = yaml.safe_load(template.read_text(encoding="utf-8"))
    targets = {API_JOB: api, WORKER_JOB: worker}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config["rule_files"] = [str(template.parent / pattern) for pattern in config["rule_files"]]
    if alertmanager is None:
        config.pop("alerting", None)
    else:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    if interval is not None:
        config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    return config


class PrometheusServer(ChildServer):
    """Prometheus with `config` (a dict, as `scrape_config` makes), its data and the config
    file in `data_dir`."""

    name = "Prometheus"

    def __init__(
        self,
        config: dict[str, Any],
        data_dir: Path,
        port: int | None = None,
        log_path: Path | None = None,
    ):
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("Prometheus is not installed: apt-get install prometheus")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        config_file = data_dir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        command = [
            binary, f"--config.file={config_file}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]  # fmt: skip
        super().__init__(command, log_path=log_path)

    def ready(self) -> bool:
        return responds_ok(f"{self.url}/-/ready")


class AlertmanagerServer(ChildServer):
    """Alertmanager with `config_file`, alone (no cluster), its state in `data_dir`."""

    name = "Alertmanager"

    def __init__(
        self,
        config_file: Path,
        data_dir: Path,
        port: int | None = None,
        log_path: Path | None = None,
    ):
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise RuntimeError(
                "Alertmanager is not installed: apt-get install prometheus-alertmanager"
            )
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            binary, f"--config.file={config_file}", f"--storage.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
        ]  # fmt: skip
        super().__init__(command, log_path=log_path)

    def ready(self) -> bool:
        return responds_ok(f"{self.url}/-/ready")

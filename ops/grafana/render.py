"""Render the dashboards to JSON and write Grafana file-provisioning YAML.

``python -m ops.grafana.render`` (or ``trail dashboards render``) rewrites the committed files
under ops/grafana/dashboards/ and ops/grafana/provisioning/; a test checks they are current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from ops.grafana.trail_dashboards import all_dashboards

HERE = Path(__file__).resolve().parent
DASHBOARD_DIR = HERE / "dashboards"
PROVISIONING_DIR = HERE / "provisioning"
# Where a Grafana host mounts ops/grafana/dashboards (see docs/observability.md).
GRAFANA_DASHBOARD_PATH = "/etc/grafana/dashboards/trail"
DATASOURCE_UID = "trail-prometheus"
FOLDER = "TRAIL"


def dashboard_json(builder: Any) -> dict[str, Any]:
    """The plain-JSON form of a dashboard builder (what Grafana stores)."""
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def rendered_dashboards() -> dict[str, dict[str, Any]]:
    return {stem: dashboard_json(builder) for stem, builder in all_dashboards().items()}


def _dump_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def provisioning_files(prometheus_url: str = "http://127.0.0.1:9090") -> dict[str, str]:
    """Relative path -> YAML text of the dashboard provider and the Prometheus datasource."""
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "trail",
                "orgId": 1,
                "folder": FOLDER,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": GRAFANA_DASHBOARD_PATH, "foldersFromFilesStructure": False},
            }
        ],
    }
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus (TRAIL)",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "jsonData": {"timeInterval": "5s"},
            }
        ],
    }
    return {
        "dashboards/trail.yaml": yaml.safe_dump(provider, sort_keys=False),
        "datasources/prometheus.yaml": yaml.safe_dump(datasource, sort_keys=False),
    }


def expected_files() -> dict[Path, str]:
    files = {
        DASHBOARD_DIR / f"{stem}.json": _dump_json(d) for stem, d in rendered_dashboards().items()
    }
    files.update({PROVISIONING_DIR / rel: text for rel, text in provisioning_files().items()})
    return files


def render(out_dir: Path | None = None) -> list[Path]:
    """Write every dashboard JSON and provisioning YAML; returns the paths written."""
    written = []
    for path, text in expected_files().items():
        target = path if out_dir is None else out_dir / path.relative_to(HERE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def stale_files() -> list[Path]:
    """Committed files that differ from what the code renders now."""
    return [
        path
        for path, text in expected_files().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


if __name__ == "__main__":
    for written_path in render():
        print(written_path)

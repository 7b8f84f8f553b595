"""Upload the dashboards to a Grafana server with grafana-client, then read them back.

grafana-client is the maintained fork of the ``grafana-api`` package the design names (that one
is unmaintained since 2020). Reading each dashboard back after the upload proves the round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from ops.grafana.render import DATASOURCE_UID, FOLDER, rendered_dashboards

FOLDER_UID = "trail"
# Keys Grafana sets on its stored copy; not part of what we author.
SERVER_KEYS = ("id", "version")


@dataclass(frozen=True)
class PushResult:
    uid: str
    title: str
    version: int | None
    url: str | None
    round_trip_ok: bool


def _missing(exc: GrafanaClientError) -> bool:
    return getattr(exc, "status_code", None) == 404


def ensure_folder(api: GrafanaApi, uid: str = FOLDER_UID, title: str = FOLDER) -> None:
    try:
        api.folder.get_folder(uid)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder(title, uid=uid)


def ensure_datasource(api: GrafanaApi, prometheus_url: str) -> None:
    """Create or update the Prometheus datasource the dashboards default to."""
    body = {
        "name": "Prometheus (TRAIL)",
        "uid": DATASOURCE_UID,
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "jsonData": {"timeInterval": "5s"},
    }
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(body)
        return
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)


def _authored(board: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in board.items() if k not in SERVER_KEYS}


def push_dashboard(api: GrafanaApi, board: dict[str, Any], folder_uid: str) -> PushResult:
    payload = {
        "dashboard": _authored(board),
        "folderUid": folder_uid,
        "overwrite": True,
        "message": "trail dashboards push",
    }
    reply = api.dashboard.update_dashboard(payload)
    stored = api.dashboard.get_dashboard(board["uid"])["dashboard"]
    return PushResult(
        uid=board["uid"],
        title=board["title"],
        version=reply.get("version"),
        url=reply.get("url"),
        round_trip_ok=_authored(stored) == _authored(board),
    )


def push_all(
    url: str,
    token: str | None,
    *,
    folder_uid: str = FOLDER_UID,
    prometheus_url: str | None = None,
    timeout_s: float = 10.0,
) -> list[PushResult]:
    """Push every TRAIL dashboard (into folder ``folder_uid``); optionally the datasource too."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    ensure_folder(api, folder_uid)
    if prometheus_url:
        ensure_datasource(api, prometheus_url)
    return [push_dashboard(api, board, folder_uid) for board in rendered_dashboards().values()]

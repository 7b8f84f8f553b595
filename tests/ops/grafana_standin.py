"""A local HTTP stand-in for the few Grafana endpoints grafana-client calls in `dashboards push`.

No Grafana server can be installed here (not in Debian; no package ships the binary), so the
push round trip is tested against this: folders, datasources, dashboards/db, dashboards/uid, with
Bearer-token auth and Grafana's id/version bookkeeping on stored dashboards.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GrafanaState:
    def __init__(self, token: str) -> None:
        self.token = token
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []


def _handler(state: GrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {state.token}":
                return True
            self._reply(401, {"message": "Unauthorized"})
            return False

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if not self._authorized():
                return
            if m := re.fullmatch(r"/api/folders/([\w-]+)", self.path):
                folder = state.folders.get(m.group(1))
                return (
                    self._reply(200, folder)
                    if folder
                    else self._reply(404, {"message": "folder not found"})
                )
            if m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", self.path):
                ds = state.datasources.get(m.group(1))
                return self._reply(200, ds) if ds else self._reply(404, {"message": "not found"})
            if m := re.fullmatch(r"/api/dashboards/uid/([\w-]+)", self.path):
                stored = state.dashboards.get(m.group(1))
                if stored is None:
                    return self._reply(404, {"message": "Dashboard not found"})
                return self._reply(200, stored)
            self._reply(404, {"message": "not implemented by stand-in"})

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            if not self._authorized():
                return
            body = self._body()
            if self.path == "/api/folders":
                uid = body.get("uid") or "auto"
                state.folders[uid] = {
                    "uid": uid,
                    "title": body["title"],
                    "id": len(state.folders) + 1,
                }
                return self._reply(200, state.folders[uid])
            if self.path == "/api/datasources":
                state.datasources[body["uid"]] = {**body, "id": len(state.datasources) + 1}
                return self._reply(200, {"message": "Datasource added", "datasource": body})
            if self.path == "/api/dashboards/db":
                return self._save_dashboard(body)
            self._reply(404, {"message": "not implemented by stand-in"})

        def do_PUT(self) -> None:
            state.requests.append(("PUT", self.path))
            if not self._authorized():
                return
            if m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", self.path):
                state.datasources[m.group(1)] = self._body()
                return self._reply(200, {"message": "Datasource updated"})
            self._reply(404, {"message": "not implemented by stand-in"})

        def _save_dashboard(self, body: dict[str, Any]) -> None:
            board = dict(body["dashboard"])
            uid = board["uid"]
            if body.get("folderUid") not in state.folders:
                return self._reply(400, {"message": "folder not found"})
            previous = state.dashboards.get(uid)
            if previous and not body.get("overwrite"):
                return self._reply(412, {"status": "version-mismatch"})
            version = previous["dashboard"]["version"] + 1 if previous else 1
            board.update(id=len(state.dashboards) + 1, version=version)
            state.dashboards[uid] = {
                "dashboard": board,
                "meta": {"folderUid": body["folderUid"], "url": f"/d/{uid}"},
            }
            self._reply(
                200, {"status": "success", "uid": uid, "version": version, "url": f"/d/{uid}"}
            )

    return Handler


class GrafanaStandIn:
    def __init__(self, token: str = "test-token") -> None:
        self.state = GrafanaState(token)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> GrafanaStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

"""Grafana dashboards as code (grafana-foundation-sdk), provisioning files, and a push CLI.

The SDK build is pinned to the one generated for Grafana 11.6: ``grafana-foundation-sdk ==
1769699379!11.6.0`` (the epoch is the build timestamp; pip's default is a 10.1 build).
"""

GRAFANA_VERSION = "11.6"
SDK_BUILD = "1769699379!11.6.0"

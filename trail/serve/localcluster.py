"""A loopback Ray cluster through the real cluster launcher (`ray up` with the local provider).

Everything lives in one temp dir: SSH host and client keys, an sshd_config used in inetd mode
(`ssh_proxy_command: sshd -i`, no listening daemon), Ray's temp dir, and the rendered cluster
YAML. `ray stop` stops EVERY Ray process of the user on the machine, so the sshd ForceCommand
rewrites it (also inside `ray down`) into a stop of this cluster's processes only, by pid.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "cluster.local.yaml"
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_worker_niceness": "0",  # Ray's default 15 starves the replicas on a busy machine
}
SSHD_CONFIG = """HostKey {dir}/host_key
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
ForceCommand {dir}/forced_command
"""
FORCED_COMMAND = """#!/bin/bash
# Rewrites `ray stop` (which would stop every Ray on this machine) to stop this cluster only.
cmd="${{SSH_ORIGINAL_COMMAND:-exec bash -l}}"
cmd="${{cmd//ray stop/{python} -m trail.serve.localcluster stop {dir}}}"
export PATH="{venv_bin}:$PATH"
exec /bin/bash -c "$cmd"
"""


def free_port() -> int:
    """A port free on loopback now (the tests, load tests and local clusters bind to it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_loopback_serve(num_cpus: int = 2) -> int:
    """An in-process Ray and Serve bound to 127.0.0.1 (tests, benchmarks, load tests); returns
    the HTTP port. The caller shuts both down (serve.shutdown(), ray.shutdown())."""
    os.environ.update(RAY_ENV)
    import ray
    from ray import serve

    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=num_cpus,
        log_to_driver=False,
    )
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    return port


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _ancestors() -> set[int]:
    """This process and its ancestors (the ssh session running a rewritten `ray stop`)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return pids


def cluster_pids(marker: str) -> list[int]:
    """Processes whose command line names `marker` (the cluster dir), and all descendants,
    except this process and its ancestors."""
    roots = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                roots.append(int(cmdline.parent.name))
        except OSError:
            continue
    keep = _ancestors()
    children, found, stack = _children_map(), [], [p for p in roots if p not in keep]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.append(pid)
            stack.extend(children.get(pid, []))
    return [p for p in found if p not in keep]


def stop_cluster_processes(marker: str, timeout_s: float = 15.0) -> list[int]:
    """SIGTERM, then SIGKILL, each process of this cluster only (by pid)."""
    pids = cluster_pids(marker)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
    return pids


class LocalCluster:
    """Render cluster.local.yaml into a temp dir; `up`, `serve_run`, `down` drive the CLIs."""

    def __init__(self, venv: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="trl-rc-", dir="/tmp"))
        self.name = f"trail-local-{uuid.uuid4().hex[:8]}"
        self.venv_bin = (venv or Path(sys.executable).parent).resolve()
        self.gcs_port = free_port()
        self.yaml = self.dir / "cluster.yaml"
        self.env = {**os.environ, **RAY_ENV, "PATH": f"{self.venv_bin}:{os.environ['PATH']}"}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def render(self) -> Path:
        self._make_keys()
        (self.dir / "sshd_config").write_text(SSHD_CONFIG.format(dir=self.dir))
        forced = self.dir / "forced_command"
        forced.write_text(
            FORCED_COMMAND.format(
                python=self.venv_bin / "python", dir=self.dir, venv_bin=self.venv_bin
            )
        )
        forced.chmod(0o755)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
        ray_env = " ".join(f"{k}={v}" for k, v in RAY_ENV.items())
        start = " ".join(
            [*self.head_start_args(), "--autoscaling-config=~/ray_bootstrap_config.yaml"]
        )
        fields = dict(
            cluster_name=self.name,
            ssh_user=getpass.getuser(),
            dir=str(self.dir),
            ray_env=ray_env,
            ray_start=start,
        )
        self.yaml.write_text(string.Template(TEMPLATE.read_text()).substitute(fields))
        return self.yaml

    def head_start_args(self) -> list[str]:
        """`ray start --head` on loopback, with every port chosen free (never the defaults)."""
        return [
            str(self.venv_bin / "ray"),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={self.gcs_port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={self.dir}/ray",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]

    def start_head(self) -> None:
        """The same head without the launcher (for `serve run` tests that skip `ray up`)."""
        result = subprocess.run(
            self.head_start_args(),
            env=self.env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{result.stdout}\n{result.stderr}")

    def _make_keys(self) -> None:
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)],
                check=True,
            )
        shutil.copy(self.dir / "client_key.pub", self.dir / "authorized_keys")

    def ray(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv_bin / "ray"), *args],
            env=self.env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=timeout_s,
        )

    def up(self) -> None:
        result = self.ray("up", "-y", "--no-config-cache", str(self.yaml))
        if result.returncode != 0:
            raise RuntimeError(f"ray up failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")

    def serve_run(self, config: Path) -> subprocess.Popen[str]:
        """`serve run` against this cluster (blocking CLI in the background; stop() ends it)."""
        log = open(self.dir / "serve_run.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [str(self.venv_bin / "serve"), "run", "--address", self.address, str(config)],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def down(self) -> None:
        self.ray("exec", str(self.yaml), "ray stop", timeout_s=120)  # rewritten: this cluster
        self.ray("down", "-y", str(self.yaml), timeout_s=120)
        stop_cluster_processes(str(self.dir))  # whatever is left (workers, engines)
        Path(f"/tmp/ray/cluster-{self.name}.state").unlink(missing_ok=True)
        Path(f"/tmp/ray/cluster-{self.name}.lock").unlink(missing_ok=True)
        self._remove_ssh_control_dir()

    def _remove_ssh_control_dir(self) -> None:
        """Ray's SSH ControlPath dir for this cluster (/tmp/ray_ssh_<user>/<cluster>)."""
        user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
        name = hashlib.sha256(self.name.encode()).hexdigest()[:10]
        control = Path(f"/tmp/ray_ssh_{user}/{name}")
        shutil.rmtree(control, ignore_errors=True)
        with contextlib.suppress(OSError):
            control.parent.rmdir()  # only if no other cluster uses it

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    """`python -m trail.serve.localcluster stop DIR` (what the rewritten `ray stop` runs)."""
    if len(sys.argv) == 3 and sys.argv[1] == "stop":
        pids = stop_cluster_processes(sys.argv[2])
        print(f"stopped {len(pids)} processes of the cluster in {sys.argv[2]}")
    else:
        sys.exit("usage: python -m trail.serve.localcluster stop CLUSTER_DIR")


if __name__ == "__main__":
    main()

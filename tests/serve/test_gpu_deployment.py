"""deployments/gpu.yaml follows Ray Serve's GPU conventions and fails clearly where it cannot run:
one placement-group bundle per TP rank with the accelerator hint, STRICT_PACK, vLLM's Ray
executor; a cluster without the GPUs is refused when the app is built; a node without the weights
or predictors fails the replica's start naming them. (No GPU here: the bundles are checked as
rendered; a real CPU-only Ray cluster checks the refusal.)"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from trail.serve.app import check_gpus, llm_actor_options, llm_placement, with_ray_executor
from trail.serve.config import ServeConfig
from trail.serve.placement import check_cluster_has
from trail.serve.sources import check_sources

ROOT = Path(__file__).resolve().parents[2]


def gpu_args(tp: int | None = None) -> dict:
    args = yaml.safe_load((ROOT / "deployments" / "gpu.yaml").read_text())["applications"][0]
    args = args["args"]
    if tp is not None:
        args["engine"]["tensor_parallel_size"] = tp
        args["replicas"]["num_gpus"] = tp
    return args


@pytest.mark.parametrize("tp", [2, 4])
def test_gpu_yaml_renders_one_gpu_bundle_per_tp_rank(tp: int) -> None:
    cfg = with_ray_executor(ServeConfig.model_validate(gpu_args(tp)))
    placement = llm_placement(cfg)
    bundles = placement["placement_group_bundles"]
    assert len(bundles) == tp and placement["placement_group_strategy"] == "STRICT_PACK"
    assert all(b["GPU"] == 1 and b["accelerator_type:A100"] == 0.001 for b in bundles)
    assert bundles[0]["CPU"] == cfg.replicas.num_cpus and all("CPU" not in b for b in bundles[1:])
    # the replica actor holds CPUs only; vLLM's Ray executor takes the GPU bundles
    assert "num_gpus" not in llm_actor_options(cfg)
    assert cfg.engine.extra["distributed_executor_backend"] == "ray"


def test_cpu_yaml_asks_for_no_placement_group() -> None:
    args = yaml.safe_load((ROOT / "deployments" / "cpu.yaml").read_text())["applications"][0]
    cfg = with_ray_executor(ServeConfig.model_validate(args["args"]))
    assert llm_placement(cfg) == {} and "distributed_executor_backend" not in cfg.engine.extra


def test_gpus_per_replica_must_match_tensor_parallel() -> None:
    args = gpu_args()
    args["replicas"]["num_gpus"] = 1
    with pytest.raises(ValueError, match="must equal engine.tensor_parallel_size=2"):
        ServeConfig.model_validate(args)


def test_a_cluster_without_the_gpus_is_refused_naming_them() -> None:
    bundles = llm_placement(ServeConfig.model_validate(gpu_args()))["placement_group_bundles"]
    with pytest.raises(ValueError, match=r"2 GPU\(s\) per replica × 4 replica\(s\) on A100"):
        check_cluster_has(bundles, 4, {"CPU": 16.0})
    with pytest.raises(ValueError, match="no accelerator_type:A100"):
        check_cluster_has(bundles, 4, {"CPU": 16.0, "GPU": 8.0, "accelerator_type:H100": 8.0})
    check_cluster_has(bundles, 4, {"CPU": 96.0, "GPU": 8.0, "accelerator_type:A100": 8.0})


def test_a_node_without_weights_or_predictors_fails_naming_each(tmp_path) -> None:
    args = gpu_args()
    args["engine"]["model"] = str(tmp_path / "weights")
    args["prompt_predictor_path"] = str(tmp_path / "prompt")
    with pytest.raises(FileNotFoundError) as err:
        check_sources(ServeConfig.model_validate(args))
    for name in ("engine.model", "engine.trail.probe_path", "prompt_predictor_path"):
        assert name in str(err.value)
    args["engine"]["model"] = "meta-llama/Llama-3.1-8B-Instruct"  # a hub id is the hub's job
    args["engine"]["trail"]["probe_path"] = None
    args["prompt_predictor_path"] = None
    check_sources(ServeConfig.model_validate(args))


STATUS = """
import ray
from ray import serve
ray.init(address="{address}", namespace="serve", log_to_driver=False)
app = serve.status().applications.get("trail")
print(app.status if app else "", app.message if app else "")
"""


def app_status(cluster) -> str:  # noqa: ANN001 - LocalCluster
    """The app's status and message, read by a driver attached to the cluster (the local
    cluster runs without a dashboard, which `serve status` would need)."""
    code = STATUS.format(address=cluster.address)
    proc = subprocess.run(
        [str(cluster.venv_bin / "python"), "-c", code],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout


@pytest.mark.serve
def test_serve_run_gpu_yaml_on_a_cpu_only_cluster_fails_fast_and_clearly() -> None:
    from tests.cluster.test_serve_run import stop_serve_run
    from trail.serve.localcluster import LocalCluster, free_port, stop_cluster_processes

    cluster = LocalCluster()
    try:
        cluster.start_head()
        cfg = yaml.safe_load((ROOT / "deployments" / "gpu.yaml").read_text())
        cfg["http_options"] |= {"host": "127.0.0.1", "port": free_port()}
        cfg["applications"][0]["args"]["redis_url"] = None  # embedded: no cluster Redis here
        path = cluster.dir / "gpu.yaml"
        path.write_text(yaml.safe_dump(cfg))
        proc = cluster.serve_run(path)
        started, status = time.monotonic(), ""
        while time.monotonic() - started < 240 and "DEPLOY_FAILED" not in status:
            time.sleep(3)
            status = app_status(cluster)
        stop_serve_run(proc)
        assert "DEPLOY_FAILED" in status, status
        assert "cannot host the LLM replicas" in status and "A100" in status, status
    finally:
        stop_cluster_processes(str(cluster.dir))
        cluster.cleanup()


def test_check_gpus_is_silent_without_ray(monkeypatch) -> None:
    import trail.serve.app as app

    monkeypatch.setattr(app.ray, "is_initialized", lambda: False)  # other tests start Ray
    check_gpus(ServeConfig.model_validate(gpu_args()))  # builder used outside a cluster

"""cluster.yaml against Ray's own cluster-config schema, and the choices it must keep."""
import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture(scope="module")
def cluster():
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_validates_against_rays_schema(cluster):
    validate_config(cluster)
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["worker.gpu"]["min_wrkers"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_wrkers"):
        validate_config(broken)


def test_gpu_workers_autoscale_from_zero_and_head_runs_no_tasks(cluster):
    nodes = cluster["available_node_types"]
    assert cluster["head_node_type"] == "head.cpu" and nodes["head.cpu"]["resources"] == {"CPU": 0}
    assert nodes["worker.gpu"]["min_workers"] == 0 and nodes["worker.gpu"]["max_workers"] >= 1
    import ray

    major_minor = ".".join(ray.__version__.split(".")[:2])
    assert cluster["docker"]["image"].startswith(f"rayproject/ray:{major_minor}")
    assert cluster["docker"]["image"].endswith("-py311-gpu")


def test_token_auth_everywhere_and_nothing_public(cluster):
    assert "--env RAY_AUTH_MODE=token" in cluster["docker"]["run_options"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cluster[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert "/home/ray/.ray/auth_token" in cluster["file_mounts"]
    head = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "mlflow server" in head and "--backend-store-uri sqlite:" in head
    assert "--artifacts-destination s3://" in head

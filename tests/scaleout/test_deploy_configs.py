"""The balancer configurations and Kubernetes manifests that docs/scale-out.md offers are valid as shipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from aggregator import config as hub_config
from tests.support.replicas import HAPROXY, PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def test_the_haproxy_configuration_is_valid() -> None:
    done = subprocess.run(
        [HAPROXY, "-c", "-f", str(DEPLOY / "balancers" / "haproxy.cfg")], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()


def test_the_nginx_configuration_is_valid(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n access_log off;\n include {DEPLOY / 'balancers' / 'nginx.conf'};\n}}\n"
    )
    done = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(main)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_the_kubernetes_manifests_run_replicas_with_probes_a_service_and_a_disruption_budget(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "toolmux.yaml").read_text()))
    by_kind = {d["kind"]: d for d in documents}
    assert {"ConfigMap", "Job", "Deployment", "Service", "PodDisruptionBudget"} <= set(by_kind)
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert by_kind["Deployment"]["spec"]["replicas"] > by_kind["PodDisruptionBudget"]["spec"]["minAvailable"]
    assert by_kind["Service"]["spec"]["sessionAffinity"] == "None"
    path = tmp_path / "toolmux.yaml"
    path.write_text(by_kind["ConfigMap"]["data"]["toolmux.yaml"])
    environ = {"TOOLMUX_POSTGRES_URL": "postgresql://toolmux@db/toolmux", "POD_IP": "10.1.2.3"}
    config = hub_config.load(path, environ)  # the hub's own validation, as a pod would load it
    assert config.state.redis and config.state.postgres == environ["TOOLMUX_POSTGRES_URL"]
    assert config.state.advertise_url == "http://10.1.2.3:4000"

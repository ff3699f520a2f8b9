"""The Kubernetes deployment (deploy/kubernetes/): schema-valid, hardened, confined.

There is no cluster here: every manifest and a kernel pod rendered by the kernelspec's own
launch code are validated against the Kubernetes API's JSON schemas (kubernetes-validate,
strict: unknown fields fail), the kustomization is built by kubectl as an operator's
`kubectl apply -k` would, and the hardening and the NetworkPolicies are checked on what
those produce.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from conftest import ROOT, require

DEPLOY = ROOT / "deploy" / "kubernetes"
KERNELSPEC = DEPLOY / "kernelspec"
# The oldest Kubernetes release still maintained by most distributions, and the newest.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
KERNEL_ID = "0f8b3f8e-7d2c-4b8e-9d4e-2f1c6a5b4c3d"
RESPONSE = "10.42.0.17:8877"
SECURITY = {"runAsUser": 10001, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def kustomization() -> dict:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def manifests() -> list[dict]:
    return [doc for name in kustomization()["resources"]
            for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def find(docs: list[dict], kind: str, name: str) -> dict:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def validate(doc: dict) -> None:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} on Kubernetes {version}: "
                        f"{exc.message} at {'.'.join(map(str, exc.path))}")


@pytest.fixture
def launch_pod(monkeypatch):
    """The kernelspec's launch script with the Deployment's caps in its environment, as
    Enterprise Gateway runs it (EG_INHERITED_ENVS), the Swarm script importable beside it."""
    for folder in (KERNELSPEC, ROOT / "gateway_image" / "kernelspec"):
        monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "launch_pod", raising=False)
    import launch_pod

    for name, value in gateway_env().items():
        if name.startswith("JUPYTER_ANALYST_"):
            monkeypatch.setenv(name, value)
    return launch_pod


def gateway_env() -> dict[str, str]:
    deployment = find(manifests(), "Deployment", "jupyter-analyst-gateway")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def kernel_pod(launch_pod) -> dict:
    return launch_pod.render_pod(launch_pod.pod_values(KERNEL_ID, RESPONSE, "cHVibGlj"))


def assert_hardened(pod_spec: dict) -> None:
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod_spec["containers"] + pod_spec.get("initContainers", []):
        context = container["securityContext"]
        assert {k: context.get(k) for k in SECURITY} == SECURITY, container["name"]
        assert context.get("privileged") is False


def test_every_manifest_is_valid_for_the_kubernetes_api():
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"Namespace", "ServiceAccount", "Role", "RoleBinding",
                                         "Deployment", "Service", "NetworkPolicy",
                                         "ResourceQuota"}
    for doc in docs:
        validate(doc)


def test_the_kustomization_names_every_manifest_and_kernelspec_file():
    listed = kustomization()
    assert sorted(listed["resources"]) == sorted(
        p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    [generator] = listed["configMapGenerator"]
    assert sorted(generator["files"]) == sorted(
        str(p.relative_to(DEPLOY)) for p in KERNELSPEC.iterdir() if p.is_file())


def test_the_rendered_kernel_pod_is_valid_and_hardened(launch_pod):
    pod = kernel_pod(launch_pod)
    validate(pod)
    spec = pod["spec"]
    assert_hardened(spec)
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    [container] = spec["containers"]
    env = gateway_env()
    assert container["image"] == env["JUPYTER_ANALYST_KERNEL_IMAGE"]
    limits = container["resources"]["limits"]
    assert limits == {"memory": env["JUPYTER_ANALYST_KERNEL_MEMORY"],
                      "cpu": f"{int(float(env['JUPYTER_ANALYST_KERNEL_CPUS']) * 1000)}m"}
    assert container["resources"]["requests"] == limits
    # /tmp and outputs/ are the only writable places, both in memory with a size.
    volumes = {v["name"]: v["emptyDir"] for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/sandbox/outputs"}
    assert all(v["medium"] == "Memory" for v in mounts.values())
    assert mounts["/sandbox/outputs"]["sizeLimit"] == env["JUPYTER_ANALYST_KERNEL_OUTPUTS_SIZE"]
    # The file-size rlimit is the first process's argument; the launcher gets the rest.
    assert container["command"][3] == env["JUPYTER_ANALYST_KERNEL_FILE_SIZE"]
    assert container["command"][4:] == [
        launch_pod.LAUNCHER, "--kernel-id", KERNEL_ID, "--response-address", RESPONSE,
        "--public-key", "cHVibGlj"]


def test_the_rlimit_prelude_sets_the_limits_then_runs_the_launcher(launch_pod, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import resource, sys\n"
                     "print(resource.getrlimit(resource.RLIMIT_FSIZE)[0],"
                     " resource.getrlimit(resource.RLIMIT_CORE)[0], sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-c", launch_pod.RLIMITS, "4096", str(probe), "x"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["4096", "0", "['x']"]


def test_a_client_may_ask_for_less_never_for_more_nor_for_its_own_pod(launch_pod, monkeypatch):
    env = gateway_env()
    monkeypatch.setenv("KERNEL_MEMORY", str(int(env["JUPYTER_ANALYST_KERNEL_MEMORY"]) * 4))
    monkeypatch.setenv("KERNEL_CPUS", "0.5")
    for name, value in {"KERNEL_IMAGE": "attacker/root:latest", "KERNEL_UID": "0",
                        "KERNEL_SERVICE_ACCOUNT_NAME": "default",
                        "KERNEL_VOLUMES": "[{hostPath: {path: /}, name: root}]"}.items():
        monkeypatch.setenv(name, value)
    spec = kernel_pod(launch_pod)["spec"]
    [container] = spec["containers"]
    assert container["resources"]["limits"] == {
        "memory": env["JUPYTER_ANALYST_KERNEL_MEMORY"], "cpu": "500m"}
    assert container["image"] == env["JUPYTER_ANALYST_KERNEL_IMAGE"]
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["serviceAccountName"] == "jupyter-analyst-kernel"
    assert [v["name"] for v in spec["volumes"]] == ["tmp", "outputs"]

    monkeypatch.setenv("KERNEL_NAMESPACE", "default")
    with pytest.raises(SystemExit, match="is not the kernels' namespace"):
        kernel_pod(launch_pod)


def test_the_kernels_network_reaches_only_the_gateway(launch_pod):
    docs = manifests()
    namespace = json.loads((KERNELSPEC / "kernel.json").read_text())["env"]["KERNEL_NAMESPACE"]
    pod = kernel_pod(launch_pod)
    assert pod["metadata"]["namespace"] == namespace
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"
                and d["metadata"]["namespace"] == namespace]
    # Default deny: every pod of the namespace, both directions, no rule.
    deny = find(policies, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    deployment = find(docs, "Deployment", "jupyter-analyst-gateway")
    gateway_peer = {
        "namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": deployment["metadata"]["namespace"]}},
        "podSelector": {"matchLabels": deployment["spec"]["template"]["metadata"]["labels"]}}
    labels = pod["metadata"]["labels"]
    selecting = [p["spec"] for p in policies if p["spec"]["podSelector"]
                 and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
    assert selecting, "no NetworkPolicy selects the kernel pods"
    for spec in selecting:
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
        assert [rule["from"] for rule in spec["ingress"]] == [[gateway_peer]]
        assert [rule["to"] for rule in spec["egress"]] == [[gateway_peer]]
        # No DNS, no other port: the response port only.
        assert [rule["ports"] for rule in spec["egress"]] == [[{"protocol": "TCP",
                                                                "port": 8877}]]


def test_the_gateway_manages_pods_of_the_kernels_namespace_only_within_a_quota():
    docs = manifests()
    namespace = json.loads((KERNELSPEC / "kernel.json").read_text())["env"]["KERNEL_NAMESPACE"]
    deployment = find(docs, "Deployment", "jupyter-analyst-gateway")
    pod_spec = deployment["spec"]["template"]["spec"]
    assert_hardened(pod_spec)
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    binding = find(docs, "RoleBinding", "jupyter-analyst-gateway")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": pod_spec["serviceAccountName"],
                                    "namespace": deployment["metadata"]["namespace"]}]
    role = find(docs, "Role", binding["roleRef"]["name"])
    assert [rule["resources"] for rule in role["rules"]] == [["pods"]]
    kernel_account = find(docs, "ServiceAccount", "jupyter-analyst-kernel")
    assert kernel_account["metadata"]["namespace"] == namespace
    assert kernel_account["automountServiceAccountToken"] is False
    assert not [b for b in docs if b["kind"] == "RoleBinding"
                and any(s["name"] == "jupyter-analyst-kernel" for s in b["subjects"])]
    quota = find(docs, "ResourceQuota", "kernels")
    assert quota["metadata"]["namespace"] == namespace and int(quota["spec"]["hard"]["pods"]) > 0
    for name in (namespace, deployment["metadata"]["namespace"]):
        labels = find(docs, "Namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_gateway_serves_this_kernelspec_and_passes_on_every_cap():
    env = gateway_env()
    spec = json.loads((KERNELSPEC / "kernel.json").read_text())
    deployment = find(manifests(), "Deployment", "jupyter-analyst-gateway")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "kernelspec")
    assert mount == f"{env['JUPYTER_PATH']}/kernels/jupyter-analyst-sandbox"
    assert spec["argv"][1] == f"{mount}/launch_pod.py"
    assert spec["metadata"]["process_proxy"]["class_name"].endswith(".KubernetesProcessProxy")
    # The launch script imports the Swarm one, where the gateway image put it, and the
    # gateway's own packages (kubernetes, jinja2).
    copies = dict(line.split()[1:3] for line in
                  (ROOT / "gateway_image" / "Dockerfile").read_text().splitlines()
                  if line.startswith("COPY ") and len(line.split()) == 3)
    assert spec["env"]["PYTHONPATH"].split(":") == [
        copies["gateway-site/"].rstrip("/"), copies["kernelspec/"].rstrip("/")]
    inherited = set(env["EG_INHERITED_ENVS"].split(","))
    assert inherited == {name for name in env if name.startswith("JUPYTER_ANALYST_")}
    assert env["EG_CULL_IDLE_TIMEOUT"] == "3600"


def test_kubectl_builds_the_kustomization_into_valid_objects(tmp_path):
    kubectl = shutil.which("kubectl")
    require(kubectl is not None, "kubectl is not installed (.ci/setup installs it)")
    # No cluster: `kubectl kustomize` is the part of `kubectl apply -k` that needs none.
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True,
                          env={"KUBECONFIG": "/dev/null", "HOME": str(tmp_path),
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    docs = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    for doc in docs:
        validate(doc)
    [config_map] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert set(config_map["data"]) == {"kernel.json", "launch_pod.py", "kernel-pod.yaml.j2"}
    deployment = find(docs, "Deployment", "jupyter-analyst-gateway")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": config_map["metadata"]["name"]} in [v.get("configMap") for v in volumes]
    assert len(docs) == len(manifests()) + 1

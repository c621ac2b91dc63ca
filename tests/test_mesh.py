"""The mesh attachment, checked offline: every manifest under istio/ against
Istio's and Kubernetes' schemas, every plugin configuration in them with
`meshguard validate` and inside a real Envoy running the built filter, the OCI
image layout from scripts/package-oci, and `meshguard scan` on a body with a
secret."""

import copy
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile

import pytest

from conftest import ROOT, stack_mod

ISTIO_DIR = ROOT / "istio"
MESH_DIR = ROOT / "tests" / "mesh"
WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
SECRET = "AKIAZ7Q3K5LMN2P4R6TW"
PLACEHOLDER_DIGEST = "0" * 64


def manifests():
    files = sorted(ISTIO_DIR.glob("*.yaml"))
    assert files, "no manifests under istio/"
    return files


@pytest.fixture(scope="session")
def node_modules():
    """npm ci from the committed lock file, once per lock file version."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.fail("node and npm are needed to validate the manifests (apt-get install nodejs npm)")
    stamp = MESH_DIR / "node_modules" / ".meshguard-lock.sha"
    want = hashlib.sha256((MESH_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=MESH_DIR, check=True,
                       timeout=300)
        stamp.write_text(want)
    return MESH_DIR / "node_modules"


def schema_report(paths):
    result = subprocess.run(["node", str(MESH_DIR / "validate.mjs"), *map(str, paths)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["objects"]


@pytest.fixture(scope="session")
def objects(node_modules):
    """Every object in istio/*.yaml, parsed and schema-checked."""
    return schema_report(manifests())


@pytest.fixture(scope="session")
def cli():
    """The operator CLI, built (incrementally) from this checkout."""
    subprocess.run(["cargo", "build", "--locked", "-q", "-p", "meshguard-cli"], cwd=ROOT, check=True, timeout=900)
    return ROOT / "target" / "debug" / "meshguard"


def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def find(objects, file, kind, name=None):
    matches = [o["object"] for o in objects
               if o["file"].endswith("/" + file) and o.get("kind") == kind and (name is None or o.get("name") == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''} in {file}, found {len(matches)}"
    return matches[0]


def wasm_configs(value):
    """Envoy Wasm filter configs anywhere under an EnvoyFilter patch value."""
    if isinstance(value, dict):
        if value.get("@type") == WASM_FILTER_TYPE:
            yield value
            return
        for child in value.values():
            yield from wasm_configs(child)
    elif isinstance(value, list):
        for child in value:
            yield from wasm_configs(child)


def plugin_configs(objects):
    """(label, JSON text) of every meshguard configuration the manifests carry,
    as the filter receives it."""
    found = []
    for o in objects:
        label = f"{o['file']} {o.get('kind')}/{o.get('name')}"
        if o.get("kind") == "WasmPlugin":
            # Istio serialises pluginConfig to JSON for the filter.
            found.append((label, json.dumps(o["object"]["spec"]["pluginConfig"])))
        elif o.get("kind") == "EnvoyFilter":
            for patch in o["object"]["spec"]["configPatches"]:
                for wasm in wasm_configs(patch["patch"].get("value", {})):
                    found.append((label, wasm["config"]["configuration"]["value"]))
        elif o.get("kind") == "ConfigMap" and "plugin.json" in o["object"].get("data", {}):
            found.append((label, o["object"]["data"]["plugin.json"]))
    return found


# --- (1) schemas ---------------------------------------------------------------------------------------------------

def test_every_manifest_matches_the_istio_and_kubernetes_schemas(objects):
    invalid = {f"{o['file']}#{o['index']} {o.get('kind')}/{o.get('name')}": o["errors"] for o in objects if o["errors"]}
    assert not invalid, json.dumps(invalid, indent=2)
    kinds = {o["kind"] for o in objects}
    for kind in ("WasmPlugin", "EnvoyFilter", "RequestAuthentication", "ServiceEntry", "DestinationRule", "Gateway",
                 "VirtualService", "Deployment", "Service"):
        assert kind in kinds, f"no {kind} under istio/"


def test_the_schema_check_catches_mistakes(node_modules, tmp_path):
    """The validator is not a rubber stamp: typical operator slips fail."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: meshguard, namespace: llm}
spec:
  url: oci://registry.example.com/meshguard-filter:0.1.0
  sha256: abc
  phase: BEFORE_AUTH
  failStrategy: FAIL_SOMETIMES
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: meshguard, namespace: llm}
spec:
  configPatches:
  - applyTo: HTTP_FLTER
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sidecar}
spec:
  selector: {matchLabels: {app: x}}
  template:
    spec:
      containers:
      - name: x
        ports: [{containerPort: http}]
---
apiVersion: example.com/v1
kind: Mystery
metadata: {name: m, namespace: llm}
""")
    errors = {o["kind"]: " | ".join(o["errors"]) for o in schema_report([bad])}
    assert "/spec/phase" in errors["WasmPlugin"] and "/spec/failStrategy" in errors["WasmPlugin"]
    assert "/spec/sha256" in errors["WasmPlugin"]
    assert "applyTo" in errors["EnvoyFilter"]
    assert "containerPort" in errors["Deployment"] and "metadata.namespace" in errors["Deployment"]
    assert "no schema" in errors["Mystery"]


def test_wasm_plugins_are_pinned_fail_closed_and_after_authn(objects):
    plugins = by_kind(objects, "WasmPlugin")
    assert len(plugins) >= 3
    for o in plugins:
        spec = o["object"]["spec"]
        where = f"{o['file']} WasmPlugin/{o['name']}"
        assert spec["url"].startswith("oci://") and "@sha256:" in spec["url"], where
        assert spec["url"].rsplit("@sha256:", 1)[1] == spec["sha256"], f"{where}: url digest and sha256 differ"
        assert spec["failStrategy"] == "FAIL_CLOSE", where
        # After Istio's authn filters: required for trusted_metadata, chosen for jwt.
        assert spec["phase"] == "AUTHZ", where
    for o in by_kind(objects, "EnvoyFilter"):
        for patch in o["object"]["spec"]["configPatches"]:
            for wasm in wasm_configs(patch["patch"].get("value", {})):
                remote = wasm["config"]["vm_config"]["code"]["remote"]
                assert remote["http_uri"]["uri"].startswith("https://") and len(remote["sha256"]) == 64


def test_request_authentication_variant_trusts_istios_metadata(objects):
    authn = find(objects, "requestauthentication.yaml", "RequestAuthentication")
    plugin = find(objects, "requestauthentication.yaml", "WasmPlugin")
    auth = plugin["spec"]["pluginConfig"]["auth"]
    assert auth["mode"] == "trusted_metadata"
    assert auth["metadata"]["payload_key"] == "payload"
    assert auth["issuer"] == authn["spec"]["jwtRules"][0]["issuer"]
    assert authn["spec"]["selector"] == plugin["spec"]["selector"]


def test_sidecar_manifest_is_consistent_with_the_plugin_configs(objects, cli):
    deployment = find(objects, "sidecar.yaml", "Deployment")
    service = find(objects, "sidecar.yaml", "Service")
    config_map = find(objects, "sidecar.yaml", "ConfigMap")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # Every pluginConfig names the sidecar by the Istio cluster of this Service.
    port = service["spec"]["ports"][0]["port"]
    fqdn = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    for label, text in plugin_configs(objects):
        sidecar = json.loads(text).get("sidecar")
        if sidecar:
            assert sidecar["cluster"] == f"outbound|{port}||{fqdn}", label
            assert sidecar["authority"] == fqdn, label

    # The sidecar applies the same policies as the filter it answers.
    document = json.loads(config_map["data"]["plugin.json"])
    assert document == find(objects, "wasmplugin.yaml", "WasmPlugin")["spec"]["pluginConfig"]
    envoy_filter = find(objects, "envoyfilter.yaml", "EnvoyFilter")
    [wasm] = [w for p in envoy_filter["spec"]["configPatches"] for w in wasm_configs(p["patch"].get("value", {}))]
    assert json.loads(wasm["config"]["configuration"]["value"]) == document

    # The roll-out annotation is the ConfigMap's policy hash.
    result = subprocess.run([cli, "validate", ISTIO_DIR / "sidecar.yaml"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    annotation = pod["metadata"]["annotations"]["meshguard.dev/plugin-config-hash"]
    assert f"policy_hash {annotation}" in result.stdout


def test_egress_gateway_keeps_identity_inside_and_originates_tls(objects):
    virtual_service = find(objects, "egress-gateway.yaml", "VirtualService")
    [out] = [r for r in virtual_service["spec"]["http"] if r["match"][0]["gateways"] != ["mesh"]]
    removed = set(out["headers"]["request"]["remove"])
    token_header = find(objects, "egress-gateway.yaml", "WasmPlugin")["spec"]["pluginConfig"]["auth"]["token_sources"][0]["header"]
    assert {token_header, "x-meshguard-subject", "x-meshguard-tenant", "x-meshguard-policy"} <= removed
    origination = find(objects, "egress-gateway.yaml", "DestinationRule", "openai-tls-origination")
    tls = origination["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]
    assert tls["mode"] == "SIMPLE" and tls["sni"] == "api.openai.com"
    assert find(objects, "egress-gateway.yaml", "ServiceEntry", "openai-https")["spec"]["exportTo"] == ["."]
    provider = find(objects, "provider-openai.yaml", "DestinationRule")
    assert provider["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["mode"] == "SIMPLE"


# --- (2) meshguard validate on the manifests -----------------------------------------------------------------------

def test_meshguard_validate_accepts_every_plugin_config(objects, cli):
    expected = plugin_configs(objects)
    assert len(expected) >= 6
    result = subprocess.run([cli, "validate", *manifests()], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # The CLI finds exactly the configurations the schema pass found, file by file.
    for path in manifests():
        want = sum(label.startswith(f"{path} ") for label, _ in expected)
        assert sum(line.startswith(f"OK {path} ") for line in lines) == want, f"{path}:\n{result.stdout}"


def test_meshguard_validate_names_the_field_in_a_manifest(cli, tmp_path):
    text = (ISTIO_DIR / "wasmplugin.yaml").read_text()
    assert "fail_mode: closed" in text
    bad = tmp_path / "wasmplugin.yaml"
    bad.write_text(text.replace("fail_mode: closed", "fail_mode: sideways", 1))
    result = subprocess.run([cli, "validate", bad], capture_output=True, text=True)
    assert result.returncode == 1
    assert "WasmPlugin/meshguard spec.pluginConfig" in result.stderr
    assert "invalid meshguard configuration at `policies.standard.fail_mode`" in result.stderr
    assert "line 1 column" not in result.stderr  # a position in JSON the operator never wrote


# --- (3) Envoy: the built filter starts with each configuration ----------------------------------------------------

def envoy_bootstrap(filters):
    """One inbound listener per Wasm filter config, as Istio would deliver it."""
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    listeners = []
    for index, (name, typed_config) in enumerate(filters):
        listeners.append({
            "name": f"inbound_{index}",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15100 + index}},
            "per_connection_buffer_limit_bytes": 5242880,
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": f"inbound_{index}",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/"}, "route": {"cluster": "app", "timeout": "0s"}}]}]},
                "http_filters": [{"name": name, "typed_config": typed_config}, router]}}]}],
        })
    clusters = [{"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}}}]}]}}
        for name, port in (("app", 8000), ("outbound|8081||meshguard-sidecar.meshguard-system.svc.cluster.local", 8081))]
    return {"static_resources": {"listeners": listeners, "clusters": clusters}}


def test_envoy_starts_the_built_filter_with_every_manifest_config(objects, tmp_path):
    """`envoy --mode validate` loads the .wasm and configures the plugin, so
    this is the filter's own start-up check on each document. The
    EnvoyFilter's Wasm config is used as written, with its remote code (which
    istio-agent fetches) replaced by the local build."""
    assert stack_mod.WASM_PATH.exists(), "build the filter first: cargo build --profile wasm -p meshguard-filter --target wasm32-wasip1"
    local_code = {"local": {"filename": str(stack_mod.WASM_PATH)}}
    filters = []
    for o in objects:
        if o.get("kind") == "WasmPlugin":
            filters.append((f"wasm_{len(filters)}", {"@type": WASM_FILTER_TYPE, "config": {
                "name": o["name"], "root_id": "meshguard",
                "vm_config": {"vm_id": "meshguard", "runtime": "envoy.wasm.runtime.v8", "code": local_code},
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": json.dumps(o["object"]["spec"]["pluginConfig"])}}}))
        elif o.get("kind") == "EnvoyFilter":
            for patch in o["object"]["spec"]["configPatches"]:
                for wasm in wasm_configs(patch["patch"].get("value", {})):
                    typed_config = copy.deepcopy(wasm)
                    typed_config["config"]["vm_config"]["code"] = local_code
                    filters.append((f"wasm_{len(filters)}", typed_config))
    assert len(filters) >= 5
    config = tmp_path / "istio-configs.json"
    config.write_text(json.dumps(envoy_bootstrap(filters)))
    result = subprocess.run([stack_mod.envoy_binary(), "--mode", "validate", "-c", str(config), "--concurrency", "1"],
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert output.count("meshguard configured") >= len(filters), output[-4000:]


# --- (4) OCI packaging ---------------------------------------------------------------------------------------------

def run_package_oci(out):
    result = subprocess.run([str(ROOT / "scripts" / "package-oci"), "--out", str(out), "--tag", "test", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_package_oci_builds_a_wasm_image_layout_istio_accepts(tmp_path):
    assert stack_mod.WASM_PATH.exists(), "build the filter first"
    wasm = stack_mod.WASM_PATH.read_bytes()
    summary = run_package_oci(tmp_path)
    layout = tmp_path / "meshguard-filter"

    def blob(digest):
        algorithm, hex_digest = digest.split(":")
        data = (layout / "blobs" / algorithm / hex_digest).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hex_digest, f"blob {digest} does not match its name"
        return data

    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "test"
    assert entry["digest"] == summary["manifest_digest"]
    manifest_bytes = blob(entry["digest"])
    assert len(manifest_bytes) == entry["size"]
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    # The Wasm image spec's compat variant: one standard tar+gzip layer.
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    layer_bytes = blob(layer["digest"])
    assert len(layer_bytes) == layer["size"]
    tar_bytes = gzip.decompress(layer_bytes)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        [member] = tar.getmembers()
        assert member.name == "plugin.wasm" and member.isfile()
        assert tar.extractfile(member).read() == wasm
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(blob(manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]
    assert summary["wasm_sha256"] == hashlib.sha256(wasm).hexdigest()

    # The tarball is the same layout, entries at its root.
    with tarfile.open(summary["tarball"]) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
        assert names == {str(p.relative_to(layout)) for p in layout.rglob("*") if p.is_file()}
        for name in names:
            assert tar.extractfile(name).read() == (layout / name).read_bytes()

    # Reproducible: the same .wasm gives the same digest to pin.
    assert run_package_oci(tmp_path / "again")["manifest_digest"] == summary["manifest_digest"]

    # Where skopeo is installed, a real OCI client reads the layout too.
    if shutil.which("skopeo"):
        for ref in (f"oci:{layout}:test", f"oci-archive:{summary['tarball']}:test"):
            inspected = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True, timeout=60)
            assert inspected.returncode == 0, inspected.stderr
            assert "sha256:" + hashlib.sha256(inspected.stdout).hexdigest() == summary["manifest_digest"]


# --- (5) meshguard scan ----------------------------------------------------------------------------------------------

def scan(cli, *args, body):
    result = subprocess.run([cli, "scan", *map(str, args)], input=json.dumps(body).encode(), capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert SECRET.encode() not in result.stdout, "the report repeats the secret"
    return json.loads(result.stdout)


def test_meshguard_scan_dry_runs_a_manifest_policy(cli):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"deploy with {SECRET}, mail jane@example.com"}]}
    report = scan(cli, ISTIO_DIR / "wasmplugin.yaml", body=body)
    assert report["policy"] == "standard" and report["direction"] == "request"
    assert report["verdict"] == "modify" and report["outcome"] == "rewrite"
    assert report["body"]["messages"][0]["content"] == "deploy with [AWS_KEY_1], mail [EMAIL_1]"
    assert {f["rule_id"] for f in report["findings"]} == {"aws_access_key_id", "email"}
    assert all(f["field"] == "messages[0].content" and f["offsets"] for f in report["findings"])

    # The finance policy refuses secrets: the client would get this 403.
    report = scan(cli, ISTIO_DIR / "wasmplugin.yaml", "--policy", "finance", body=body)
    assert report["verdict"] == "block" and report["outcome"] == "refuse"
    assert report["error"]["status"] == 403
    assert report["error"]["body"]["error"]["code"] == "aws_access_key_id"
    assert report["body"] is None

    # An answer from the model is scanned too.
    answer = {"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": f"use {SECRET}"}, "finish_reason": "stop"}]}
    report = scan(cli, ISTIO_DIR / "wasmplugin.yaml", "--response", body=answer)
    assert report["direction"] == "response" and report["verdict"] == "modify"
    assert report["body"]["choices"][0]["message"]["content"] == "use [AWS_KEY_1]"


def test_meshguard_scan_needs_a_known_policy(cli):
    result = subprocess.run([cli, "scan", ISTIO_DIR / "wasmplugin.yaml", "--policy", "nope"], input="{}",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no policy `nope`" in result.stderr and "finance, standard" in result.stderr


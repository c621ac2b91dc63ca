"""End-to-end harness: a real Envoy (V8) loading the freshly built filter,
the sidecar and the demo upstream, each on free loopback ports, torn down
even when a test fails."""

import json
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import demo_token  # noqa: E402
import stack as stack_mod  # noqa: E402


def demo_plugin_config():
    return json.loads(stack_mod.PLUGIN_CONFIG.read_text())


class Client:
    """Plain HTTP against one stack, for tests that need raw status codes.
    Requests carry a valid demo JWT unless `token=None` is passed."""

    def __init__(self, stack, subject="alice", claims=None):
        self.stack = stack
        self.token = demo_token.mint(subject, claims)

    def post(self, path, body, headers=None, raw=False, token=""):
        data = body if raw else json.dumps(body).encode()
        request = urllib.request.Request(self.stack.base_url + path, data=data, method="POST")
        request.add_header("content-type", "application/json")
        token = self.token if token == "" else token
        if token is not None:
            request.add_header("authorization", "Bearer " + token)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def chat(self, text, headers=None, token="", **extra):
        return self.post("/v1/chat/completions",
                         {"model": "demo", "messages": [{"role": "user", "content": text}], **extra}, headers,
                         token=token)

    def upstream_requests(self, port=None):
        url = f"http://127.0.0.1:{port or self.stack.ports.upstream}/demo/requests"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())["requests"]

    def access_records(self):
        """Access-log lines, each with its meshguard decision record parsed."""
        records = []
        if not self.stack.access_log.exists():
            return records
        for line in self.stack.access_log.read_text().splitlines():
            entry = json.loads(line)
            decision = entry.get("meshguard")
            entry["meshguard"] = json.loads(decision) if decision else None
            records.append(entry)
        return records

    def record_for(self, request_id, timeout=5.0):
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.access_records():
                if entry.get("request_id") == request_id:
                    return entry
            time.sleep(0.05)
        raise AssertionError(f"no access-log line for request {request_id}")


def assert_plugin_start_fails(make_stack, config, path):
    """Envoy must refuse to start with `config`, naming `path` in its log."""
    import time
    stack = make_stack(config, sidecar=False, wait_envoy=False)
    envoy = stack.processes[-1]
    deadline = time.monotonic() + 60
    while envoy.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not envoy.alive(), "Envoy started with a bad plugin configuration"
    assert envoy.popen.returncode != 0
    log = stack.envoy_log.read_text()
    assert f"invalid meshguard configuration at `{path}`" in log, log[-3000:]


def new_request_id():
    return "test-" + uuid.uuid4().hex


@pytest.fixture
def make_stack(tmp_path_factory):
    """Starts a stack with a given plugin configuration; stops all at teardown."""
    started = []

    def start(plugin_config=None, sidecar=True, wait_envoy=True, pre_filters=None, template=None, wasm_path=None):
        run_dir = tmp_path_factory.mktemp("stack")
        text = json.dumps(plugin_config) if isinstance(plugin_config, dict) else (plugin_config or "")
        stack = stack_mod.Stack(stack_mod.Ports.free(), run_dir, plugin_config_text=text, pre_filters=pre_filters,
                                template=template or stack_mod.ENVOY_TEMPLATE,
                                wasm_path=wasm_path or stack_mod.WASM_PATH)
        started.append(stack)
        stack.start_upstream()
        if template:
            stack.start_upstream("self-hosted")
        if sidecar:
            sidecar_config = run_dir / "plugin.json"
            sidecar_config.write_text(stack.plugin_config_text)
            stack.sidecar_plugin_config = sidecar_config
            stack.start_sidecar()
        stack.start_envoy(wait=wait_envoy)
        return stack

    yield start
    for stack in started:
        stack.stop()


@pytest.fixture(scope="session")
def demo_stack(tmp_path_factory):
    """The demo configuration, shared by the tests that only send requests."""
    stack = stack_mod.Stack(stack_mod.Ports.free(), tmp_path_factory.mktemp("demo"))
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(demo_stack):
    return Client(demo_stack)

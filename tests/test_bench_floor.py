"""The reference filter that `scripts/bench-load --floor` measures
(benches/floor-filter) does what the load results say it does: `pass` leaves
everything alone, `read` reads both bodies whole and hands them on
unchanged, and a mode it does not know stops the plugin."""

import json
import subprocess
import time

import pytest

from conftest import ROOT, Client, new_request_id

FLOOR_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "meshguard_bench_floor.wasm"


@pytest.fixture(scope="module")
def floor_wasm():
    subprocess.run(["cargo", "build", "--quiet", "--release", "--locked", "-p", "meshguard-bench-floor",
                    "--target", "wasm32-wasip1"], check=True, cwd=ROOT)
    return FLOOR_WASM


@pytest.mark.parametrize("mode", ["pass", "read"])
def test_reference_filter_passes_requests_unchanged(make_stack, floor_wasm, mode):
    client = Client(make_stack(mode, sidecar=False, wasm_path=floor_wasm))
    request_id = new_request_id()
    text = "Write to jane.doe@example.org about the roadmap. " * 200  # several body chunks
    status, _, body = client.chat(text, headers={"x-request-id": request_id})
    assert status == 200
    answer = json.loads(body)["choices"][0]["message"]["content"]
    assert text.strip() in answer  # the demo upstream echoes it: nothing redacted, nothing lost
    assert json.loads(client.upstream_requests()[-1]["body"])["messages"][0]["content"] == text
    record = client.record_for(request_id)["meshguard"]
    if mode == "pass":
        assert record is None
    else:
        # Both bodies (and both header maps) were read whole.
        assert record["seen_bytes"] > len(text) + len(body)


def test_reference_filter_refuses_an_unknown_mode(make_stack, floor_wasm):
    stack = make_stack("inspect", sidecar=False, wait_envoy=False, wasm_path=floor_wasm)
    envoy = stack.processes[-1]
    deadline = time.monotonic() + 60
    while envoy.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not envoy.alive(), "Envoy started the reference filter with an unknown mode"

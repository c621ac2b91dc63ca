"""The foundation, end to end through a real Envoy: pass-through, body caps,
configuration errors, the decision record, and the real openai SDK."""

import gzip
import json
import subprocess
import time

import openai
import pytest

from conftest import ROOT, Client, assert_plugin_start_fails, demo_plugin_config, demo_token, new_request_id, stack_mod


def test_every_envoy_config_validates(tmp_path):
    """Full bootstraps are templates; `*-filter.yaml` files are filters that
    go in front of meshguard, validated inside the demo bootstrap."""
    envoy_dir = ROOT / "envoy"
    snippets = sorted(envoy_dir.glob("*-filter.yaml"))
    templates = sorted(set(envoy_dir.glob("*.yaml")) - set(snippets))
    assert templates and snippets, "no Envoy configs found"
    cases = [(t, None, False) for t in templates] + [(stack_mod.ENVOY_TEMPLATE, s, False) for s in snippets]
    cases.append((stack_mod.ENVOY_TEMPLATE, None, True))  # bare Envoy, for the load scripts
    for template, snippet, bare in cases:
        rendered = tmp_path / f"{template.stem}-{snippet.stem if snippet else 'plain'}-{bare}.yaml"
        rendered.write_text(stack_mod.render_envoy_config(
            stack_mod.Ports(), stack_mod.PLUGIN_CONFIG.read_text(), tmp_path / "access.log", template=template,
            pre_filters=snippet, bare=bare))
        if "meshguard-filter-begin" in template.read_text():
            assert ("envoy.filters.http.wasm" in rendered.read_text()) != bare
        result = subprocess.run([stack_mod.envoy_binary(), "--mode", "validate", "-c", str(rendered)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{rendered.name}:\n{result.stdout}\n{result.stderr}"


def test_chat_request_passes_and_reply_echoes_it(client):
    request_id = new_request_id()
    status, _, body = client.chat("Hello through meshguard", headers={"x-request-id": request_id})
    assert status == 200
    reply = json.loads(body)
    assert reply["choices"][0]["message"]["content"] == "Hello through meshguard"
    assert reply["usage"]["total_tokens"] > 0


def test_body_over_cap_gets_413_and_upstream_sees_nothing(client):
    marker = "oversized-" + new_request_id()
    big = marker + ("x" * (1024 * 1024 + 10))
    status, headers, body = client.chat(big)
    assert status == 413
    assert headers.get("content-type") == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large"
    assert error["type"] == "invalid_request_error"
    assert "1048576" in error["message"]
    assert not any(marker in r["body"] for r in client.upstream_requests())


def test_chunked_body_over_cap_gets_413(client):
    """Without content-length the cap is enforced while buffering."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", client.stack.ports.listen, timeout=30)
    conn.putrequest("POST", "/v1/chat/completions")
    conn.putheader("content-type", "application/json")
    conn.putheader("authorization", "Bearer " + client.token)
    conn.putheader("transfer-encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * 65536
    try:
        for _ in range(20):  # 1.25 MiB in total
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # Envoy may answer and close before the client finishes sending.
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "request_too_large"


def test_malformed_json_gets_400(client):
    status, _, body = client.post("/v1/chat/completions", b'{"model": "demo", "messages": [', raw=True)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_json"


def test_compressed_body_is_decoded_scanned_and_re_encoded(client):
    marker = "gzip-" + new_request_id()
    payload = gzip.compress(json.dumps({"model": "demo", "messages": [
        {"role": "user", "content": f"{marker} mail jane.doe@example.org"}]}).encode())
    status, _, body = client.post("/v1/chat/completions", payload, headers={"content-encoding": "gzip"}, raw=True)
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == f"{marker} mail [EMAIL_1]"
    seen = [r for r in client.upstream_requests() if marker in r["body"]][-1]
    assert seen["headers"]["content-encoding"] == "gzip" and "jane.doe" not in seen["body"]


def test_compression_bomb_is_refused(client):
    bomb = gzip.compress(json.dumps({"model": "demo", "messages": [
        {"role": "user", "content": "a" * (8 * 1024 * 1024)}]}).encode())
    assert len(bomb) < 64 * 1024
    status, _, body = client.post("/v1/chat/completions", bomb, headers={"content-encoding": "gzip"}, raw=True)
    assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"


def test_unscannable_bodies_follow_the_policy(make_stack):
    config = demo_plugin_config()
    config["policies"]["standard"].update(compressed_requests="reject")
    config["policies"]["open"] = {"malformed_json": "forward", "other_media_types": "forward"}
    config["policy_rules"] = [{"policy": "open", "when": {"claim": "groups", "contains": "legacy"}}]
    stack = make_stack(config, sidecar=False)
    strict, lenient = Client(stack), Client(stack, "old-app", {"groups": ["legacy"]})
    zipped = gzip.compress(b'{"model":"demo","messages":[]}')
    status, _, body = strict.post("/v1/chat/completions", zipped, headers={"content-encoding": "gzip"}, raw=True)
    assert status == 415 and json.loads(body)["error"]["code"] == "unsupported_content_encoding"
    status, _, body = strict.post("/v1/chat/completions", b"\x00\x01binary", headers={"content-type": "application/octet-stream"}, raw=True)
    assert status == 415 and json.loads(body)["error"]["code"] == "unsupported_media_type"
    request_id = new_request_id()
    status, _, _ = lenient.post("/v1/chat/completions", b"{broken", headers={"x-request-id": request_id}, raw=True)
    assert status == 400  # the demo upstream refuses it; meshguard let it through
    record = lenient.record_for(request_id)["meshguard"]
    assert record["verdict"] == "log" and record["reason"] == "unscanned_malformed_json"


def test_client_cannot_forge_internal_headers(client):
    marker = "forge-" + new_request_id()
    status, _, _ = client.chat(marker, headers={"x-meshguard-policy": "admin", "X-Meshguard-Subject": "root"})
    assert status == 200
    seen = [r for r in client.upstream_requests() if marker in r["body"]][-1]["headers"]
    assert seen.get("x-meshguard-policy") == "standard"
    assert seen.get("x-meshguard-subject") == "alice"


def test_access_log_carries_the_decision_record(client):
    request_id = new_request_id()
    status, _, _ = client.chat("record me", headers={"x-request-id": request_id})
    assert status == 200
    entry = client.record_for(request_id)
    record = entry["meshguard"]
    assert record["schema"] == "meshguard.decision/v1"
    assert record["request_id"] == request_id
    assert record["verdict"] == "allow"
    assert record["policy"] == "standard"
    assert record["model"] == "demo"
    assert record["subject"] == "alice"
    assert record["issuer"] == "https://demo.meshguard.dev"
    assert record["route"]["path"] == "/v1/chat/completions"
    assert record["request_bytes"] > 0 and record["response_bytes"] > 0
    assert len(record["policy_hash"]) == 16
    assert "record me" not in json.dumps(record)


def test_refusal_is_recorded_with_its_reason(client):
    request_id = new_request_id()
    status, _, _ = client.post("/v1/chat/completions", b"{not json", headers={"x-request-id": request_id}, raw=True)
    assert status == 400
    record = client.record_for(request_id)["meshguard"]
    assert record["verdict"] == "reject"
    assert record["reason"] == "invalid_json"
    assert record["status"] == 400


def decision_lines(stack, request_id, wait_s):
    """Envoy log lines carrying the decision record of `request_id`."""
    deadline = time.monotonic() + wait_s
    while True:
        lines = [l for l in stack.envoy_log.read_text().splitlines() if "meshguard.decision" in l and request_id in l]
        if lines or time.monotonic() >= deadline:
            return lines
        time.sleep(0.05)


def test_decision_record_is_logged_as_a_line_when_asked(make_stack):
    config = demo_plugin_config()
    config["audit"] = {"log_decisions": True}
    client = Client(make_stack(config, sidecar=False))
    request_id = new_request_id()
    client.chat("log line please", headers={"x-request-id": request_id})
    lines = decision_lines(client.stack, request_id, wait_s=5)
    assert lines, "decision record not found in Envoy's log"
    record = json.loads(lines[-1].split("meshguard.decision ", 1)[1])
    assert record["request_id"] == request_id


def test_decision_record_is_only_in_the_access_log_by_default(client):
    request_id = new_request_id()
    client.chat("no log line please", headers={"x-request-id": request_id})
    assert client.record_for(request_id)["meshguard"]["request_id"] == request_id
    assert decision_lines(client.stack, request_id, wait_s=0.5) == []


def test_openai_sdk_works_unchanged(demo_stack):
    sdk = openai.OpenAI(base_url=demo_stack.base_url + "/v1", api_key=demo_token.mint("sdk-user"), max_retries=0)
    completion = sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "sdk says hi"}])
    assert completion.choices[0].message.content == "sdk says hi"
    assert completion.usage.total_tokens > 0


def test_openai_sdk_streams_unchanged(demo_stack):
    sdk = openai.OpenAI(base_url=demo_stack.base_url + "/v1", api_key=demo_token.mint("sdk-user"), max_retries=0)
    stream = sdk.chat.completions.create(model="demo", stream=True, stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": "a streamed reply, chunk by chunk"}])
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert len(pieces) > 1, "expected several deltas"
    assert "".join(pieces) == "a streamed reply, chunk by chunk"
    assert usage is not None and usage.completion_tokens > 0


def test_openai_sdk_sees_meshguard_errors_as_api_errors(demo_stack):
    sdk = openai.OpenAI(base_url=demo_stack.base_url + "/v1", api_key=demo_token.mint("sdk-user"), max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "y" * (1024 * 1024 + 1)}])
    assert raised.value.status_code == 413
    assert raised.value.body["code"] == "request_too_large"


@pytest.mark.parametrize("mutate, path", [
    (lambda c: c["policies"]["standard"].update(fail_mode="sideways"), "policies.standard.fail_mode"),
    (lambda c: c.update(default_policy="nope"), "default_policy"),
    (lambda c: c["limits"].update(max_request_bytes=0), "limits.max_request_bytes"),
    (lambda c: c.update(colour="blue"), "colour"),
    (lambda c: c["auth"]["jwks"]["keys"][0].update(n="!!not-base64url!!"), "auth.jwks.keys[0].n"),
    (lambda c: c.update(policy_rules=[{"policy": "ghost", "when": {"claim": "groups", "contains": "x"}}]),
     "policy_rules[0].policy"),
])
def test_bad_plugin_config_fails_plugin_start_with_field_path(make_stack, mutate, path):
    config = demo_plugin_config()
    mutate(config)
    assert_plugin_start_fails(make_stack, config, path)


def review_config(fail_mode):
    config = demo_plugin_config()
    config["policies"]["standard"].update(sidecar_review=True, fail_mode=fail_mode)
    return config


def test_sidecar_review_allows_a_clean_request(make_stack):
    client = Client(make_stack(review_config("closed")))
    request_id = new_request_id()
    status, _, body = client.chat("reviewed and fine", headers={"x-request-id": request_id})
    assert status == 200, body
    record = client.record_for(request_id)["meshguard"]
    assert record["escalations"][0]["outcome"] == "allow"
    assert record["degraded"] is False


def test_sidecar_outage_fails_closed_with_503(make_stack):
    client = Client(make_stack(review_config("closed"), sidecar=False))
    request_id = new_request_id()
    status, _, body = client.chat("nobody home", headers={"x-request-id": request_id})
    assert status == 503
    assert json.loads(body)["error"]["code"] == "sidecar_unavailable"
    assert not any("nobody home" in r["body"] for r in client.upstream_requests())
    record = client.record_for(request_id)["meshguard"]
    assert record["degraded"] is True and record["verdict"] == "unavailable"


def test_sidecar_outage_fails_open_when_policy_says_so(make_stack):
    client = Client(make_stack(review_config("open"), sidecar=False))
    request_id = new_request_id()
    status, _, body = client.chat("let me through", headers={"x-request-id": request_id})
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "let me through"
    record = client.record_for(request_id)["meshguard"]
    assert record["degraded"] is True and record["verdict"] == "allow"


def test_response_over_cap_is_replaced_by_an_error(make_stack):
    config = demo_plugin_config()
    config["limits"]["max_response_bytes"] = 2048
    client = Client(make_stack(config, sidecar=False))
    request_id = new_request_id()
    status, _, body = client.chat("z" * 4096, headers={"x-request-id": request_id})
    assert status == 502
    error = json.loads(body)["error"]
    assert error["code"] == "response_too_large"
    assert "zzzz" not in body.decode()
    record = client.record_for(request_id)["meshguard"]
    assert record["verdict"] == "reject" and record["reason"] == "response_too_large"

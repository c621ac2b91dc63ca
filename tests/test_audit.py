"""SOC-grade audit through Envoy: records that validate against the published
schema, no sensitive text in any log or metric, canaries, shadow policies,
token accounting."""

import base64
import json
import re
import urllib.request

import jsonschema
import openai
import pytest

from conftest import ROOT, Client, demo_plugin_config, demo_token, new_request_id

SCHEMA = json.loads((ROOT / "docs" / "decision-record.schema.json").read_text())
AWS_KEY = "AKIAZ7Q3K5LMN2P4R6TW"
GITHUB_TOKEN = "ghp_" + "x7Kq2LmN9pR4tV6wY8zA1bC3dE5fG7hJ0kM2"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.org"
SENSITIVE = [AWS_KEY, GITHUB_TOKEN, CARD, "4111111111111111", EMAIL]


def audit_config():
    config = demo_plugin_config()
    config["detectors"] = {"fingerprint_key": "soc-test-fingerprint-key-0123456789"}
    config["policies"]["standard"].update(canary=True, shadow="strict")
    config["policies"]["strict"] = {"detectors": {"category:pii": "redact", "category:secret": "block"}}
    return config


@pytest.fixture(scope="module")
def audit_stack(tmp_path_factory):
    from conftest import stack_mod
    stack = stack_mod.Stack(stack_mod.Ports.free(), tmp_path_factory.mktemp("audit"),
                            plugin_config_text=json.dumps(audit_config()))
    try:
        stack.start_upstream()
        stack.start_envoy()
        yield stack
    finally:
        stack.stop()


def reply_headers(text, chunk=1):
    return {"x-demo-reply": base64.b64encode(text.encode()).decode(), "x-demo-chunk-size": str(chunk)}


def test_records_validate_and_nothing_sensitive_is_logged(audit_stack):
    client = Client(audit_stack, "soc-user", {"tenant": "acme"})
    secret_prompt = f"deploy with {AWS_KEY} and {GITHUB_TOKEN}, bill {CARD}, mail {EMAIL}"
    ids = []
    for headers, kwargs in [
        ({}, {"text": secret_prompt}),                                       # redacted request
        (reply_headers(secret_prompt, 10_000), {"text": "hi"}),              # redacted answer
        (reply_headers(secret_prompt, 1), {"text": "hi", "stream": True}),   # redacted stream
        ({}, {"text": "clean prompt"}),
        ({}, {"text": secret_prompt, "token": None}),                        # 401
    ]:
        request_id = new_request_id()
        text = kwargs.pop("text")
        client.chat(text, headers={**headers, "x-request-id": request_id}, **kwargs)
        ids.append(request_id)
    records = [client.record_for(i)["meshguard"] for i in ids]
    for record in records:
        jsonschema.validate(record, SCHEMA)
    assert records[0]["verdict"] == "modify" and records[0]["prompt_fingerprint"]
    assert {f["direction"] for f in records[1]["findings"]} == {"response"}
    assert records[4]["verdict"] == "reject" and records[4]["status"] == 401
    # The same secret in two requests has the same keyed fingerprint.
    fp = lambda r, rule: [f["fingerprints"] for f in r["findings"] if f["rule_id"] == rule]  # noqa: E731
    assert fp(records[0], "aws_access_key_id") == fp(records[1], "aws_access_key_id") != []

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{audit_stack.ports.admin}/stats/prometheus").read().decode()
    assert 'meshguard_detector_hits_total{category="secret",rule="aws_access_key_id",direction="request"}' in metrics
    assert 'meshguard_requests_total{verdict="modify",policy="standard"}' in metrics
    for path in (audit_stack.access_log, audit_stack.envoy_log):
        text = path.read_text()
        for value in SENSITIVE:
            assert value not in text, f"{value!r} found in {path.name}"
    for value in SENSITIVE:
        assert value not in metrics


def test_canary_leak_is_caught_in_a_one_character_stream(audit_stack):
    request_id = new_request_id()
    sdk = openai.OpenAI(base_url=audit_stack.base_url + "/v1", api_key=demo_token.mint("leaky"), max_retries=0)
    stream = sdk.chat.completions.create(
        model="demo", stream=True,
        messages=[{"role": "system", "content": "You are the billing assistant."}, {"role": "user", "content": "hi"}],
        extra_headers={"x-demo-leak-system": "1", "x-demo-chunk-size": "1", "x-request-id": request_id})
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert raised.value.code == "system_prompt_leak"
    text = "".join(received)
    assert text.startswith("My instructions are: You are the billing assistant.")
    assert not re.search(r"mgc[0-9a-f]{16}", text), "the whole canary reached the client"
    record = Client(audit_stack).record_for(request_id)["meshguard"]
    assert record["canary"] is True
    assert record["verdict"] == "block" and record["reason"] == "system_prompt_leak"


def test_canary_leak_in_a_whole_answer_is_not_delivered(audit_stack):
    client = Client(audit_stack)
    request_id = new_request_id()
    with pytest.raises(Exception):
        client.chat("hi", headers={"x-demo-leak-system": "1", "x-request-id": request_id})
    record = client.record_for(request_id)["meshguard"]
    assert record["reason"] == "system_prompt_leak"


def test_shadow_policy_verdict_is_recorded_without_changing_traffic(audit_stack):
    client = Client(audit_stack)
    request_id = new_request_id()
    status, _, body = client.chat(f"{request_id} use {AWS_KEY}", headers={"x-request-id": request_id})
    assert status == 200  # the enforced policy redacts; the candidate would block
    assert AWS_KEY not in body.decode()
    assert any(request_id in r["body"] for r in client.upstream_requests())
    record = client.record_for(request_id)["meshguard"]
    assert record["verdict"] == "modify"
    assert record["shadow"] == {"policy": "strict", "verdict": "block", "reason": "aws_access_key_id",
                                "findings": 1, "differs": True}
    status, _, _ = client.chat("nothing sensitive", headers={"x-request-id": (rid := new_request_id())})
    assert client.record_for(rid)["meshguard"]["shadow"]["differs"] is False


def test_token_usage_is_recorded_and_spends_the_budget(make_stack):
    config = demo_plugin_config()
    config["policies"]["standard"]["rate_limit"] = {"tokens_per_hour": 30}
    stack = make_stack(config, sidecar=False)
    client = Client(stack, "budget-user")
    request_id = new_request_id()
    words = " ".join(["word"] * 20)
    status, _, _ = client.chat(words, headers={"x-request-id": request_id})
    assert status == 200
    usage = client.record_for(request_id)["meshguard"]["usage"]
    assert usage["total_tokens"] >= 30
    status, headers, body = client.chat("again")
    assert status == 429 and json.loads(body)["error"]["code"] == "token_budget_exceeded"
    assert int(headers.get("retry-after", headers.get("Retry-After"))) > 0
    assert Client(stack, "other-user").chat("fresh budget")[0] == 200

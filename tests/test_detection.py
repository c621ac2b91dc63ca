"""Detection end to end through Envoy: secrets and PII in prompts reach the
upstream redacted, or are blocked before the upstream sees anything."""

import json

import openai
import pytest

from conftest import Client, assert_plugin_start_fails, demo_plugin_config, demo_token, new_request_id

AWS_KEY = "AKIAZ7Q3K5LMN2P4R6TW"
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.org"


def upstream_body(client, marker):
    bodies = [r["body"] for r in client.upstream_requests() if marker in r["body"]]
    assert bodies, "the upstream never saw the request"
    return bodies[-1]


def test_secret_and_card_reach_the_upstream_redacted(client):
    request_id = new_request_id()
    marker = "redact-" + request_id
    prompt = f"{marker}: deploy with {AWS_KEY} and bill card {CARD}, mail {EMAIL}"
    status, _, body = client.chat(prompt, headers={"x-request-id": request_id})
    assert status == 200, body
    echoed = json.loads(body)["choices"][0]["message"]["content"]
    assert AWS_KEY not in echoed and "1111 1111" not in echoed and EMAIL not in echoed
    assert "[CARD_1]" in echoed and "[EMAIL_1]" in echoed
    assert echoed.startswith(marker + ": deploy with ")
    seen = upstream_body(client, marker)
    assert AWS_KEY not in seen and EMAIL not in seen
    record = client.record_for(request_id)["meshguard"]
    assert record["verdict"] == "modify"
    rules = {f["rule_id"]: f for f in record["findings"]}
    assert rules["aws_access_key_id"]["category"] == "secret"
    assert rules["credit_card"]["category"] == "pii"
    assert rules["email"]["field"] == "messages[0].content"
    start, end = rules["email"]["offsets"][0]
    assert prompt.encode()[start:end].decode() == EMAIL
    serialized = json.dumps(record)
    # The card's digits, not a fragment: "4111" also turns up by chance in
    # the record's hex ids and fingerprints.
    assert AWS_KEY not in serialized and EMAIL not in serialized
    assert CARD not in serialized and CARD.replace(" ", "") not in serialized and "1111 1111" not in serialized


AZURE_STORAGE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_AD_SECRET = "xyz8Q~C3J27XDCG2LmlZGEONYlgCtjfIZ4SOcMz"


def test_values_after_long_prefixes_and_wide_spaces_are_redacted(client):
    """The engine's windows end with a value (past the bounded text before
    it) and reach back over a three-byte space: the values are found whole."""
    request_id = new_request_id()
    marker = "values-" + request_id
    prompt = (f"{marker}: storage AccountKey = '{AZURE_STORAGE_KEY}' and then a long sentence of prose "
              f"without commas goes on for a while\u2028{AZURE_AD_SECRET} end")
    status, _, body = client.chat(prompt, headers={"x-request-id": request_id})
    assert status == 200, body
    echoed = json.loads(body)["choices"][0]["message"]["content"]
    seen = upstream_body(client, marker)
    for value in (AZURE_STORAGE_KEY, AZURE_AD_SECRET):
        assert value not in echoed and value not in seen
    assert echoed.endswith(" end") and "a long sentence of prose" in echoed
    rules = {f["rule_id"] for f in client.record_for(request_id)["meshguard"]["findings"]}
    assert {"azure_storage_key", "azure_ad_client_secret"} <= rules, rules


def test_pasted_commands_lose_their_credentials(client):
    """What people paste from a terminal: `curl -u user:password`, an
    `Authorization: Basic` header, a JCB card and a number with an
    extension. Each reaches the upstream redacted, the command around it
    intact."""
    request_id = new_request_id()
    marker = "pasted-" + request_id
    prompt = (f"{marker}: why does curl -s -X POST https://api.example.com/v2/jobs \\\n  -u deploy:yqDVtkqPECri "
              "-H 'Authorization: Basic ZGVwbG95OlMzY3IzdFB3OXg=' fail? Card 3598 8993 2305 3410, "
              "desk 345-899-3560x4587.")
    status, _, body = client.chat(prompt, headers={"x-request-id": request_id})
    assert status == 200, body
    seen = upstream_body(client, marker)
    for value in ("deploy:yqDVtkqPECri", "ZGVwbG95OlMzY3IzdFB3OXg=", "3598 8993 2305 3410", "345-899-3560x4587", "x4587"):
        assert value not in seen, value
    assert "curl -s -X POST https://api.example.com/v2/jobs" in seen and "-H 'Authorization: Basic " in seen
    rules = {f["rule_id"] for f in client.record_for(request_id)["meshguard"]["findings"]}
    assert {"url_password", "bearer_token", "credit_card", "phone"} <= rules, rules


def test_phone_numbers_known_by_their_labels_are_redacted(client):
    # National numbers without a trunk 0 are only taken with a label: a
    # phrase before them or a signature's label after them.
    marker = "labels-" + new_request_id()
    prompt = f"{marker}: call me on 450 0840, or 781 1704 office, 3660170548-Fax; ticket 4210 office"
    status, _, body = client.chat(prompt)
    assert status == 200, body
    echoed = json.loads(body)["choices"][0]["message"]["content"]
    assert echoed == f"{marker}: call me on [PHONE_1], or [PHONE_2] office, [PHONE_3]-Fax; ticket 4210 office"
    seen = upstream_body(client, marker)
    for value in ("450 0840", "781 1704", "3660170548"):
        assert value not in seen, value


def test_published_example_keys_pass_and_other_keys_do_not(client):
    # A Google key from the Firebase SDK's tests grants nothing; a fresh one would.
    published, fresh = "AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs", "AIzaSyQm4r8Tz2LpX9vB7nK3wE5yH1cJ6dF0gUa"
    request_id = new_request_id()
    status, _, body = client.chat(f"firebase apiKey {published}, maps key {fresh}", headers={"x-request-id": request_id})
    assert status == 200, body
    echoed = json.loads(body)["choices"][0]["message"]["content"]
    assert echoed == f"firebase apiKey {published}, maps key [GOOGLE_API_KEY_1]"
    findings = client.record_for(request_id)["meshguard"]["findings"]
    assert [(f["rule_id"], f["count"]) for f in findings] == [("google_api_key", 1)]


def test_the_same_value_gets_the_same_placeholder(client):
    status, _, body = client.chat(f"write to {EMAIL}, cc {EMAIL} and ops@example.net")
    assert status == 200
    echoed = json.loads(body)["choices"][0]["message"]["content"]
    assert echoed == "write to [EMAIL_1], cc [EMAIL_1] and [EMAIL_2]"


@pytest.mark.parametrize("disguised", [
    "４１１１ １１１１ １１１１ １１１１",          # full-width digits
    "jane.doe\u200b@example.org",                  # zero-width space inside an email
    "4111-1111-1111-1111",                         # digits split by dashes
])
def test_obfuscated_values_are_still_redacted(client, disguised):
    status, _, body = client.chat(f"note: {disguised} end")
    assert status == 200
    echoed = json.loads(body)["choices"][0]["message"]["content"]
    assert echoed.startswith("note: [") and echoed.endswith("] end"), echoed


def test_every_text_field_is_scanned(client):
    marker = "fields-" + new_request_id()
    status, _, _ = client.post("/v1/chat/completions", {
        "model": "demo",
        "messages": [
            {"role": "system", "content": f"{marker} operator contact {EMAIL}"},
            {"role": "user", "content": [{"type": "text", "text": f"card {CARD}"}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "send", "arguments": json.dumps({"token": AWS_KEY})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": f"sent to {EMAIL}"},
        ]})
    assert status == 200
    seen = upstream_body(client, marker)
    for value in (EMAIL, AWS_KEY, "4111"):
        assert value not in seen
    json.loads(seen)  # still valid JSON


def test_clean_prompt_is_forwarded_byte_for_byte(client):
    marker = "clean-" + new_request_id()
    raw = ('{"model":"demo",  "messages":[{"role":"user","content":"' + marker + ' nothing to see"}],'
           '"temperature":0.7}').encode()
    status, _, _ = client.post("/v1/chat/completions", raw, raw=True)
    assert status == 200
    assert upstream_body(client, marker) == raw.decode()


def test_openai_sdk_stream_shows_redacted_echo(demo_stack):
    sdk = openai.OpenAI(base_url=demo_stack.base_url + "/v1", api_key=demo_token.mint("sdk-user"), max_retries=0)
    stream = sdk.chat.completions.create(model="demo", stream=True,
                                         messages=[{"role": "user", "content": f"mail {EMAIL} now"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "mail [EMAIL_1] now"


def block_config():
    config = demo_plugin_config()
    config["policies"]["standard"]["detectors"] = {"category:pii": "redact", "category:secret": "block"}
    return config


def test_block_action_returns_403_and_upstream_sees_nothing(make_stack):
    client = Client(make_stack(block_config(), sidecar=False))
    request_id = new_request_id()
    marker = "block-" + request_id
    status, headers, body = client.chat(f"{marker} key {AWS_KEY} card {CARD}", headers={"x-request-id": request_id})
    assert status == 403
    error = json.loads(body)["error"]
    assert error["code"] == "aws_access_key_id"
    assert AWS_KEY not in body.decode()
    assert not any(marker in r["body"] for r in client.upstream_requests())
    record = client.record_for(request_id)["meshguard"]
    assert record["verdict"] == "block" and record["reason"] == "aws_access_key_id"


def test_keywords_custom_detectors_and_allowed_values_from_config(make_stack):
    config = demo_plugin_config()
    config["detectors"] = {
        "keywords": [{"id": "project_names", "words": ["Bluebird", "Project Falcon"]}],
        "custom": [{"id": "employee_id", "pattern": r"\bEMP-[0-9]{6}\b", "label": "EMPLOYEE"}],
        "allow_values": ["help@acme.example", "EMP-000001"],
    }
    config["policies"]["standard"]["detectors"] = {"project_names": "block", "employee_id": "redact",
                                                   "category:pii": "redact"}
    client = Client(make_stack(config, sidecar=False))
    status, _, body = client.chat("ask EMP-123456 about it")
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "ask [EMPLOYEE_1] about it"
    # Allowed values pass as they are; the same shapes around them do not.
    status, _, body = client.chat("EMP-000001 and EMP-123456 mail help@acme.example, not jo@acme.example")
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == \
        "EMP-000001 and [EMPLOYEE_1] mail help@acme.example, not [EMAIL_1]"
    status, _, body = client.chat("status of project falcon?")
    assert status == 403 and json.loads(body)["error"]["code"] == "project_names"
    # Whole words only: no match inside another word.
    status, _, _ = client.chat("bluebirds sing")
    assert status == 200


def group_config():
    config = demo_plugin_config()
    config["policies"]["finance"] = {"detectors": {"category:secret": "block", "category:pii": "redact"}}
    config["policy_rules"] = [{"policy": "finance", "when": {"claim": "groups", "contains": "finance"}}]
    return config


def test_same_prompt_redacted_for_one_group_blocked_for_another(make_stack):
    stack = make_stack(group_config(), sidecar=False)
    prompt = f"use {AWS_KEY} please"
    status, _, body = Client(stack, "eng", {"groups": ["eng"]}).chat(prompt)
    assert status == 200
    assert AWS_KEY not in json.loads(body)["choices"][0]["message"]["content"]
    status, _, body = Client(stack, "fin", {"groups": ["finance"]}).chat(prompt)
    assert status == 403 and json.loads(body)["error"]["code"] == "aws_access_key_id"


@pytest.mark.parametrize("mutate, path", [
    (lambda c: c["policies"]["standard"]["detectors"].update(no_such_detector="redact"),
     "policies.standard.detectors.no_such_detector"),
    (lambda c: c.update(detectors={"custom": [{"id": "lookaround", "pattern": "foo(?=bar)"}]}),
     "detectors.custom[0].pattern"),
    (lambda c: c.update(detectors={"allow_values": ["fine", ""]}), "detectors.allow_values[1]"),
])
def test_bad_detector_config_fails_plugin_start(make_stack, mutate, path):
    config = demo_plugin_config()
    mutate(config)
    assert_plugin_start_fails(make_stack, config, path)

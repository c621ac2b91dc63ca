"""LLM wire formats end to end through Envoy with the real SDKs: streamed
answers redacted even when every character arrives in its own event, the
surrounding text unchanged, blocked streams ended in the dialect's format."""

import base64
import json
import subprocess

import anthropic
import openai
import pytest

from conftest import Client, demo_plugin_config, demo_token, new_request_id

AWS_KEY = "AKIAZ7Q3K5LMN2P4R6TW"
REPLY = ("Here is the config: key " + AWS_KEY + ", card 4111 1111 1111 1111, "
         "contact jane.doe@example.org — ünïcödé and emoji 🙂 stay intact.")
SECRETS = (AWS_KEY, "4111 1111 1111 1111", "jane.doe@example.org")


def demo_headers(reply=REPLY, chunk_size=1):
    return {"x-demo-reply": base64.b64encode(reply.encode()).decode(), "x-demo-chunk-size": str(chunk_size)}


def openai_sdk(stack, subject="stream-user"):
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key=demo_token.mint(subject), max_retries=0)


def whole_text_redaction(stack):
    """What the filter makes of REPLY when it arrives in one piece."""
    completion = openai_sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "x"}], extra_headers=demo_headers(chunk_size=10_000))
    return completion.choices[0].message.content


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_openai_chat_stream_never_shows_a_secret(demo_stack, chunk_size):
    expected = whole_text_redaction(demo_stack)
    assert not any(secret in expected for secret in SECRETS)
    assert expected.startswith("Here is the config: key [") and expected.endswith("🙂 stay intact.")
    stream = openai_sdk(demo_stack).chat.completions.create(
        model="demo", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "x"}], extra_headers=demo_headers(chunk_size=chunk_size))
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    streamed = "".join(pieces)
    assert streamed == expected
    assert finish == "stop" and usage.completion_tokens > 0
    if chunk_size == 1:
        # Text that cannot start a match is not held back: with one character
        # per event, the client received many separate pieces of text.
        assert sum(1 for p in pieces if p) > 20


def test_openai_responses_stream(demo_stack):
    sdk = openai_sdk(demo_stack)
    expected = sdk.responses.create(model="demo", input="x", extra_headers=demo_headers(chunk_size=10_000)).output_text
    assert not any(secret in expected for secret in SECRETS)
    deltas, completed = [], None
    with sdk.responses.stream(model="demo", input="x", extra_headers=demo_headers()) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                completed = event.response
    assert "".join(deltas) == expected
    assert completed.output_text == expected
    assert completed.usage.total_tokens > 0


def test_anthropic_messages_stream(demo_stack):
    sdk = anthropic.Anthropic(base_url=demo_stack.base_url, auth_token=demo_token.mint("claude-user"),
                              api_key=None, max_retries=0)
    message = sdk.messages.create(model="demo", max_tokens=100, messages=[{"role": "user", "content": "x"}],
                                  extra_headers=demo_headers(chunk_size=10_000))
    expected = message.content[0].text
    assert not any(secret in expected for secret in SECRETS)
    with sdk.messages.stream(model="demo", max_tokens=100, messages=[{"role": "user", "content": "x"}],
                             extra_headers=demo_headers()) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == expected
    assert final.usage.output_tokens > 0


def test_non_streamed_answer_is_redacted_with_other_fields_kept(client):
    status, _, body = client.chat("x", headers=demo_headers())
    assert status == 200
    answer = json.loads(body)
    text = answer["choices"][0]["message"]["content"]
    assert not any(secret in text for secret in SECRETS)
    assert answer["object"] == "chat.completion" and answer["usage"]["total_tokens"] > 0
    assert answer["choices"][0]["finish_reason"] == "stop"


def block_config():
    config = demo_plugin_config()
    config["policies"]["standard"]["detectors"] = {"category:pii": "redact", "category:secret": "block"}
    return config


def test_secret_in_a_stream_ends_it_with_an_error_event(make_stack):
    stack = make_stack(block_config(), sidecar=False)
    request_id = new_request_id()
    stream = openai_sdk(stack).chat.completions.create(
        model="demo", stream=True, messages=[{"role": "user", "content": "x"}],
        extra_headers={**demo_headers(), "x-request-id": request_id})
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "aws_access_key_id" in str(raised.value)
    text = "".join(received)
    assert text.startswith("Here is the config: key")
    assert "AKIA" not in text
    record = Client(stack).record_for(request_id)["meshguard"]
    assert record["verdict"] == "block" and record["reason"] == "aws_access_key_id"


def test_tokenized_values_are_restored_for_the_caller(make_stack):
    config = demo_plugin_config()
    config["policies"]["standard"]["detectors"] = {"email": "tokenize"}
    stack = make_stack(config, sidecar=False)
    client = Client(stack)
    marker = "tokenize-" + new_request_id()
    prompt = f"{marker} write to jane.doe@example.org"
    status, _, body = client.chat(prompt)
    assert status == 200
    seen = [r["body"] for r in client.upstream_requests() if marker in r["body"]][-1]
    assert "jane.doe@example.org" not in seen
    assert json.loads(body)["choices"][0]["message"]["content"] == prompt
    stream = openai_sdk(stack).chat.completions.create(
        model="demo", stream=True, messages=[{"role": "user", "content": prompt}],
        extra_headers={"x-demo-chunk-size": "1"})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == prompt


def test_http2_client(client):
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "h2 mail jane.doe@example.org"}]})
    result = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-w", "\n%{http_version}", client.stack.base_url + "/v1/chat/completions",
         "-H", "content-type: application/json", "-H", "authorization: Bearer " + client.token, "-d", body],
        capture_output=True, text=True, timeout=30)
    payload, version = result.stdout.rsplit("\n", 1)
    assert version == "2"
    assert json.loads(payload)["choices"][0]["message"]["content"] == "h2 mail [EMAIL_1]"


def test_compressed_upstream_answer_is_never_passed_unscanned(client):
    """The filter asks the upstream for identity encoding."""
    marker = "enc-" + new_request_id()
    status, _, _ = client.chat(marker, headers={"accept-encoding": "gzip"})
    assert status == 200
    seen = [r for r in client.upstream_requests() if marker in r["body"]][-1]["headers"]
    assert seen["accept-encoding"] == "identity"

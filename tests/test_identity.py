"""Identity end to end through Envoy: tokens minted by PyJWT with real keys,
attack tokens refused with 401, policies chosen by claims."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Client, demo_plugin_config, demo_token, new_request_id

NOW = int(time.time())
PRIVATE_PEM = demo_token.PRIVATE_KEY.read_text()
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_PEM = OTHER_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()


def claims(**overrides):
    base = {"iss": demo_token.ISSUER, "aud": demo_token.AUDIENCE, "sub": "mallory", "iat": NOW, "exp": NOW + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header, payload):
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())


def hs256_with_public_key():
    """The classic confusion attack: HMAC keyed with the RSA public key."""
    public_pem = serialization.load_pem_private_key(PRIVATE_PEM.encode(), None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": demo_token.KID}, claims())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def tampered():
    good = demo_token.mint("mallory")
    header, _, signature = good.split(".")
    payload = b64url(json.dumps(claims(sub="admin")).encode())
    return f"{header}.{payload}.{signature}"


def signed(payload, headers=None, key=PRIVATE_PEM, kid=demo_token.KID):
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid, **(headers or {})})


ATTACKS = {
    "alg_none": lambda: unsigned({"alg": "none", "typ": "JWT"}, claims()) + ".",
    "hs256_with_rsa_public_key": hs256_with_public_key,
    "expired": lambda: signed(claims(iat=NOW - 7200, exp=NOW - 3600)),
    "nbf_in_future": lambda: signed(claims(nbf=NOW + 3600)),
    "wrong_issuer": lambda: signed(claims(iss="https://evil.example")),
    "wrong_audience": lambda: signed(claims(aud="someone-else")),
    "unknown_kid": lambda: signed(claims(), kid="not-a-known-kid"),
    "signed_by_another_key": lambda: signed(claims(), key=OTHER_PEM),
    "tampered_payload": tampered,
    "unknown_crit": lambda: signed(claims(), headers={"crit": ["exp"]}),
    "jku_header": lambda: signed(claims(), headers={"jku": "https://evil.example/jwks.json"}),
    "jwk_header": lambda: signed(claims(), headers={"jwk": {"kty": "RSA", "e": "AQAB", "n": "AA"}}),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_tokens_get_401_and_reach_nothing(client, name):
    token = ATTACKS[name]()
    marker = "attack-" + new_request_id()
    status, headers, body = client.chat(marker, token=token)
    assert status == 401, body
    assert 'error="invalid_token"' in headers.get("www-authenticate", headers.get("WWW-Authenticate", ""))
    error = json.loads(body)["error"]
    assert error["type"] == "authentication_error"
    assert token not in body.decode()
    assert not any(marker in r["body"] for r in client.upstream_requests())


def test_missing_token_gets_401(client):
    status, headers, body = client.chat("who am i", token=None)
    assert status == 401
    assert json.loads(body)["error"]["code"] == "token_missing"


def test_two_tokens_are_refused(client):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", client.stack.ports.listen, timeout=10)
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "double"}]})
    conn.putrequest("POST", "/v1/chat/completions")
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", str(len(body)))
    conn.putheader("authorization", "Bearer " + client.token)
    conn.putheader("authorization", "Bearer " + demo_token.mint("eve"))
    conn.endheaders(body.encode())
    response = conn.getresponse()
    assert response.status == 401
    assert json.loads(response.read())["error"]["code"] == "multiple_tokens"


def test_token_never_appears_in_logs(client):
    request_id = new_request_id()
    token = signed(claims(iss="https://evil.example"))
    status, _, _ = client.chat("log check", token=token, headers={"x-request-id": request_id})
    assert status == 401
    entry = client.record_for(request_id)
    assert entry["meshguard"]["reason"] == "bad_issuer"
    for log in (client.stack.access_log, client.stack.envoy_log):
        text = log.read_text()
        assert token not in text
        assert token.split(".")[2] not in text


def policy_config():
    config = demo_plugin_config()
    config["policies"]["finance"] = {"fail_mode": "closed", "detectors": {}}
    config["policies"]["support"] = {"fail_mode": "closed", "detectors": {}, "max_request_bytes": 4096}
    config["policy_rules"] = [
        {"policy": "finance", "when": {"claim": "groups", "contains": "finance"}},
        {"policy": "support", "when": {"claim": "tenant", "equals": "helpdesk"}},
    ]
    return config


def test_policy_is_chosen_by_claims(make_stack):
    stack = make_stack(policy_config(), sidecar=False)
    cases = [
        (Client(stack, "fran", {"groups": ["ops", "finance"]}), "finance"),
        (Client(stack, "sam", {"tenant": "helpdesk"}), "support"),
        (Client(stack, "dana", {"groups": ["ops"]}), "standard"),
    ]
    for client, policy in cases:
        request_id = new_request_id()
        marker = "policy-" + request_id
        status, _, _ = client.chat(marker, headers={"x-request-id": request_id})
        assert status == 200
        seen = [r for r in client.upstream_requests() if marker in r["body"]][-1]["headers"]
        assert seen["x-meshguard-policy"] == policy
        assert client.record_for(request_id)["meshguard"]["policy"] == policy
    # The support policy's tighter cap applies to its callers only.
    support, standard = cases[1][0], cases[2][0]
    assert support.chat("s" * 5000)[0] == 413
    assert standard.chat("s" * 5000)[0] == 200


def public_jwk(private_pem, kid):
    key = serialization.load_pem_private_key(private_pem.encode(), None).public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.update(kid=kid, alg="RS256", use="sig")
    return jwk


def put_jwks(stack, keys):
    import urllib.request
    request = urllib.request.Request(f"http://127.0.0.1:{stack.ports.upstream}/demo/jwks",
                                     data=json.dumps({"keys": keys}).encode(), method="PUT")
    request.add_header("content-type", "application/json")
    urllib.request.urlopen(request, timeout=5).read()


def wait_for_status(client, token, want, timeout):
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status, _, body = client.chat("rotation", token=token)
        if status == want:
            return
        time.sleep(0.25)
    raise AssertionError(f"still {status}, wanted {want}")


def test_remote_jwks_rotation_without_restart(make_stack):
    config = demo_plugin_config()
    del config["auth"]["jwks"]
    config["auth"]["remote_jwks"] = {"cluster": "demo_upstream", "path": "/.well-known/jwks.json",
                                     "authority": "idp.demo", "refresh_s": 10, "timeout_ms": 1000}
    stack = make_stack(config, sidecar=False)
    client = Client(stack)
    # Before any key set is fetched nothing can be verified: 503, not a pass.
    status, _, body = client.chat("too early")
    assert status == 503 and json.loads(body)["error"]["code"] == "jwks_unavailable"

    put_jwks(stack, [public_jwk(PRIVATE_PEM, demo_token.KID)])
    wait_for_status(client, client.token, 200, timeout=15)

    rotated = signed(claims(sub="rotated-user"), key=OTHER_PEM, kid="meshguard-demo-2")
    status, _, body = client.chat("new key", token=rotated)
    assert status == 401 and json.loads(body)["error"]["code"] == "unknown_kid"

    put_jwks(stack, [public_jwk(PRIVATE_PEM, demo_token.KID), public_jwk(OTHER_PEM, "meshguard-demo-2")])
    wait_for_status(client, rotated, 200, timeout=20)


def rules_config(**extra):
    config = demo_plugin_config()
    config["policies"]["standard"].update(models=["demo", "gpt-4o-mini*"], tools=["search"], max_output_tokens=256,
                                          **extra)
    return config


def test_model_tool_and_token_rules(make_stack):
    client = Client(make_stack(rules_config(), sidecar=False), subject="rules-user")
    status, _, body = client.post("/v1/chat/completions", {"model": "gpt-4o-mini-2024", "messages": []})
    assert status == 200, body
    status, _, body = client.post("/v1/chat/completions", {"model": "gpt-5", "messages": []})
    assert status == 403 and json.loads(body)["error"]["code"] == "model_not_allowed"
    status, _, body = client.post("/v1/chat/completions", {
        "model": "demo", "messages": [],
        "tools": [{"type": "function", "function": {"name": "shell", "parameters": {}}}]})
    assert status == 403 and json.loads(body)["error"]["code"] == "tool_not_allowed"
    status, _, body = client.post("/v1/chat/completions", {"model": "demo", "messages": [], "max_tokens": 1000})
    assert status == 400 and json.loads(body)["error"]["code"] == "max_tokens_too_large"


def test_rate_limit_per_subject_answers_429_with_retry_after(make_stack):
    stack = make_stack(rules_config(rate_limit={"requests_per_minute": 3}), sidecar=False)
    busy, other = Client(stack, subject="busy-user"), Client(stack, subject="other-user")
    # The window is a calendar minute: start near its beginning so all four
    # requests fall into the same one.
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    statuses = [busy.chat("again")[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, headers, body = busy.chat("one too many")
    assert status == 429
    assert json.loads(body)["error"]["code"] == "rate_limited"
    assert 1 <= int(headers.get("retry-after", headers.get("Retry-After"))) <= 60
    assert other.chat("someone else")[0] == 200


def test_trusted_metadata_mode_reads_claims_verified_by_envoy_jwt_authn(make_stack):
    """Envoy's jwt_authn verifies; meshguard takes the claims from dynamic
    metadata, still checks issuer and audience, and still refuses requests
    that arrive without verified claims."""
    config = demo_plugin_config()
    config["auth"] = {"mode": "trusted_metadata", "issuer": demo_token.ISSUER, "audiences": ["meshguard"],
                      "metadata": {"namespace": "envoy.filters.http.jwt_authn", "payload_key": "jwt_payload"}}
    config["policies"]["finance"] = {"detectors": {}}
    config["policy_rules"] = [{"policy": "finance", "when": {"claim": "groups", "contains": "finance"}}]
    from conftest import ROOT
    stack = make_stack(config, sidecar=False, pre_filters=ROOT / "envoy" / "jwt-authn-filter.yaml")
    client = Client(stack, subject="meta-user", claims={"groups": ["finance"], "tenant": "acme"})
    request_id = new_request_id()
    status, _, body = client.chat("verified by envoy", headers={"x-request-id": request_id})
    assert status == 200, body
    record = client.record_for(request_id)["meshguard"]
    assert (record["subject"], record["tenant"], record["policy"]) == ("meta-user", "acme", "finance")
    # No token: jwt_authn lets it through without metadata; meshguard refuses.
    status, _, body = client.chat("anonymous", token=None)
    assert status == 401 and json.loads(body)["error"]["code"] == "token_missing"
    # A forged token fails jwt_authn's signature check: no metadata, 401.
    status, _, _ = client.chat("forged", token=signed(claims(), key=OTHER_PEM))
    assert status == 401


def test_prompts_with_secrets_go_to_the_self_hosted_model(make_stack):
    """Same prompt, three callers: one policy redacts, one blocks, one sends
    prompts carrying secrets to the self-hosted model instead."""
    from conftest import ROOT
    config = demo_plugin_config()
    config["policies"]["finance"] = {"detectors": {"category:secret": "block"}}
    config["policies"]["research"] = {"detectors": {"category:secret": "log", "category:pii": "redact"},
                                      "sensitive_route": {"categories": ["secret"], "to": "self_hosted"}}
    config["policy_rules"] = [{"policy": "finance", "when": {"claim": "groups", "contains": "finance"}},
                              {"policy": "research", "when": {"claim": "groups", "contains": "research"}}]
    stack = make_stack(config, sidecar=False, template=ROOT / "envoy" / "sensitive-routing.yaml")
    key = "AKIAZ7Q3K5LMN2P4R6TW"

    def send(client, text):
        request_id = new_request_id()
        status, _, body = client.chat(f"{request_id} {text}", headers={"x-request-id": request_id})
        external = [r for r in client.upstream_requests() if request_id in r["body"]]
        self_hosted = [r for r in client.upstream_requests(stack.ports.self_hosted) if request_id in r["body"]]
        return status, body, external, self_hosted, client.record_for(request_id)["meshguard"]

    research = Client(stack, "ria", {"groups": ["research"]})
    status, body, external, self_hosted, record = send(research, f"debug with {key}")
    assert status == 200 and not external and len(self_hosted) == 1
    assert key in self_hosted[0]["body"]  # logged, not redacted: it stays in-house
    assert record["routed_to"] == "self_hosted"
    status, _, external, self_hosted, record = send(research, "no secrets here")
    assert status == 200 and len(external) == 1 and not self_hosted and record["routed_to"] is None

    status, body, external, self_hosted, _ = send(Client(stack, "eng", {"groups": ["eng"]}), f"use {key}")
    assert status == 200 and len(external) == 1 and key not in external[0]["body"]
    status, _, external, self_hosted, _ = send(Client(stack, "fin", {"groups": ["finance"]}), f"use {key}")
    assert status == 403 and not external and not self_hosted


def test_ec_and_ed25519_tokens_from_pyjwt(make_stack):
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    ec_key, ed_key = ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    ed_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed_key.public_key()))
    ec_jwk.update(kid="ec-1", alg="ES256")
    ed_jwk.update(kid="ed-1", alg="EdDSA")
    config = demo_plugin_config()
    config["auth"]["jwks"]["keys"] += [ec_jwk, ed_jwk]
    stack = make_stack(config, sidecar=False)
    client = Client(stack)
    for key, alg, kid in [(ec_key, "ES256", "ec-1"), (ed_key, "EdDSA", "ed-1")]:
        token = jwt.encode(claims(sub=f"{alg}-user"), key, algorithm=alg, headers={"kid": kid})
        request_id = new_request_id()
        status, _, body = client.chat("signed", token=token, headers={"x-request-id": request_id})
        assert status == 200, (alg, body)
        assert client.record_for(request_id)["meshguard"]["subject"] == f"{alg}-user"
        # The EC key does not verify a token that claims the Ed25519 key id.
        forged = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "ed-1"})
        assert client.chat("forged", token=forged)[0] == 401


def test_tool_calls_in_answers_follow_the_allow_list(make_stack):
    stack = make_stack(rules_config(), sidecar=False)
    client = Client(stack)
    status, _, body = client.chat("look it up", headers={"x-demo-tool-call": "search"})
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search"
    # A disallowed call in a whole answer is not delivered.
    request_id = new_request_id()
    with pytest.raises(Exception):
        client.chat("run it", headers={"x-demo-tool-call": "shell", "x-request-id": request_id})
    assert client.record_for(request_id)["meshguard"]["reason"] == "tool_not_allowed"
    # In a stream, it ends with an error event before the call is complete.
    sdk = openai.OpenAI(base_url=stack.base_url + "/v1", api_key=client.token, max_retries=0)
    stream = sdk.chat.completions.create(model="demo", stream=True, messages=[{"role": "user", "content": "x"}],
                                         extra_headers={"x-demo-tool-call": "shell"})
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            assert not (chunk.choices and chunk.choices[0].delta.tool_calls), "the disallowed call reached the client"
    assert raised.value.code == "tool_not_allowed"

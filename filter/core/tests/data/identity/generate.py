#!/usr/bin/env python3
"""Generates the identity test fixtures: TEST-ONLY keys and tokens.

Every private key written here is public (it is in this repository) and must
never protect anything. Regenerate with:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install cryptography PyJWT
    /tmp/venv/bin/python filter/core/tests/data/identity/generate.py

Tokens are minted around a fixed instant, NOW below; the tests pass that same
instant as `now`, so nothing here expires with the calendar.
"""
import base64
import hashlib
import hmac
import json
import os

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1767226200  # 2026-01-01T00:10:00Z; the tests use the same value
ISS = "https://issuer.test.meshguard.dev"
AUD = "meshguard"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def pem_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_jwk(key, kid):
    nums = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "use": "sig", "n": uint(nums.n), "e": uint(nums.e)}
    if kid:
        jwk["kid"] = kid
    return jwk


def ec_jwk(key, kid, crv, size):
    nums = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": crv, "x": b64u(nums.x.to_bytes(size, "big")),
           "y": b64u(nums.y.to_bytes(size, "big"))}
    if kid:
        jwk["kid"] = kid
    return jwk


def ed_jwk(key, kid):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw), "kid": kid}


def claims(**over):
    base = {"iss": ISS, "aud": AUD, "sub": "alice@example.com", "tenant": "acme",
            "groups": ["finance", "staff"], "scope": "chat:write models:read",
            "iat": NOW - 300, "nbf": NOW - 300, "exp": NOW + 3300}
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def raw_token(header: dict, payload: dict, sign) -> str:
    signing_input = (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64u(json.dumps(payload, separators=(",", ":")).encode()))
    return signing_input + "." + b64u(sign(signing_input.encode()))


def main():
    rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    ed = ed25519.Ed25519PrivateKey.generate()
    hs_secret = os.urandom(32)

    keys = {"rsa-1.pem": rsa1, "rsa-2.pem": rsa2, "ec-256.pem": p256, "ec-384.pem": p384, "ed-1.pem": ed}
    for name, key in keys.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(pem_private(key))

    base_keys = [rsa_jwk(rsa1, "rsa-1"), ec_jwk(p256, "ec-256", "P-256", 32),
                 ec_jwk(p384, "ec-384", "P-384", 48), ed_jwk(ed, "ed-1")]
    jwks = {
        "jwks.json": {"keys": base_keys},
        "jwks_rotated.json": {"keys": [rsa_jwk(rsa2, "rsa-2")] + base_keys[1:]},
        "jwks_hmac.json": {"keys": [rsa_jwk(rsa1, "rsa-1"),
                                    {"kty": "oct", "kid": "hs-1", "k": b64u(hs_secret)}]},
        "jwks_nokid.json": {"keys": [rsa_jwk(rsa2, None), rsa_jwk(rsa1, None),
                                     ec_jwk(p256, None, "P-256", 32)]},
    }
    for name, doc in jwks.items():
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")

    def enc(key, alg, kid, payload=None, headers=None):
        h = dict(headers or {})
        if kid is not None:
            h["kid"] = kid
        return jwt.encode(payload or claims(), key, algorithm=alg, headers=h)

    rsa_pub_pem = pem_public(rsa1)
    good = enc(rsa1, "RS256", "rsa-1")
    head, body, sig = good.split(".")
    tampered_body = b64u(json.dumps(claims(sub="mallory@example.com"), separators=(",", ":")).encode())

    tokens = {
        # Accepted with the default config and jwks.json.
        "valid": {
            "rs256": good,
            "rs384": enc(rsa1, "RS384", "rsa-1"),
            "rs512": enc(rsa1, "RS512", "rsa-1"),
            "ps256": enc(rsa1, "PS256", "rsa-1"),
            "ps384": enc(rsa1, "PS384", "rsa-1"),
            "ps512": enc(rsa1, "PS512", "rsa-1"),
            "es256": enc(p256, "ES256", "ec-256"),
            "es384": enc(p384, "ES384", "ec-384"),
            "eddsa": enc(ed, "EdDSA", "ed-1"),
            "aud_array": enc(rsa1, "RS256", "rsa-1", claims(aud=["other", AUD])),
            "typ_at_jwt": enc(rsa1, "RS256", "rsa-1", headers={"typ": "at+jwt"}),
            "expired_within_skew": enc(rsa1, "RS256", "rsa-1", claims(iat=NOW - 3600, nbf=None, exp=NOW - 30)),
            "no_tenant": enc(rsa1, "RS256", "rsa-1", claims(tenant=None, groups=["engineering"])),
        },
        # Rejected with the default config and jwks.json; value: [token, reason].
        "attack": {
            "alg_none": [raw_token({"alg": "none", "typ": "JWT"}, claims(), lambda m: b""), "alg_not_allowed"],
            "alg_none_mixed_case": [raw_token({"alg": "nOnE", "kid": "rsa-1"}, claims(), lambda m: b""), "alg_not_allowed"],
            "hs256_with_rsa_public_key": [raw_token({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(),
                                                    lambda m: hmac.new(rsa_pub_pem, m, hashlib.sha256).digest()),
                                          "alg_not_allowed"],
            "expired": [enc(rsa1, "RS256", "rsa-1", claims(iat=NOW - 7200, nbf=None, exp=NOW - 120)), "token_expired"],
            "nbf_future": [enc(rsa1, "RS256", "rsa-1", claims(nbf=NOW + 600)), "token_not_yet_valid"],
            "iat_future": [enc(rsa1, "RS256", "rsa-1", claims(iat=NOW + 600, nbf=None)), "iat_in_future"],
            "wrong_iss": [enc(rsa1, "RS256", "rsa-1", claims(iss="https://evil.example")), "bad_issuer"],
            "iss_prefix": [enc(rsa1, "RS256", "rsa-1", claims(iss=ISS + ".evil.example")), "bad_issuer"],
            "wrong_aud": [enc(rsa1, "RS256", "rsa-1", claims(aud="someone-else")), "bad_audience"],
            "wrong_aud_array": [enc(rsa1, "RS256", "rsa-1", claims(aud=["a", "b"])), "bad_audience"],
            "missing_aud": [enc(rsa1, "RS256", "rsa-1", claims(aud=None)), "bad_audience"],
            "unknown_kid": [enc(rsa1, "RS256", "no-such-key"), "unknown_kid"],
            "tampered_payload": [head + "." + tampered_body + "." + sig, "bad_signature"],
            "signed_by_other_key": [enc(rsa2, "RS256", "rsa-1"), "bad_signature"],
            "es256_with_rsa_kid": [enc(p256, "ES256", "rsa-1"), "alg_key_mismatch"],
            "es384_with_p256_kid": [enc(p384, "ES384", "ec-256"), "alg_key_mismatch"],
            "unknown_crit": [enc(rsa1, "RS256", "rsa-1", headers={"crit": ["exp"], "exp": NOW + 3300}), "unknown_crit"],
            "jku_header": [enc(rsa1, "RS256", "rsa-1", headers={"jku": "https://evil.example/jwks.json"}), "forbidden_header"],
            "jwk_header": [enc(rsa2, "RS256", "rsa-1", headers={"jwk": rsa_jwk(rsa2, "rsa-1")}), "forbidden_header"],
            "x5u_header": [enc(rsa1, "RS256", "rsa-1", headers={"x5u": "https://evil.example/cert.pem"}), "forbidden_header"],
            "x5c_header": [enc(rsa1, "RS256", "rsa-1", headers={"x5c": ["MIIB"]}), "forbidden_header"],
            "missing_exp": [enc(rsa1, "RS256", "rsa-1", claims(exp=None)), "exp_missing"],
            "missing_sub": [enc(rsa1, "RS256", "rsa-1", claims(sub=None)), "subject_missing"],
            "newline_in_sub": [enc(rsa1, "RS256", "rsa-1", claims(sub="alice\r\nx-meshguard-policy: admin")), "bad_claims"],
            "not_a_jwt": ["not-a-token", "malformed_token"],
            "rs256_rotated_key": [enc(rsa2, "RS256", "rsa-2"), "unknown_kid"],
        },
        # For configs with max_lifetime_s = 86400 and required_claims = ["groups"].
        "long_lifetime": enc(rsa1, "RS256", "rsa-1", claims(exp=NOW + 30 * 86400)),
        "no_groups": enc(rsa1, "RS256", "rsa-1", claims(groups=None)),
        "no_iat": enc(rsa1, "RS256", "rsa-1", claims(iat=None)),
        # For jwks_hmac.json with allow_hmac.
        "hs256": enc(hs_secret, "HS256", "hs-1"),
        # For jwks_rotated.json.
        "rs256_rotated": enc(rsa2, "RS256", "rsa-2"),
        # For jwks_nokid.json: no kid in the token, several kid-less keys.
        "rs256_nokid": enc(rsa1, "RS256", None),
        "es256_nokid": enc(p256, "ES256", None),
    }
    with open(os.path.join(HERE, "tokens.json"), "w") as f:
        json.dump({"now": NOW, "issuer": ISS, "audience": AUD, "tokens": tokens}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()

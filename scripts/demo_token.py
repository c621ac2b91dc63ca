"""Mint demo JWTs with PyJWT and the DEMO-ONLY key pair in envoy/demo-keys/.

Usage: demo_token.py SUBJECT [claim=value ...] [ttl=SECONDS]
A value with commas becomes a list (groups=finance,ops).
"""

import sys
import time
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_KEY = ROOT / "envoy" / "demo-keys" / "private.pem"
ISSUER = "https://demo.meshguard.dev"
AUDIENCE = "meshguard"
KID = "meshguard-demo-1"


def mint(subject, claims=None, ttl=3600, now=None, key_path=PRIVATE_KEY, algorithm="RS256", headers=None):
    now = int(time.time()) if now is None else now
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + ttl}
    payload.update(claims or {})
    return jwt.encode(payload, Path(key_path).read_text(), algorithm=algorithm,
                      headers={"kid": KID, **(headers or {})})


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    claims, ttl = {}, 3600
    for arg in argv[2:]:
        name, _, value = arg.partition("=")
        if name == "ttl":
            ttl = int(value)
        else:
            claims[name] = value.split(",") if "," in value else value
    print(mint(argv[1], claims, ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Generates meshguard's labelled detection corpus (benches/corpus/*.jsonl).

Deterministic: Faker and random are seeded, so re-running rewrites the same
files. Every record: {"set", "text", "spans": [{"start", "end", "detector"}]}
with byte offsets into the UTF-8 text.

Sets:
  pii               sentences with PII values, labelled with the detector id
  secret            realistic secret-bearing snippets (env files, code, chat)
  secret_near_miss  the same shapes that must NOT fire: placeholders,
                    documentation examples, truncated or low-entropy values
  prose             benign sentences, some with numbers, versions, code

Usage: python3 scripts/gen-corpus.py [out_dir]   (needs: pip install faker)
"""
import base64
import datetime
import json
import os
import random
import string
import sys

from faker import Faker

SEED = 20240601
rnd = random.Random(SEED)
Faker.seed(SEED)
fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL"])
us = fake["en_US"]

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"


def r(n, alpha=ALNUM):
    return "".join(rnd.choice(alpha) for _ in range(n))


def record(set_name, parts):
    """parts: list of str or (value, detector)."""
    text, spans, pos = "", [], 0
    for p in parts:
        if isinstance(p, tuple):
            value, det = p
            b = len(value.encode())
            spans.append({"start": pos, "end": pos + b, "detector": det})
        else:
            value = p
        text += value
        pos += len(value.encode())
    return {"set": set_name, "text": text, "spans": spans}


# ---------------- PII values ----------------
def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(rnd.randint(0, 9))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def card():
    issuer = rnd.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("36", 14)])
    number = luhn_complete(*issuer)
    style = rnd.random()
    if style < 0.5:
        return number
    if len(number) == 15:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    sep = rnd.choice([" ", "-"])
    return sep.join(number[i:i + 4] for i in range(0, len(number), 4))


def ssn():
    while True:
        area = rnd.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}-{rnd.randint(1, 99):02d}-{rnd.randint(1, 9999):04d}"


def iban():
    v = fake.iban()
    return " ".join(v[i:i + 4] for i in range(0, len(v), 4)) if rnd.random() < 0.4 else v


def phone():
    kind = rnd.random()
    area, exch, line = rnd.randint(201, 989), rnd.randint(200, 999), rnd.randint(0, 9999)
    if kind < 0.3:
        return f"({area}) {exch}-{line:04d}"
    if kind < 0.5:
        return f"{area}-{exch}-{line:04d}"
    if kind < 0.7:
        return f"+1 {area} {exch} {line:04d}"
    if kind < 0.85:
        return f"+44 20 {rnd.randint(7000, 7999)} {rnd.randint(0, 9999):04d}"
    return f"07{rnd.randint(100, 999)} {rnd.randint(100000, 999999)}"


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def nino():
    while True:
        p = rnd.choice(NINO_FIRST) + rnd.choice(NINO_SECOND)
        if p not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    d = f"{rnd.randint(0, 999999):06d}"
    s = rnd.choice("ABCD")
    return f"{p} {d[:2]} {d[2:4]} {d[4:]} {s}" if rnd.random() < 0.5 else f"{p}{d}{s}"


def dob():
    # Fixed bounds, not "today minus an age": the corpus must not change with the date it is generated on.
    d = us.date_between_dates(date_start=datetime.date(1935, 1, 1), date_end=datetime.date(2007, 12, 31))
    return rnd.choice([d.strftime("%m/%d/%Y"), d.strftime("%Y-%m-%d"), d.strftime("%B %d, %Y")])


PII_TEMPLATES = [
    ("email", lambda: us.email(), ["Please email {} with the invoice.", "Contact: {}", "cc {} on the thread"]),
    ("email", lambda: us.user_name() + "@" + us.free_email_domain(), ["My personal address is {} if work mail fails."]),
    ("phone", phone, ["Call me at {} after 5pm.", "Phone: {}", "You can reach the front desk on {}."]),
    ("credit_card", card, ["Charge it to {} please.", "My card number is {} exp 09/27.", "card: {}"]),
    ("us_ssn", ssn, ["SSN {} is on file.", "Her social security number is {}.", "ssn: {}"]),
    ("iban", iban, ["Wire the refund to IBAN {}.", "Account: {} (personal)", "Bank details {} thanks"]),
    ("ipv4", lambda: us.ipv4_public(), ["Requests come from {} every minute.", "Whitelist {} on the firewall."]),
    ("ipv6", lambda: us.ipv6(), ["The host resolves to {} now.", "Add {} to the allow list."]),
    ("uk_nino", nino, ["My National Insurance number is {}.", "NI number: {}"]),
    ("date_of_birth", dob, ["DOB: {}", "I was born on {} in a small town.", "Date of birth {} (please verify)"]),
]


def pii_records(n):
    out = []
    for i in range(n):
        det, gen, templates = PII_TEMPLATES[i % len(PII_TEMPLATES)]
        value = gen()
        t = rnd.choice(templates)
        before, after = t.split("{}")
        if det == "date_of_birth":
            out.append(record("pii", [fake.name() + ": " + before, (value, det), after]))
        else:
            out.append(record("pii", [fake.name() + " said: " + before, (value, det), after]))
    return out


# ---------------- secrets ----------------
def b64url(s):
    return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")


def jwt():
    head = b64url(json.dumps({"alg": rnd.choice(["HS256", "RS256"]), "typ": "JWT"}))
    body = b64url(json.dumps({"sub": r(10, string.digits), "name": fake.name(), "iat": rnd.randint(1.5e9, 1.8e9)}))
    return f"{head}.{body}.{r(43, URLSAFE)}"


def pem(kind):
    body = "\n".join(r(64, B64) for _ in range(rnd.randint(4, 12)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


SECRETS = {
    "aws_access_key_id": lambda: "AKIA" + r(16, string.ascii_uppercase + "234567"),
    "aws_secret_access_key": lambda: r(40, B64),
    "github_token": lambda: rnd.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + r(36),
    "github_fine_grained_token": lambda: "github_pat_" + r(22) + "_" + r(59),
    "gitlab_token": lambda: "glpat-" + r(20, URLSAFE),
    "slack_token": lambda: "xoxb-" + r(12, string.digits) + "-" + r(13, string.digits) + "-" + r(24),
    "slack_webhook": lambda: f"https://hooks.slack.com/services/T{r(8, string.ascii_uppercase + string.digits)}/B{r(8, string.ascii_uppercase + string.digits)}/{r(24)}",
    "stripe_key": lambda: rnd.choice(["sk_live_", "rk_live_", "sk_test_"]) + r(24),
    "openai_api_key": lambda: "sk-proj-" + r(74, URLSAFE) + "T3BlbkFJ" + r(74, URLSAFE),
    "anthropic_api_key": lambda: "sk-ant-api03-" + r(93, URLSAFE) + "AA",
    "google_api_key": lambda: "AIza" + r(35, URLSAFE),
    "azure_storage_key": lambda: r(86, B64) + "==",
    "twilio_api_key": lambda: "SK" + r(32, "0123456789abcdef"),
    "sendgrid_api_key": lambda: "SG." + r(22, URLSAFE) + "." + r(43, URLSAFE),
    "npm_token": lambda: "npm_" + r(36),
    "pypi_token": lambda: "pypi-AgEIcHlwaS5vcmc" + r(70, URLSAFE),
    "huggingface_token": lambda: "hf_" + r(34, string.ascii_letters),
    "private_key": lambda: pem(rnd.choice(["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "])),
    "jwt": jwt,
    "database_url": lambda: r(rnd.randint(10, 20), ALNUM + "!*-"),
    "secret_assignment": lambda: r(rnd.randint(12, 24), ALNUM + "!#%^*-"),
}

CONTEXTS = {
    "aws_secret_access_key": ["aws_secret_access_key = {}\n", "AWS_SECRET_ACCESS_KEY={}", '"SecretAccessKey": "{}"'],
    "azure_storage_key": ["AccountKey={}", "AZURE_STORAGE_KEY={}"],
    "database_url": ["DATABASE_URL=postgres://app:{}@db.internal:5432/app", "mongodb+srv://admin:{}@cluster0.example.net/prod",
                     "redis://default:{}@cache:6379/0"],
    "secret_assignment": ["password = \"{}\"", "DB_PASSWORD={}", '{{"api_key": "{}"}}', "client_secret: {}", "export API_TOKEN={}"],
}
GENERIC_CONTEXT = ["Here is my key: {} can you check why it fails?", "export TOKEN={}\n", "config = {{'key': '{}'}}", "I accidentally pasted {} into the chat", "Authorization: {}"]


def secret_records(n):
    out = []
    ids = list(SECRETS)
    for i in range(n):
        det = ids[i % len(ids)]
        value = SECRETS[det]()
        t = rnd.choice(CONTEXTS.get(det, GENERIC_CONTEXT))
        before, after = t.split("{}")
        out.append(record("secret", [before, (value, det), after]))
    return out


def near_miss_records(n):
    makers = [
        ("aws_access_key_id", lambda: "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key", lambda: "aws_secret_access_key = " + "x" * 40),
        ("github_token", lambda: "ghp_" + "x" * 36),
        ("github_token", lambda: "ghp_" + r(12)),
        ("gitlab_token", lambda: "glpat-xxxxxxxxxxxxxxxxxxxx"),
        ("slack_token", lambda: "xoxb-your-token-here"),
        ("slack_webhook", lambda: "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX"),
        ("stripe_key", lambda: "pk_live_" + r(24)),
        ("openai_api_key", lambda: "sk-...your key..."),
        ("openai_api_key", lambda: "sk-" + "x" * 48),
        ("google_api_key", lambda: "AIza" + r(10)),
        ("twilio_api_key", lambda: "SKU " + r(6, string.digits)),
        ("npm_token", lambda: "npm_" + r(10)),
        ("private_key", lambda: "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----"),
        ("private_key", lambda: "-----BEGIN PUBLIC KEY-----\n" + r(64, B64) + "\n-----END PUBLIC KEY-----"),
        ("jwt", lambda: "eyJhbGciOiJIUzI1NiJ9"),
        ("database_url", lambda: "postgres://app:${DB_PASSWORD}@db:5432/app"),
        ("database_url", lambda: "postgres://user:password@localhost/app"),
        ("secret_assignment", lambda: "password = os.environ['DB_PASSWORD']"),
        ("secret_assignment", lambda: "api_key: <your-api-key>"),
        ("secret_assignment", lambda: "password=changeme"),
        ("secret_assignment", lambda: "token: ${GITHUB_TOKEN}"),
        ("secret_assignment", lambda: "The password: please reset it tomorrow"),
        ("secret_assignment", lambda: "secret = settings.SECRET_KEY"),
        ("secret_assignment", lambda: "API_KEY = get_api_key()"),
    ]
    out = []
    for i in range(n):
        det, make = makers[i % len(makers)]
        rec = record("secret_near_miss", ["Example from the docs: ", make(), " (replace it)"])
        rec["family"] = det
        out.append(rec)
    return out


PROSE_EXTRA = [
    "Version {v} ships on {d} with 12 fixes.", "The meeting moved to {t} in room {n}.", "Revenue rose {p}% to ${m} last quarter.",
    "Call get_token() before opening the session.", "Use std::collections::HashMap for the index.", "ISBN 978-3-16-148410-0 is the second edition.",
    "The build hash is {h} on branch main.", "Order #{n}{n} shipped on {d}.", "Set the timeout to {n} seconds and retry {n2} times.",
    "Our API key rotation policy is documented in the wiki.", "Reset your password from the account page.", "The token budget is {n} per request.",
    "Coordinates 48.8584, 2.2945 mark the tower.", "Temperature was 21.5 C at 06:45 on {d}.", "See section 4.2.1 and RFC 7519 for details.",
]


def prose_records(n):
    out = []
    for i in range(n):
        if i % 3 == 0:
            t = rnd.choice(PROSE_EXTRA).format(v=f"{rnd.randint(1, 9)}.{rnd.randint(0, 20)}.{rnd.randint(0, 9)}", d=us.date_between_dates(date_start=datetime.date(1990, 1, 1), date_end=datetime.date(2025, 12, 31)).isoformat(),
                                              t=f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}",
                                              n=rnd.randint(10, 999), n2=rnd.randint(2, 5), p=round(rnd.uniform(1, 30), 1),
                                              m=f"{rnd.randint(1, 999)},{rnd.randint(100, 999)}", h=r(40, "0123456789abcdef"))
        else:
            t = fake.sentence(nb_words=rnd.randint(8, 20))
        out.append(record("prose", [t]))
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "benches", "corpus")
    os.makedirs(out_dir, exist_ok=True)
    sets = {
        "pii.jsonl": pii_records(3000),
        "secrets.jsonl": secret_records(2100),
        "secrets_near_miss.jsonl": near_miss_records(1250),
        "prose.jsonl": prose_records(4000),
    }
    for name, records in sets.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"{name}: {len(records)} records")


if __name__ == "__main__":
    main()

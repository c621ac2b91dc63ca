"""The classifier's input contract, in Python: the same features as
filter/core/src/classify/features.rs, bit for bit (checked by the parity
fixture `filter/core/tests/fixtures/classify_parity.json`).

Text -> sorted (index, value) pairs over a 2^BITS hashed space:
  1. at most MAX_BYTES of UTF-8 (cut at a character boundary);
  2. ASCII letters lower-cased, ASCII digits folded to `0`, other ASCII and
     the listed Unicode spaces/punctuation are separators; every other
     character is part of a word;
  3. words joined by single spaces, padded with one space each side;
  4. byte n-grams of that string's UTF-8 (BYTE_NGRAMS): the n bytes as a
     little-endian integer with n in the top byte, times MULTIPLIER mod 2^64,
     top BITS bits; word n-grams (WORD_NGRAMS): 64-bit FNV-1a over a one-byte
     tag and the words joined by single spaces, low BITS bits;
  5. every index present gets the same value, 1 / sqrt(distinct indices)
     (unit length; f64, emitted as f32): presence, not counts, so a gram
     repeated to bury an injection gains nothing.

Only explicit ASCII rules and a fixed code-point list decide what a
separator is, so Python's and Rust's Unicode tables never matter.
"""

import math

VERSION = "mg-hash-v3"
BITS = 18
DIM = 1 << BITS
MAX_BYTES = 4096
BYTE_NGRAMS = (3, 5)
WORD_NGRAMS = ((1, ord("w")), (2, ord("b")), (3, ord("t")))
MULTIPLIER = 0x9E3779B97F4A7C15

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1

# Non-ASCII code points treated as separators (inclusive ranges).
SEPARATOR_RANGES = (
    (0x0085, 0x0085), (0x00A0, 0x00A0), (0x00AB, 0x00AB), (0x00BB, 0x00BB),
    (0x1680, 0x1680), (0x2000, 0x200F), (0x2010, 0x2027), (0x2028, 0x202F),
    (0x2030, 0x205E), (0x205F, 0x206F), (0x3000, 0x3002), (0xFEFF, 0xFEFF),
)


def _is_separator(cp):
    if cp < 0x80:
        return not (0x30 <= cp <= 0x39 or 0x41 <= cp <= 0x5A or 0x61 <= cp <= 0x7A)
    return any(lo <= cp <= hi for lo, hi in SEPARATOR_RANGES)


def truncate(text):
    data = text.encode("utf-8")
    if len(data) <= MAX_BYTES:
        return text
    cut = MAX_BYTES
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut].decode("utf-8")


def words(text):
    out, current = [], []
    for ch in truncate(text):
        cp = ord(ch)
        if _is_separator(cp):
            if current:
                out.append("".join(current))
                current = []
            continue
        if 0x41 <= cp <= 0x5A:
            ch = chr(cp + 32)
        elif 0x30 <= cp <= 0x39:
            ch = "0"
        current.append(ch)
    if current:
        out.append("".join(current))
    return out


def fnv1a(tag, data):
    h = (FNV_OFFSET ^ tag) * FNV_PRIME & MASK64
    for byte in data:
        h = (h ^ byte) * FNV_PRIME & MASK64
    return h


def byte_gram_index(gram):
    packed = int.from_bytes(gram, "little") | (len(gram) << 56)
    return ((packed * MULTIPLIER) & MASK64) >> (64 - BITS)


def features(text):
    """Sorted list of (index, value) with value a Python float rounded to f32 by the caller."""
    tokens = words(text)
    if not tokens:
        return []
    present = set()
    padded = (" " + " ".join(tokens) + " ").encode("utf-8")
    for n in BYTE_NGRAMS:
        for start in range(0, len(padded) - n + 1):
            present.add(byte_gram_index(padded[start:start + n]))
    for n, tag in WORD_NGRAMS:
        for start in range(0, len(tokens) - n + 1):
            present.add(fnv1a(tag, " ".join(tokens[start:start + n]).encode("utf-8")) & (DIM - 1))
    value = 1.0 / math.sqrt(len(present))
    return [(index, value) for index in sorted(present)]

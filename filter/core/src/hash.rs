//! Hashes used for identifiers in decision records (never for secrecy: keyed
//! fingerprints of matched text live in `detect`).

use sha2::{Digest, Sha256};

/// First 16 hex digits of SHA-256: short enough for a log line, long enough
/// to tell configurations apart.
pub fn short_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(16);
    for byte in digest.iter().take(8) {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

//! Keyed fingerprints: HMAC-SHA256 of a matched value under the operator's
//! key. SOC teams can tell that two requests carried the same card without
//! the record ever holding the card; without the key nobody can test a
//! guess against a fingerprint.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A configured fingerprint key.
#[derive(Clone)]
pub struct FingerprintKey(Vec<u8>);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key itself.
        f.write_str("FingerprintKey(..)")
    }
}

/// Shortest accepted key: shorter keys make guessing feasible.
pub const MIN_KEY_BYTES: usize = 16;

impl FingerprintKey {
    pub fn new(key: &str) -> Option<Self> {
        (key.len() >= MIN_KEY_BYTES).then(|| Self(key.as_bytes().to_vec()))
    }

    /// The first `hex_len` hex digits of HMAC-SHA256(key, value).
    pub fn fingerprint(&self, value: &str, hex_len: usize) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(hex_len);
        for byte in digest.iter() {
            if out.len() >= hex_len {
                break;
            }
            out.push(char::from(HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0')));
            out.push(char::from(HEX.get(usize::from(byte & 0xF)).copied().unwrap_or(b'0')));
        }
        out.truncate(hex_len);
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_refused_and_key_matters() {
        assert!(FingerprintKey::new("Jefe").is_none());
        let a = FingerprintKey::new("0123456789abcdef").unwrap();
        let b = FingerprintKey::new("0123456789abcdeg").unwrap();
        assert_eq!(a.fingerprint("4111111111111111", 16), a.fingerprint("4111111111111111", 16));
        assert_ne!(a.fingerprint("4111111111111111", 16), b.fingerprint("4111111111111111", 16));
        assert_eq!(a.fingerprint("x", 64).len(), 64);
        assert_eq!(a.fingerprint("x", 12).len(), 12);
    }

    #[test]
    fn matches_reference_hmac() {
        // HMAC-SHA256(key="key-key-key-key-", "The quick brown fox jumps over the lazy dog")
        // computed independently with Python's hmac module.
        let k = FingerprintKey::new("key-key-key-key-").unwrap();
        let fp = k.fingerprint("The quick brown fox jumps over the lazy dog", 64);
        assert_eq!(fp, "ef0080e4ab69f60ee5c1e0174c8787a7c7cff0e8ce23539807a123c16ba485be");
    }
}

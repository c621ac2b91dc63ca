//! Compressed request bodies: decoded (bounded) so they can be scanned, and
//! re-encoded when rewritten, because the `content-encoding` header has
//! already gone upstream by the time the body is inspected.

use std::borrow::Cow;
use std::io::{Read, Write};

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use serde::Deserialize;

use crate::client_error::ClientError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// HTTP `deflate` is zlib-wrapped (RFC 9110).
    Deflate,
}

/// What a policy does with a compressed request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressedRequests {
    /// Decode (bounded by the request cap), scan, re-encode if rewritten.
    #[default]
    Decompress,
    /// Refuse with 415.
    Reject,
}

fn unsupported(encoding: &str) -> ClientError {
    ClientError::new(
        415,
        "invalid_request_error",
        "unsupported_content_encoding",
        format!("content-encoding `{encoding}` is not accepted on this route; send the body uncompressed"),
    )
}

/// Reads a `content-encoding` header under the policy's choice.
pub fn parse(content_encoding: Option<&str>, policy: CompressedRequests) -> Result<Encoding, ClientError> {
    let encoding = content_encoding.map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default();
    let parsed = match encoding.as_str() {
        "" | "identity" => return Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Encoding::Gzip,
        "deflate" => Encoding::Deflate,
        _ => return Err(unsupported(&encoding)),
    };
    match policy {
        CompressedRequests::Decompress => Ok(parsed),
        CompressedRequests::Reject => Err(unsupported(&encoding)),
    }
}

/// Decodes at most `cap` bytes; a body that inflates past the cap is refused
/// (413) rather than read on, so a compression bomb costs nothing. An
/// identity body is handed back as it is, not copied.
pub fn decode(encoding: Encoding, body: Vec<u8>, cap: usize) -> Result<Vec<u8>, ClientError> {
    let limit = cap as u64 + 1;
    let mut out = Vec::new();
    let read = match encoding {
        Encoding::Identity => return Ok(body),
        Encoding::Gzip => GzDecoder::new(body.as_slice()).take(limit).read_to_end(&mut out),
        Encoding::Deflate => ZlibDecoder::new(body.as_slice()).take(limit).read_to_end(&mut out),
    };
    if read.is_err() {
        return Err(ClientError::new(400, "invalid_request_error", "invalid_compressed_body", "the compressed request body could not be decoded"));
    }
    if out.len() > cap {
        return Err(ClientError::body_too_large(cap));
    }
    Ok(out)
}

/// The body in `encoding`; an identity body is borrowed, not copied.
pub fn encode(encoding: Encoding, body: &[u8]) -> Cow<'_, [u8]> {
    let written = match encoding {
        Encoding::Identity => return Cow::Borrowed(body),
        Encoding::Gzip => {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
            encoder.write_all(body).and_then(|()| encoder.finish())
        }
        Encoding::Deflate => {
            let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
            encoder.write_all(body).and_then(|()| encoder.finish())
        }
    };
    // Writing into a Vec cannot fail; an empty body would be refused upstream
    // rather than leak anything.
    Cow::Owned(written.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_gzip_and_deflate() {
        for encoding in [Encoding::Gzip, Encoding::Deflate] {
            let body = br#"{"messages":[{"role":"user","content":"hello"}]}"#;
            let packed = encode(encoding, body);
            assert_ne!(&*packed, &body[..]);
            assert_eq!(decode(encoding, packed.into_owned(), 1024).unwrap(), body);
        }
    }

    #[test]
    fn identity_bodies_are_not_copied() {
        let body = b"{}".to_vec();
        let at = body.as_ptr();
        let decoded = decode(Encoding::Identity, body, 1024).unwrap();
        assert_eq!(decoded.as_ptr(), at);
        assert!(matches!(encode(Encoding::Identity, b"{}"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_bomb_is_refused_at_the_cap() {
        let plain = vec![b'a'; 1_000_000];
        let packed = encode(Encoding::Gzip, &plain);
        assert!(packed.len() < 10_000);
        assert_eq!(decode(Encoding::Gzip, packed.into_owned(), 64 * 1024).unwrap_err().status, 413);
    }

    #[test]
    fn policy_and_header_parsing() {
        assert_eq!(parse(Some("GZIP"), CompressedRequests::Decompress), Ok(Encoding::Gzip));
        assert_eq!(parse(None, CompressedRequests::Reject), Ok(Encoding::Identity));
        assert_eq!(parse(Some("gzip"), CompressedRequests::Reject).unwrap_err().status, 415);
        assert_eq!(parse(Some("br"), CompressedRequests::Decompress).unwrap_err().code, "unsupported_content_encoding");
        assert_eq!(decode(Encoding::Gzip, b"not gzip".to_vec(), 100).unwrap_err().code, "invalid_compressed_body");
    }
}

//! meshguard's pure logic. Nothing here imports proxy-wasm: it builds and is
//! tested on the host, and the sidecar links the same code.

pub mod buffer;
mod bytemask;
pub mod client_error;
pub mod config;
pub mod config_error;
pub mod detect;
pub mod hash;
pub mod record;

pub use client_error::ClientError;
pub use config::CompiledConfig;
pub use config_error::ConfigError;
pub mod inspect;
pub mod json_encode;
pub mod wire;
pub mod identity;
pub mod review;
pub mod quota;
pub mod request_rules;
pub mod sse;
pub mod stream;
pub mod response;
pub mod dialect;
pub mod protobuf_struct;
pub mod rag;
mod protobuf_wire;
pub mod encoding;
pub mod metrics;
pub mod canary;
pub mod classify;
pub mod clock;
#[cfg(test)]
mod test_rng;

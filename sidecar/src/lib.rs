//! meshguard-sidecar as a library: the HTTP API, settings, the embedding
//! model service, semantic guards and the retrieval store, so the binary is
//! thin and everything is testable through the router.

pub mod api;
pub mod batch;
pub mod guards;
pub mod ingest;
pub mod injection;
pub mod model;
pub mod settings;
pub mod store;

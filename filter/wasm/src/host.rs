//! Small wrappers over proxy-wasm host calls that turn host errors into
//! `Option`s and log lines, so the data path has nothing to unwrap.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshguard_core::metrics::{Kind, Sample};

use meshguard_core::ClientError;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

/// Filter-state key (Envoy prefixes it with `wasm.`): access logs read the
/// record with `%FILTER_STATE(wasm.meshguard_decision:PLAIN)%`.
pub const DECISION_PROPERTY: &str = "meshguard_decision";

pub fn now_nanos() -> u128 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO)
        .as_nanos()
}

pub fn now_us() -> u64 {
    (now_nanos() / 1_000) as u64
}

pub fn now_secs() -> u64 {
    (now_nanos() / 1_000_000_000) as u64
}

pub fn elapsed_us(since: SystemTime) -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|now| now.duration_since(since).ok())
        .map_or(0, |d| d.as_micros() as u64)
}

pub fn now() -> SystemTime {
    hostcalls::get_current_time().unwrap_or(UNIX_EPOCH)
}

pub fn set_header(map: MapType, name: &str, value: Option<&str>) {
    if let Err(status) = hostcalls::set_map_value(map, name, value) {
        log::warn!("could not set header {name}: {status:?}");
    }
}

/// Every header of `map`, names lower-cased (Envoy's already are; this
/// makes lookups exact whatever the codec). Only valid inside that map's
/// own callback: the SDK aborts the VM when the host refuses a read (e.g.
/// response headers during the body).
pub fn lowercase_headers(map: MapType) -> Vec<(String, String)> {
    let mut headers = hostcalls::get_map(map).unwrap_or_default();
    for (name, _) in &mut headers {
        name.make_ascii_lowercase();
    }
    headers
}

/// The first value of `name` (lower-case) in a list from [`lowercase_headers`].
pub fn find_header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

pub fn body(buffer: BufferType, size: usize) -> Vec<u8> {
    hostcalls::get_buffer(buffer, 0, size).ok().flatten().unwrap_or_default()
}

pub fn replace_body(buffer: BufferType, old_size: usize, new_body: &[u8]) -> bool {
    match hostcalls::set_buffer(buffer, 0, old_size, new_body) {
        Ok(()) => true,
        Err(status) => {
            log::error!("could not replace body: {status:?}");
            false
        }
    }
}

/// Answers the client with an OpenAI-style JSON error.
pub fn send_error(error: &ClientError, extra_headers: &[(&str, &str)]) {
    let body = error.to_json();
    let mut headers = vec![("content-type", "application/json"), ("x-meshguard-error", error.code.as_str())];
    headers.extend_from_slice(extra_headers);
    if let Err(status) = hostcalls::send_http_response(u32::from(error.status), headers, Some(body.as_bytes())) {
        log::error!("could not send local reply: {status:?}");
    }
}

/// A dynamic-metadata namespace as JSON; empty when absent or unreadable.
pub fn dynamic_metadata_json(namespace: &str) -> Vec<u8> {
    let Ok(Some(bytes)) = hostcalls::get_property(vec!["metadata"]) else {
        return Vec::new();
    };
    match meshguard_core::protobuf_struct::decode_filter_metadata(&bytes, namespace) {
        Ok(Some(value)) => serde_json::to_vec(&value).unwrap_or_default(),
        Ok(None) => Vec::new(),
        Err(err) => {
            log::warn!("dynamic metadata unreadable: {}", err.0);
            Vec::new()
        }
    }
}

pub fn set_filter_state(key: &str, value: &str) {
    if let Err(status) = hostcalls::set_property(vec![key], Some(value.as_bytes())) {
        log::warn!("could not set filter state {key}: {status:?}");
    }
}

/// Reads a shared-data value and writes `update`'s answer back with
/// compare-and-swap, retrying when another worker wrote in between.
/// `update` returns `None` to leave the value as it is. Returns whatever
/// `update` decided last; after repeated conflicts the write is skipped
/// (counting is best effort under heavy contention), never the request.
pub fn update_shared<T>(key: &str, mut update: impl FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, T)) -> Option<T> {
    const ATTEMPTS: usize = 8;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let (value, cas) = match hostcalls::get_shared_data(key) {
            Ok(found) => found,
            Err(status) => {
                log::warn!("shared data {key} unreadable: {status:?}");
                return None;
            }
        };
        let (store, outcome) = update(value.as_deref());
        let Some(store) = store else {
            return Some(outcome);
        };
        match hostcalls::set_shared_data(key, Some(&store), cas) {
            Ok(()) => return Some(outcome),
            Err(proxy_wasm::types::Status::CasMismatch) => last = Some(outcome),
            Err(status) => {
                log::warn!("shared data {key} not written: {status:?}");
                return Some(outcome);
            }
        }
    }
    last
}

thread_local! {
    static SEQUENCE: Cell<u64> = const { Cell::new(0) };
    /// Metric ids by name: defining a metric is a host call, so once per VM.
    static METRIC_IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

/// A per-VM counter, for values that must differ between requests.
pub fn next_sequence() -> u64 {
    SEQUENCE.with(|seq| {
        let next = seq.get().wrapping_add(1);
        seq.set(next);
        next
    })
}

/// Bound on distinct metric names per VM: names come from configuration
/// (policies, detector ids), but a bound keeps a mistake from growing memory.
const MAX_METRICS: usize = 4096;

pub fn emit_metrics(samples: &[Sample]) {
    METRIC_IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        for sample in samples {
            let id = match ids.get(&sample.name) {
                Some(id) => *id,
                None if ids.len() >= MAX_METRICS => continue,
                None => {
                    let kind = match sample.kind {
                        Kind::Counter => MetricType::Counter,
                        Kind::Histogram => MetricType::Histogram,
                    };
                    let Ok(id) = hostcalls::define_metric(kind, &sample.name) else { continue };
                    ids.insert(sample.name.clone(), id);
                    id
                }
            };
            let result = match sample.kind {
                Kind::Counter => hostcalls::increment_metric(id, i64::try_from(sample.value).unwrap_or(i64::MAX)),
                Kind::Histogram => hostcalls::record_metric(id, sample.value),
            };
            if let Err(status) = result {
                log::debug!("metric {} not recorded: {status:?}", sample.name);
            }
        }
    });
}

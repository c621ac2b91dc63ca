//! The clock behind the decision record's stage timings (the classifier's
//! `scoring_us`). Pure logic has no clock of its own: inside Envoy the
//! filter installs the host's; with none installed the timings are left
//! out of the record rather than made up.

use std::sync::OnceLock;

static CLOCK: OnceLock<fn() -> u64> = OnceLock::new();

/// Sets the microsecond clock for this process (or wasm VM); later calls
/// are ignored, so every thread reads the same clock.
pub fn install(now_us: fn() -> u64) {
    let _ = CLOCK.set(now_us);
}

/// Now, in microseconds, when a clock is installed.
pub fn now_us() -> Option<u64> {
    CLOCK.get().map(|now| now())
}

/// Microseconds since `start` (a [`now_us`] reading).
pub fn since(start: Option<u64>) -> Option<u64> {
    Some(now_us()?.saturating_sub(start?))
}

//! A deterministic xorshift generator for randomised unit tests: the same
//! inputs on every run and every machine, so a failure always reproduces.

/// Successive pseudo-random values from `seed` (which must not be zero).
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

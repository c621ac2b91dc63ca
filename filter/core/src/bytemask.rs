//! Which bytes of a 16-byte block pass a simple test, one bit per byte:
//! the inner step of the scans that skip prose a block at a time (the
//! detection engine's, and the JSON encoder's search for bytes to
//! escape). In the filter's wasm (built with SIMD128) and natively on
//! x86-64 (SSE2) a block takes a handful of vector instructions; elsewhere
//! eight bytes at a time in a `u64` (SWAR). The unit tests check the
//! target's backend and the SWAR one, on the host and inside wasm
//! (`scripts/test`).

/// Bytes per block: bit `i` of a mask is byte `i`.
pub const BLOCK: usize = 16;

/// Bytes below the ASCII byte `bound`, not ASCII, or equal to `eq[0]` or
/// `eq[1]`.
#[inline]
pub fn below_or_equal(block: &[u8; BLOCK], bound: u8, eq: [u8; 2]) -> u32 {
    lanes::below_or_equal(block, bound, eq)
}

/// Control bytes (below 0x20) and bytes equal to `eq[0]` or `eq[1]`:
/// what a JSON string must escape, with `"` and `\`.
#[inline]
pub fn control_or_equal(block: &[u8; BLOCK], eq: [u8; 2]) -> u32 {
    lanes::control_or_equal(block, eq)
}

/// Bytes in `lo..=hi` (both ASCII).
#[inline]
pub fn within(block: &[u8; BLOCK], lo: u8, hi: u8) -> u32 {
    lanes::within(block, lo, hi)
}

/// Whether every byte of `b` is ASCII: the normaliser's test for a text
/// it can leave as it is. (The standard library's test reads a `usize` at
/// a time, four bytes in wasm.)
pub fn all_ascii(b: &[u8]) -> bool {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{i8x16_bitmask, v128_or};
        // Four blocks per test: a top bit anywhere survives the `or`.
        let mut quads = b.chunks_exact(4 * BLOCK);
        for quad in &mut quads {
            let (ab, cd) = quad.split_at(2 * BLOCK);
            let (a, bb) = ab.split_at(BLOCK);
            let (c, d) = cd.split_at(BLOCK);
            let any = v128_or(v128_or(wasm::load_slice(a), wasm::load_slice(bb)), v128_or(wasm::load_slice(c), wasm::load_slice(d)));
            if i8x16_bitmask(any) != 0 {
                return false;
            }
        }
        quads.remainder().is_ascii()
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        b.is_ascii()
    }
}

/// The first eight bytes of `b` as a little-endian word: byte `k` in bits
/// `8k..8k + 8` (0 when `b` is shorter). One load.
#[inline(always)]
pub(crate) fn word(b: &[u8]) -> u64 {
    b.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
}

// One backend per target: SIMD128 in the filter's wasm, SSE2 (through
// `safe_arch`'s safe wrappers) natively on x86-64, SWAR elsewhere.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use wasm as lanes;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use sse2 as lanes;
#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), all(target_arch = "x86_64", target_feature = "sse2"))))]
use swar as lanes;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm {
    use super::{word, BLOCK};
    use core::arch::wasm32::{i8x16_bitmask, i8x16_eq, i8x16_lt, i8x16_splat, u8x16_bitmask, u8x16_ge, u8x16_le, u8x16_lt, u8x16_splat, v128, v128_and, v128_or};

    #[inline(always)]
    pub fn below_or_equal(block: &[u8; BLOCK], bound: u8, eq: [u8; 2]) -> u32 {
        let v = load(block);
        // Signed: a byte from 0x80 up is negative, so below any ASCII bound.
        let below = i8x16_lt(v, i8x16_splat(bound as i8));
        let equal = v128_or(i8x16_eq(v, i8x16_splat(eq[0] as i8)), i8x16_eq(v, i8x16_splat(eq[1] as i8)));
        u32::from(i8x16_bitmask(v128_or(below, equal)))
    }

    #[inline(always)]
    pub fn control_or_equal(block: &[u8; BLOCK], eq: [u8; 2]) -> u32 {
        let v = load(block);
        let control = u8x16_lt(v, u8x16_splat(0x20));
        let equal = v128_or(i8x16_eq(v, i8x16_splat(eq[0] as i8)), i8x16_eq(v, i8x16_splat(eq[1] as i8)));
        u32::from(i8x16_bitmask(v128_or(control, equal)))
    }

    #[inline(always)]
    pub fn within(block: &[u8; BLOCK], lo: u8, hi: u8) -> u32 {
        let v = load(block);
        u32::from(u8x16_bitmask(v128_and(u8x16_ge(v, u8x16_splat(lo)), u8x16_le(v, u8x16_splat(hi)))))
    }

    /// Sixteen bytes (zeros unless `b` is exactly sixteen long).
    #[inline(always)]
    pub fn load_slice(b: &[u8]) -> v128 {
        load(<&[u8; BLOCK]>::try_from(b).unwrap_or(&[0; BLOCK]))
    }

    #[inline(always)]
    fn load(block: &[u8; BLOCK]) -> v128 {
        let (lo, hi) = block.split_at(8);
        // Compiles to one `v128.load`.
        core::arch::wasm32::u64x2(word(lo), word(hi))
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use super::BLOCK;
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, cmp_lt_mask_i8_m128i, load_unaligned_m128i, m128i, min_u8_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
        sub_i8_m128i,
    };

    #[inline(always)]
    pub fn below_or_equal(block: &[u8; BLOCK], bound: u8, eq: [u8; 2]) -> u32 {
        let v = load_unaligned_m128i(block);
        // Signed: a byte from 0x80 up is negative, so below any ASCII bound.
        let below = cmp_lt_mask_i8_m128i(v, splat(bound));
        mask(bitor_m128i(below, equal_either(v, eq)))
    }

    #[inline(always)]
    pub fn control_or_equal(block: &[u8; BLOCK], eq: [u8; 2]) -> u32 {
        let v = load_unaligned_m128i(block);
        mask(bitor_m128i(at_most(v, 0x1f), equal_either(v, eq)))
    }

    #[inline(always)]
    pub fn within(block: &[u8; BLOCK], lo: u8, hi: u8) -> u32 {
        // `lo..=hi` moved down to `0..=hi - lo`: one unsigned comparison.
        mask(at_most(sub_i8_m128i(load_unaligned_m128i(block), splat(lo)), hi.wrapping_sub(lo)))
    }

    /// Lanes whose unsigned byte is at most `max`: those the minimum leaves.
    #[inline(always)]
    fn at_most(v: m128i, max: u8) -> m128i {
        cmp_eq_mask_i8_m128i(min_u8_m128i(v, splat(max)), v)
    }

    #[inline(always)]
    fn equal_either(v: m128i, eq: [u8; 2]) -> m128i {
        bitor_m128i(cmp_eq_mask_i8_m128i(v, splat(eq[0])), cmp_eq_mask_i8_m128i(v, splat(eq[1])))
    }

    #[inline(always)]
    fn splat(b: u8) -> m128i {
        set_splat_i8_m128i(i8::from_ne_bytes([b]))
    }

    #[inline(always)]
    fn mask(v: m128i) -> u32 {
        u32::from_ne_bytes(move_mask_i8_m128i(v).to_ne_bytes())
    }
}

/// Eight bytes at a time in a `u64`. Compiled for the tests everywhere, so
/// the host checks it against the same expectations as the SIMD backends.
#[cfg(any(test, not(any(all(target_arch = "wasm32", target_feature = "simd128"), all(target_arch = "x86_64", target_feature = "sse2")))))]
mod swar {
    use super::{word, BLOCK};

    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW: u64 = !HIGH;

    #[inline(always)]
    pub fn below_or_equal(block: &[u8; BLOCK], bound: u8, eq: [u8; 2]) -> u32 {
        gather(block, |x| {
            // The top bit of `lo + (0x80 - bound)` is set where `lo >=
            // bound`; no carry crosses a byte, as `lo` is at most 0x7f.
            let below = !((x & LOW) + (0x80 - u64::from(bound & 0x7f)) * ONES);
            below | x | equal_either(x, eq)
        })
    }

    #[inline(always)]
    pub fn control_or_equal(block: &[u8; BLOCK], eq: [u8; 2]) -> u32 {
        gather(block, |x| {
            // As in `below_or_equal`, then without the bytes from 0x80 up.
            let control = !((x & LOW) + (0x80 - 0x20) * ONES) & !x;
            control | equal_either(x, eq)
        })
    }

    #[inline(always)]
    pub fn within(block: &[u8; BLOCK], lo: u8, hi: u8) -> u32 {
        gather(block, |x| {
            // With each top bit set no borrow crosses a byte: the top bit
            // stays set where the byte is at least the subtrahend.
            let set = x | HIGH;
            let from_lo = set.wrapping_sub(u64::from(lo & 0x7f) * ONES);
            let past_hi = set.wrapping_sub(u64::from((hi & 0x7f) + 1) * ONES);
            from_lo & !past_hi & !x
        })
    }

    /// The top bit of each byte of `x` where it equals `c`.
    #[inline(always)]
    fn equal(x: u64, c: u8) -> u64 {
        let y = x ^ (u64::from(c) * ONES);
        !(((y & LOW) + LOW) | y)
    }

    /// The top bit of each byte of `x` where it equals `eq[0]` or `eq[1]`.
    /// Two bytes one bit apart (`,` and `.`) take one comparison: with that
    /// bit set in every byte of `x`, both become the same byte.
    #[inline(always)]
    fn equal_either(x: u64, eq: [u8; 2]) -> u64 {
        let apart = eq[0] ^ eq[1];
        if apart.count_ones() == 1 {
            equal(x | (u64::from(apart) * ONES), eq[0] | apart)
        } else {
            equal(x, eq[0]) | equal(x, eq[1])
        }
    }

    /// `flags` gives per byte of a little-endian word a set top bit where
    /// the byte passes (other bits ignored); gathered into one bit per byte.
    #[inline(always)]
    fn gather(block: &[u8; BLOCK], flags: impl Fn(u64) -> u64) -> u32 {
        let (lo, hi) = block.split_at(8);
        let (lo, hi) = (flags(word(lo)) & HIGH, flags(word(hi)) & HIGH);
        // Most blocks of the scans that skip prose pass no byte.
        if lo | hi == 0 {
            return 0;
        }
        // One bit per byte, moved by the multiply to bits 56..64 in order.
        let pack = |f: u64| ((f >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
        pack(lo) | pack(hi) << 8
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn all_ascii_is_the_standard_test() {
        let mut next = crate::test_rng::xorshift(0x6a09_e667_f3bc_c908);
        for len in 0..300 {
            let mut b: Vec<u8> = (0..len).map(|_| (next() % 0x80) as u8).collect();
            assert!(all_ascii(&b), "{len}");
            if len > 0 {
                let at = (next() % len as u64) as usize;
                b[at] = 0x80 | next() as u8;
                assert!(!all_ascii(&b), "{len}, non-ASCII at {at}");
            }
        }
    }

    /// Each byte value at each position, among neighbours of every kind:
    /// a byte's bit depends on that byte alone.
    #[test]
    fn each_bit_is_its_byte_alone() {
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        // Every (value, position) pair once: 256 values times 16 positions.
        for round in 0..256 * BLOCK {
            let mut block = [0u8; BLOCK];
            block.iter_mut().for_each(|b| *b = next() as u8);
            let c = (round % 256) as u8;
            block[round / 256] = c;
            let (bound, eq) = ([b'+', b'0', b'!'][round % 3], [b',', b'.']);
            // The target's backend, then the SWAR one (the fallback on
            // targets with neither SIMD backend).
            for (below, digits, letters, escapes) in [
                (below_or_equal(&block, bound, eq), within(&block, b'0', b'9'), within(&block, b'a', b'z'), control_or_equal(&block, [b'"', b'\\'])),
                (
                    swar::below_or_equal(&block, bound, eq),
                    swar::within(&block, b'0', b'9'),
                    swar::within(&block, b'a', b'z'),
                    swar::control_or_equal(&block, [b'"', b'\\']),
                ),
            ] {
                for (i, &b) in block.iter().enumerate() {
                    assert_eq!(below >> i & 1 == 1, b < bound || b >= 0x80 || eq.contains(&b), "below_or_equal, byte {i} of {block:?}");
                    assert_eq!(digits >> i & 1 == 1, b.is_ascii_digit(), "within 0-9, byte {i} of {block:?}");
                    assert_eq!(letters >> i & 1 == 1, b.is_ascii_lowercase(), "within a-z, byte {i} of {block:?}");
                    assert_eq!(escapes >> i & 1 == 1, b < 0x20 || b == b'"' || b == b'\\', "control_or_equal, byte {i} of {block:?}");
                }
            }
        }
    }
}

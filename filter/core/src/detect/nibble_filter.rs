//! Which offsets of a 16-byte block can start a key of the pair scan, by
//! the key's first three bytes, sixteen offsets at a time with byte
//! shuffles (the technique Hyperscan and aho-corasick call "Teddy").
//!
//! Each key's first three bytes (the forms they can take: both cases of a
//! folded key; any byte third for a two-byte key) go to one of
//! [`BUCKETS`] buckets. Per position and bucket, a table over the low
//! nibble and one over the high nibble of a byte say whether some key of
//! the bucket can have a byte with that nibble there. A shuffle looks up
//! sixteen bytes' nibbles at once (`i8x16.swizzle` in wasm, SSSE3's
//! `pshufb` natively); an offset is a candidate when one bucket passes at
//! all three positions. That is a superset of the offsets where a key's
//! first three bytes are: the caller still tests each candidate exactly.
//! It costs a few vector instructions per block where the exact test
//! costs a table lookup per byte, and lets through about 1% of the
//! offsets of prose, little more than the exact test does.
//!
//! Keys are put in buckets so that few bytes of prose pass a bucket: each
//! goes, most frequent first, where it adds the least to the buckets'
//! summed pass rate under a table of English byte frequencies
//! ([`prose_frequency`]). The assignment only changes speed, never which
//! keys are found.

/// Buckets: two halves of eight, one bit per bucket in a byte.
pub const BUCKETS: usize = 16;

/// Positions of a key the filter looks at.
const POSITIONS: usize = 3;

/// The bytes each of a key's first three positions can hold.
pub type Fingerprint = [Vec<u8>; POSITIONS];

/// The nibble tables: `[position][half]`, each 16 entries of bucket bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NibbleFilter {
    lo: [[[u8; 16]; 2]; POSITIONS],
    hi: [[[u8; 16]; 2]; POSITIONS],
}

impl NibbleFilter {
    /// Tables for `fingerprints`, bucketed by [`assign`].
    pub fn build(fingerprints: &[Fingerprint]) -> Self {
        let mut f = Self { lo: [[[0; 16]; 2]; POSITIONS], hi: [[[0; 16]; 2]; POSITIONS] };
        for (fp, bucket) in fingerprints.iter().zip(assign(fingerprints)) {
            f.add(fp, bucket);
        }
        f
    }

    fn add(&mut self, fp: &Fingerprint, bucket: usize) {
        let (half, bit) = (bucket / 8 % 2, 1u8 << (bucket % 8));
        for ((lo, hi), bytes) in self.lo.iter_mut().zip(self.hi.iter_mut()).zip(fp) {
            for &b in bytes {
                if let Some(l) = lo.get_mut(half).and_then(|t| t.get_mut(usize::from(b & 15))) {
                    *l |= bit;
                }
                if let Some(h) = hi.get_mut(half).and_then(|t| t.get_mut(usize::from(b >> 4))) {
                    *h |= bit;
                }
            }
        }
    }

    /// The buckets byte `b` passes at position `pos`, one half's bits.
    fn passes(&self, pos: usize, half: usize, b: u8) -> u8 {
        let lo = self.lo.get(pos).and_then(|t| t.get(half)).and_then(|t| t.get(usize::from(b & 15))).copied().unwrap_or(0);
        let hi = self.hi.get(pos).and_then(|t| t.get(half)).and_then(|t| t.get(usize::from(b >> 4))).copied().unwrap_or(0);
        lo & hi
    }

    /// Bit `k` set when offset `k` of the block may start a key: `block`
    /// holds the sixteen offsets and the two bytes after them.
    #[inline(always)]
    pub fn candidates(&self, block: &[u8; 18]) -> u32 {
        #[cfg(any(all(target_arch = "wasm32", target_feature = "simd128"), all(target_arch = "x86_64", target_feature = "ssse3")))]
        {
            shuffle::candidates(self, block)
        }
        #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), all(target_arch = "x86_64", target_feature = "ssse3"))))]
        {
            self.candidates_by_byte(block)
        }
    }

    /// [`Self::candidates`] a byte at a time: the reference the shuffles
    /// are tested against, and the fallback where there are none.
    pub fn candidates_by_byte(&self, block: &[u8; 18]) -> u32 {
        let mut out = 0;
        for k in 0..16 {
            let at = |j: usize| block.get(k + j).copied().unwrap_or(0);
            let pass = |half| self.passes(0, half, at(0)) & self.passes(1, half, at(1)) & self.passes(2, half, at(2));
            if pass(0) | pass(1) != 0 {
                out |= 1 << k;
            }
        }
        out
    }
}

/// Whether this build has shuffles: without them the filter would cost
/// more than the exact test it stands in front of.
pub const HAS_SHUFFLE: bool = cfg!(any(all(target_arch = "wasm32", target_feature = "simd128"), all(target_arch = "x86_64", target_feature = "ssse3")));

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod shuffle {
    use super::NibbleFilter;
    use crate::bytemask::wasm::load_slice;
    use core::arch::wasm32::{i8x16_swizzle, u8x16_bitmask, u8x16_gt, u8x16_shr, u8x16_splat, v128, v128_and, v128_or};

    /// Written out, not looped: the filter's wasm is built for size, where
    /// loops over the positions and halves stay loops.
    #[inline(always)]
    pub fn candidates(f: &NibbleFilter, block: &[u8; 18]) -> u32 {
        let low = u8x16_splat(15);
        let nibbles = |pos: usize| {
            let v = load_slice(block.get(pos..pos + 16).unwrap_or_default());
            (v128_and(v, low), u8x16_shr(v, 4))
        };
        let ((l0, h0), (l1, h1), (l2, h2)) = (nibbles(0), nibbles(1), nibbles(2));
        let pass = |pos: usize, half: usize, l: v128, h: v128| {
            let table = |t: &[[[u8; 16]; 2]; 3]| load_slice(t.get(pos).and_then(|t| t.get(half)).map_or(&[][..], |t| &t[..]));
            v128_and(i8x16_swizzle(table(&f.lo), l), i8x16_swizzle(table(&f.hi), h))
        };
        let half = |k: usize| v128_and(v128_and(pass(0, k, l0, h0), pass(1, k, l1, h1)), pass(2, k, l2, h2));
        u32::from(u8x16_bitmask(u8x16_gt(v128_or(half(0), half(1)), u8x16_splat(0))))
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "ssse3"))]
mod shuffle {
    use super::NibbleFilter;
    use safe_arch::{
        bitand_m128i, bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i, shr_imm_u16_m128i,
        shuffle_av_i8z_all_m128i, zeroed_m128i,
    };

    fn load(b: &[u8]) -> m128i {
        load_unaligned_m128i(<&[u8; 16]>::try_from(b.get(..16).unwrap_or_default()).unwrap_or(&[0; 16]))
    }

    #[inline(always)]
    pub fn candidates(f: &NibbleFilter, block: &[u8; 18]) -> u32 {
        let low_nibble = set_splat_i8_m128i(15);
        let mut any = [set_splat_i8_m128i(-1); 2];
        for (pos, (lo, hi)) in f.lo.iter().zip(&f.hi).enumerate() {
            let v = load(block.get(pos..).unwrap_or_default());
            // No byte shift in SSE: shift 16-bit lanes, then keep the nibble.
            let (l, h) = (bitand_m128i(v, low_nibble), bitand_m128i(shr_imm_u16_m128i::<4>(v), low_nibble));
            for (half, acc) in any.iter_mut().enumerate() {
                let (tl, th) = (load_unaligned_m128i(&lo[half]), load_unaligned_m128i(&hi[half]));
                *acc = bitand_m128i(*acc, bitand_m128i(shuffle_av_i8z_all_m128i(tl, l), shuffle_av_i8z_all_m128i(th, h)));
            }
        }
        let none = cmp_eq_mask_i8_m128i(bitor_m128i(any[0], any[1]), zeroed_m128i());
        !u32::from_ne_bytes(move_mask_i8_m128i(none).to_ne_bytes()) & 0xffff
    }
}

/// A bucket per fingerprint: each, most frequent first, where it adds the
/// least to the summed pass rates of the buckets (a bucket passes a byte
/// at a position when the byte's two nibbles are both in its tables).
fn assign(fingerprints: &[Fingerprint]) -> Vec<usize> {
    let freq = prose_frequency();
    let weight = |bytes: &[u8]| bytes.iter().map(|&b| freq.get(usize::from(b)).copied().unwrap_or(0.0)).sum::<f64>();
    let own = |fp: &Fingerprint| fp.iter().map(|p| weight(p)).product::<f64>();
    let mut order: Vec<usize> = (0..fingerprints.len()).collect();
    order.sort_by(|&a, &b| {
        let (wa, wb) = (fingerprints.get(a).map_or(0.0, own), fingerprints.get(b).map_or(0.0, own));
        wb.total_cmp(&wa).then(a.cmp(&b))
    });
    // Per bucket and position, the nibbles its keys use (bit sets).
    let mut nibbles = [[(0u16, 0u16); POSITIONS]; BUCKETS];
    let rate = |n: &[(u16, u16); POSITIONS]| {
        n.iter()
            .map(|&(lo, hi)| (0..=255u8).filter(|&b| lo >> (b & 15) & 1 == 1 && hi >> (b >> 4) & 1 == 1).map(|b| freq.get(usize::from(b)).copied().unwrap_or(0.0)).sum::<f64>())
            .product::<f64>()
    };
    let mut out = vec![0; fingerprints.len()];
    for i in order {
        let Some(fp) = fingerprints.get(i) else { continue };
        let with = |n: &[(u16, u16); POSITIONS]| {
            let mut n = *n;
            for (slot, bytes) in n.iter_mut().zip(fp) {
                for &b in bytes {
                    slot.0 |= 1 << (b & 15);
                    slot.1 |= 1 << (b >> 4);
                }
            }
            n
        };
        let best = (0..BUCKETS)
            .map(|k| {
                let n = nibbles.get(k).copied().unwrap_or_default();
                (rate(&with(&n)) - rate(&n), k)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            .map_or(0, |(_, k)| k);
        if let Some(n) = nibbles.get_mut(best) {
            *n = with(n);
        }
        if let Some(o) = out.get_mut(i) {
            *o = best;
        }
    }
    out
}

/// Rough frequencies of bytes in English prose and chat: letters by their
/// English frequency, capitals a thirtieth as often, then spaces, digits
/// and punctuation. Only the buckets' shape depends on it.
fn prose_frequency() -> [f64; 256] {
    // a..z, per cent of letters.
    const LETTERS: [f64; 26] = [
        8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.77, 4.0, 2.4, 6.7, 7.5, 1.9, 0.095, 6.0, 6.3, 9.1, 2.8, 0.98, 2.4, 0.15, 2.0, 0.074,
    ];
    let mut f = [0.0005; 256];
    for (i, &p) in LETTERS.iter().enumerate() {
        let i = i as u8;
        if let Some(x) = f.get_mut(usize::from(b'a' + i)) {
            *x = p * 0.0075;
        }
        if let Some(x) = f.get_mut(usize::from(b'A' + i)) {
            *x = p * 0.00025;
        }
    }
    for (b, p) in [(b' ', 0.16), (b'.', 0.01), (b',', 0.01), (b'\n', 0.005), (b'-', 0.002), (b'\'', 0.002), (b'"', 0.002), (b':', 0.001), (b'/', 0.001)] {
        if let Some(x) = f.get_mut(usize::from(b)) {
            *x = p;
        }
    }
    for d in b'0'..=b'9' {
        if let Some(x) = f.get_mut(usize::from(d)) {
            *x = 0.003;
        }
    }
    f
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn fp(key: &str, fold: bool) -> Fingerprint {
        let forms = |b: u8| if fold { vec![b.to_ascii_lowercase(), b.to_ascii_uppercase()] } else { vec![b] };
        let b = key.as_bytes();
        [forms(b[0]), forms(b[1]), b.get(2).map_or_else(|| (0..=255).collect(), |&c| forms(c))]
    }

    /// Every offset where a key's first three bytes are (two for a
    /// two-byte key) is a candidate, whatever the bucket of the key.
    #[test]
    fn every_key_start_is_a_candidate() {
        let keys = [("AKIA", false), ("sk-", false), ("SK", false), ("::", false), ("password", true), ("api", true), ("tel", true), ("ghp_", false), ("Q~", false), ("token", true), ("-----BEGIN", false), ("dob", true)];
        let f = NibbleFilter::build(&keys.iter().map(|&(k, fold)| fp(k, fold)).collect::<Vec<_>>());
        for &(key, fold) in &keys {
            for offset in 0..16 {
                for variant in [key.to_string(), key.to_uppercase(), key.to_lowercase()] {
                    if !fold && variant != key {
                        continue;
                    }
                    let mut block = [b'.'; 18];
                    for (i, b) in variant.bytes().take(3).enumerate() {
                        if let Some(x) = block.get_mut(offset + i) {
                            *x = b;
                        }
                    }
                    if offset + 2.min(variant.len()) > 17 {
                        continue;
                    }
                    assert_ne!(f.candidates(&block) & 1 << offset, 0, "{variant} at {offset}");
                    assert_ne!(f.candidates_by_byte(&block) & 1 << offset, 0, "{variant} at {offset}");
                }
            }
        }
    }

    /// The shuffles find what the byte-by-byte reference finds, on random
    /// blocks of the keys' own bytes and others.
    #[test]
    fn shuffles_match_the_reference() {
        let keys: Vec<Fingerprint> = ["AKIA", "ghp_", "xoxb-", "sk-", "SG.", "eyJ", "::", "Q~", "\u{e9}t\u{e9}"].iter().map(|k| fp(k, false)).chain(["password", "token", "bearer", "api", "dob", "fax"].iter().map(|k| fp(k, true))).collect();
        let f = NibbleFilter::build(&keys);
        let alphabet = b"AKIghp_xob-sk-SG.eyJ:Q~passwordtkenbrfxd \x00\xff\x80\xc3\xa9";
        let mut next = crate::test_rng::xorshift(0x1405_7b7e_f767_814f);
        for _ in 0..20_000 {
            let mut block = [0u8; 18];
            for b in &mut block {
                *b = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            assert_eq!(f.candidates(&block), f.candidates_by_byte(&block), "{block:?}");
        }
    }

    /// On prose most offsets are no candidate: the buckets are shaped by
    /// the frequency table (the figure is about 2%; the bound is loose).
    #[test]
    fn prose_passes_few_offsets() {
        let words = ["access", "amazon", "api", "apikey", "auth", "authorization", "aws", "azure", "bearer", "birth", "born", "call", "cell", "client", "credential", "curl", "dob", "fax", "mobile", "office", "passphrase", "passwd", "password", "phone", "private", "pwd", "refresh", "secret", "tel", "telephone", "token", "twilio", "whatsapp"];
        let literals = ["-----BEGIN", "://", "::", "A3T", "AKIA", "ASIA", "AIza", "Q~", "SG.", "SK", "eyJ", "ghp_", "gho_", "glpat-", "hf_", "npm_", "pypi-", "rk_", "sk-", "sk_", "xoxb-", "xoxp-"];
        let keys: Vec<Fingerprint> = words.iter().map(|k| fp(k, true)).chain(literals.iter().map(|k| fp(k, false))).collect();
        let f = NibbleFilter::build(&keys);
        let prose = "The quarterly planning review covers revenue, hiring and the migration of the billing service to the new cluster. \
            Could you summarise the attached design document in three bullet points for the leadership sync on Thursday? \
            Our on-call rotation changed last week, so please double-check who owns the alerting runbooks before the release. ";
        let b = prose.as_bytes();
        let (mut passed, mut offsets) = (0, 0);
        let mut i = 0;
        while let Some(block) = b.get(i..i + 18).and_then(|x| <&[u8; 18]>::try_from(x).ok()) {
            passed += f.candidates(block).count_ones();
            offsets += 16;
            i += 16;
        }
        assert!(passed * 100 < offsets * 8, "{passed} of {offsets} offsets passed");
    }
}

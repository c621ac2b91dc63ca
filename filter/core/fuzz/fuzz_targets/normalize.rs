//! The normaliser and its offset map: any text, any normalised range on
//! char boundaries maps to an in-bounds original range on char boundaries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshguard_core::detect::normalize::{normalize, NormalizeConfig};

fuzz_target!(|text: &str| {
    let n = normalize(text, &NormalizeConfig::default());
    let norm: &str = &n.text;
    let bounds: Vec<usize> = (0..=norm.len()).filter(|&i| norm.is_char_boundary(i)).collect();
    // Every pair would be quadratic; sample starts and ends.
    for (k, &a) in bounds.iter().enumerate().step_by(7) {
        for &b in bounds.iter().skip(k).step_by(5) {
            let (x, y) = n.to_original(a, b);
            assert!(x <= y && y <= text.len(), "{a}..{b} -> {x}..{y}");
            assert!(text.is_char_boundary(x) && text.is_char_boundary(y), "{a}..{b} -> {x}..{y}");
        }
    }
    assert_eq!(n.to_original(0, norm.len()).1 <= text.len(), true);
});

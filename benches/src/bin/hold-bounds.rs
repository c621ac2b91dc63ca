//! Prints, per built-in detector, the longest match its patterns can
//! produce: what an incremental scan may hold back for it
//! (`docs/detectors.md`, "Streams").

use meshguard_core::detect::catalogue::{ascii_boundaries, BUILTINS};
use meshguard_core::detect::stream::max_match_len;

fn main() {
    println!("| detector | longest match (bytes) |\n|---|---:|");
    for b in BUILTINS {
        let longest = b.patterns.iter().map(|p| max_match_len(&ascii_boundaries(p.regex))).try_fold(0usize, |acc, m| m.map(|m| acc.max(m)));
        let shown = match (b.id, longest) {
            ("private_key", _) => "header ≤ 60; the key to its END line ≤ 16 KiB".to_string(),
            (_, Some(n)) => n.to_string(),
            (_, None) => "unbounded: as long as the run lasts, ≤ `window_bytes`".to_string(),
        };
        println!("| `{}` | {} |", b.id, shown);
    }
}

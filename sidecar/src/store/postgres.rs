//! The PostgreSQL + pgvector backend, for many sidecar replicas sharing one
//! knowledge base.
//!
//! Two roles, two connection pools:
//!
//! - the **owner** (`postgres.url`) creates the schema and does every write
//!   (ingestion). It owns the tables, so row-level security does not apply
//!   to it.
//! - the **reader** (`postgres.reader_url`) only searches. It may select from
//!   `documents`, `chunks` and `meta`, nothing else, and row-level security
//!   filters `documents` and `chunks` for it: a row is visible only when its
//!   `readers` array shares an element with the principals the current
//!   transaction declared in the `meshguard.principals` setting. Without that
//!   setting it sees no rows at all.
//!
//! The search query also states the ACL itself (as the SQLite store does), so
//! the database enforces it twice: once in the query, once in the policy a
//! query cannot opt out of. At start the store refuses a reader role that
//! would bypass the policies (superuser, BYPASSRLS, owner of the tables).
//!
//! The [`Store`] trait is synchronous (the API calls it on blocking
//! threads); this store runs its async client on a small tokio runtime of
//! its own and waits for each answer.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use pgvector::Vector;
use tokio_postgres::NoTls;

use super::{CleanChunk, DocumentMeta, Hit, Identity, QuarantinedChunk, Store};
use crate::settings::PostgresSettings;

/// Bumped when the schema changes; a database with another version is refused.
const SCHEMA_VERSION: i64 = 1;

/// Serialises schema creation across replicas starting together.
const SCHEMA_LOCK: i64 = 0x6d65_7368_6775_6172; // "meshguar"

/// How long a request waits for a connection, and a connection attempt for
/// the server, before the store answers with an error.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Tables, the principals function and the row-level security policies.
/// `{dimension}` is the embedding model's dimension. Run once, by the owner,
/// on a database that has no `chunks` table yet.
const SCHEMA: &str = "
CREATE TABLE meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO meta (key, value) VALUES ('kb_version', 0), ('schema_version', {schema_version}), ('dimension', {dimension});

CREATE TABLE documents (
    id text PRIMARY KEY,
    source text NOT NULL,
    tags text[] NOT NULL,
    readers text[] NOT NULL,
    kb_version bigint NOT NULL
);

-- `readers` is the document's reader list, copied to every chunk so the
-- policy (and the GIN index) work on the row itself.
CREATE TABLE chunks (
    document_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    chunk_index integer NOT NULL,
    text text NOT NULL,
    readers text[] NOT NULL,
    embedding vector({dimension}) NOT NULL,
    PRIMARY KEY (document_id, chunk_index)
);
CREATE INDEX chunks_readers ON chunks USING gin (readers);

CREATE TABLE quarantine (
    document_id text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    chunk_index integer NOT NULL,
    rule text NOT NULL,
    kb_version bigint NOT NULL
);

-- The principals the current transaction reads as (`SET LOCAL
-- meshguard.principals = '{user:alice,group:finance}'`); none when unset.
CREATE FUNCTION meshguard_principals() RETURNS text[]
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(nullif(current_setting('meshguard.principals', true), ''), '{}')::text[] $$;

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_readers ON documents FOR SELECT USING (readers && meshguard_principals());
CREATE POLICY chunks_readers ON chunks FOR SELECT USING (readers && meshguard_principals());
";

/// Exact cosine search over the chunks the caller may read. `$2` repeats
/// the principals set in `meshguard.principals` for the policy.
const SEARCH: &str = "
SELECT c.document_id, c.chunk_index, c.text, d.source, d.tags,
       (c.embedding <=> $1)::float8 AS distance
FROM chunks c
JOIN documents d ON d.id = c.document_id
WHERE c.readers && $2::text[]
ORDER BY distance ASC, c.document_id ASC, c.chunk_index ASC
LIMIT $3";

pub struct PostgresStore {
    /// Runs the connections; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    owner: Pool,
    reader: Pool,
    dimension: usize,
}

impl PostgresStore {
    /// Connects both pools, creates the schema on a fresh database, grants
    /// the reader role its access and checks that row-level security binds it.
    pub async fn connect(settings: &PostgresSettings, dimension: usize) -> Result<Self, String> {
        let owner = pool("postgres.url", &settings.url, settings.pool_size)?;
        let reader = pool("postgres.reader_url", &settings.reader_url, settings.pool_size)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("meshguard-postgres")
            .enable_all()
            .build()
            .map_err(|e| format!("postgres store: cannot start its runtime: {e}"))?;
        // From here on a failure drops `store`, whose Drop shuts the runtime
        // down in a way that is allowed inside async code.
        let store = Self { runtime: Some(runtime), owner, reader, dimension };
        let (o, r) = (store.owner.clone(), store.reader.clone());
        let setup = store.runtime.as_ref().map(|rt| rt.spawn(async move { prepare(&o, &r, dimension).await }));
        match setup {
            Some(task) => task.await.map_err(|e| format!("postgres store: setup task failed: {e}"))??,
            None => return Err("postgres store is shut down".into()),
        }
        Ok(store)
    }

    /// Runs `work` on the store's runtime and waits for its answer. Never
    /// panics, even when called from async code (it then only blocks).
    fn wait_for<T: Send + 'static>(&self, work: impl Future<Output = Result<T, String>> + Send + 'static) -> Result<T, String> {
        let runtime = self.runtime.as_ref().ok_or("postgres store is shut down")?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().map_err(|_| "postgres store: the query task stopped".to_string())?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Unlike dropping a runtime, this is allowed inside async code.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn pool(field: &str, url: &str, size: usize) -> Result<Pool, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{field}: invalid connection string: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_TIMEOUT);
    }
    config.application_name("meshguard-sidecar");
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|e| format!("{field}: {e}"))
}

fn pg(e: impl std::fmt::Display) -> String {
    format!("postgres store: {e}")
}

/// Quotes a role name for GRANT (which takes no parameters).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn prepare(owner: &Pool, reader: &Pool, dimension: usize) -> Result<(), String> {
    let reader_conn = reader.get().await.map_err(|e| format!("postgres.reader_url: cannot connect: {e}"))?;
    let row = reader_conn
        .query_one("SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(|e| format!("postgres.reader_url: {e}"))?;
    let (reader_role, superuser, bypass): (String, bool, bool) = (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?, row.try_get(2).map_err(pg)?);
    if superuser || bypass {
        return Err(format!(
            "postgres.reader_url: role `{reader_role}` bypasses row-level security ({}); connect as a role without it",
            if superuser { "superuser" } else { "BYPASSRLS" }
        ));
    }

    let mut owner_conn = owner.get().await.map_err(|e| format!("postgres.url: cannot connect: {e}"))?;
    let tx = owner_conn.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(pg)?;
    let owner_role: String = tx.query_one("SELECT current_user::text", &[]).await.map_err(pg)?.try_get(0).map_err(pg)?;
    if owner_role == reader_role {
        return Err(format!("postgres.reader_url: connects as `{reader_role}`, the same role as postgres.url; use a separate reader role"));
    }
    let fresh: bool = tx.query_one("SELECT to_regclass('chunks') IS NULL", &[]).await.map_err(pg)?.try_get(0).map_err(pg)?;
    if fresh {
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
            .await
            .map_err(|e| format!("postgres.url: the pgvector extension is missing and cannot be created ({e}); run `CREATE EXTENSION vector` as a superuser"))?;
        let schema = SCHEMA.replace("{dimension}", &dimension.to_string()).replace("{schema_version}", &SCHEMA_VERSION.to_string());
        tx.batch_execute(&schema).await.map_err(|e| format!("postgres.url: creating the schema: {e}"))?;
        tracing::info!(dimension, "postgres store: schema created");
    }
    if meta_value(&tx, "schema_version").await? != Some(SCHEMA_VERSION) {
        return Err(format!("postgres.url: the database's meshguard schema is not version {SCHEMA_VERSION}"));
    }
    let stored = meta_value(&tx, "dimension").await?;
    if stored != i64::try_from(dimension).ok() {
        return Err(format!(
            "postgres.url: the store holds {}-dimension embeddings, the model makes {dimension}; use another database for another model",
            stored.unwrap_or(0)
        ));
    }
    // Grants are idempotent; repeating them lets the reader role change.
    tx.batch_execute(&format!("GRANT SELECT ON documents, chunks, meta TO {}", quote_ident(&reader_role)))
        .await
        .map_err(|e| format!("postgres.url: granting the reader role: {e}"))?;
    tx.commit().await.map_err(pg)?;
    drop(owner_conn);

    // The proof that matters: the database applies the policies to the reader.
    let row = reader_conn
        .query_one("SELECT row_security_active('documents') AND row_security_active('chunks')", &[])
        .await
        .map_err(|e| format!("postgres.reader_url: {e}"))?;
    if !row.try_get::<_, bool>(0).map_err(pg)? {
        return Err(format!("postgres.reader_url: row-level security does not apply to role `{reader_role}` (does it own the tables?)"));
    }
    tracing::info!(reader = %reader_role, owner = %owner_role, "postgres store ready (row-level security active for the reader)");
    Ok(())
}

async fn meta_value(tx: &tokio_postgres::Transaction<'_>, key: &str) -> Result<Option<i64>, String> {
    let row = tx.query_opt("SELECT value FROM meta WHERE key = $1", &[&key]).await.map_err(pg)?;
    row.map(|r| r.try_get(0)).transpose().map_err(pg)
}

impl Store for PostgresStore {
    fn ingest(&self, doc: &DocumentMeta, chunks: &[CleanChunk], quarantined: &[QuarantinedChunk]) -> Result<u64, String> {
        if let Some(bad) = chunks.iter().find(|c| c.embedding.len() != self.dimension) {
            return Err(format!("chunk {} has dimension {}, the store expects {}", bad.index, bad.embedding.len(), self.dimension));
        }
        let mut readers = doc.readers.clone();
        readers.sort();
        readers.dedup();
        let (pool, doc, chunks, quarantined) = (self.owner.clone(), doc.clone(), chunks.to_vec(), quarantined.to_vec());
        self.wait_for(async move {
            let mut conn = pool.get().await.map_err(pg)?;
            let tx = conn.transaction().await.map_err(pg)?;
            // The row lock on the version serialises ingests across replicas.
            let version: i64 = tx
                .query_one("UPDATE meta SET value = value + 1 WHERE key = 'kb_version' RETURNING value", &[])
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            tx.execute("DELETE FROM documents WHERE id = $1", &[&doc.id]).await.map_err(pg)?;
            tx.execute(
                "INSERT INTO documents (id, source, tags, readers, kb_version) VALUES ($1, $2, $3, $4, $5)",
                &[&doc.id, &doc.source, &doc.tags, &readers, &version],
            )
            .await
            .map_err(pg)?;
            let insert_chunk = tx
                .prepare("INSERT INTO chunks (document_id, chunk_index, text, readers, embedding) VALUES ($1, $2, $3, $4, $5)")
                .await
                .map_err(pg)?;
            for chunk in chunks {
                let index = i32::try_from(chunk.index).map_err(pg)?;
                tx.execute(&insert_chunk, &[&doc.id, &index, &chunk.text, &readers, &Vector::from(chunk.embedding)]).await.map_err(pg)?;
            }
            for q in quarantined {
                let index = i32::try_from(q.index).map_err(pg)?;
                tx.execute(
                    "INSERT INTO quarantine (document_id, chunk_index, rule, kb_version) VALUES ($1, $2, $3, $4)",
                    &[&doc.id, &index, &q.rule, &version],
                )
                .await
                .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(u64::try_from(version).unwrap_or(0))
        })
    }

    fn search(&self, identity: &Identity, query: &[f32], k: usize) -> Result<Vec<Hit>, String> {
        if query.len() != self.dimension {
            return Err(format!("query has dimension {}, the store expects {}", query.len(), self.dimension));
        }
        let principals = identity.principals();
        let query = Vector::from(query.to_vec());
        let limit = i64::try_from(k).map_err(pg)?;
        let pool = self.reader.clone();
        self.wait_for(async move {
            let mut conn = pool.get().await.map_err(pg)?;
            let tx = conn.build_transaction().read_only(true).start().await.map_err(pg)?;
            // SET LOCAL cannot take a parameter; set_config(..., true) is the
            // same thing. Postgres writes the array literal itself.
            tx.execute("SELECT set_config('meshguard.principals', $1::text[]::text, true)", &[&principals]).await.map_err(pg)?;
            let search = tx.prepare_cached(SEARCH).await.map_err(pg)?;
            let rows = tx.query(&search, &[&query, &principals, &limit]).await.map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            rows.iter()
                .map(|row| {
                    let distance: f64 = row.try_get(5).map_err(pg)?;
                    Ok(Hit {
                        document_id: row.try_get(0).map_err(pg)?,
                        chunk_index: usize::try_from(row.try_get::<_, i32>(1).map_err(pg)?).unwrap_or(0),
                        text: row.try_get(2).map_err(pg)?,
                        source: row.try_get(3).map_err(pg)?,
                        tags: row.try_get(4).map_err(pg)?,
                        score: (1.0 - distance) as f32,
                    })
                })
                .collect()
        })
    }

    fn version(&self) -> Result<u64, String> {
        let pool = self.reader.clone();
        self.wait_for(async move {
            let conn = pool.get().await.map_err(pg)?;
            let row = conn.query_opt("SELECT value FROM meta WHERE key = 'kb_version'", &[]).await.map_err(pg)?;
            let version: Option<i64> = row.map(|r| r.try_get(0)).transpose().map_err(pg)?;
            Ok(version.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
        })
    }
}

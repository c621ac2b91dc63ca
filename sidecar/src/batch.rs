//! Dynamic batching: concurrent requests share one model call. A single task
//! takes the first waiting request, then keeps collecting for up to
//! `max_wait` or until `max_texts` texts are waiting, runs one batch on a
//! blocking thread, and hands every caller its own rows back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::model::Embedder;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, String>>;

struct Job {
    texts: Vec<String>,
    reply: Reply,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub max_texts: usize,
    pub max_wait: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self { max_texts: 32, max_wait: Duration::from_millis(5) }
    }
}

/// Counters for `/metrics` and for the batching test.
#[derive(Default)]
pub struct BatchStats {
    pub batches: AtomicU64,
    pub texts: AtomicU64,
}

#[derive(Clone)]
pub struct Batcher {
    sender: mpsc::Sender<Job>,
    dimension: usize,
    pub stats: Arc<BatchStats>,
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime.
    pub fn spawn(embedder: Arc<dyn Embedder>, settings: BatchSettings) -> Self {
        let (sender, receiver) = mpsc::channel(1024);
        let stats = Arc::new(BatchStats::default());
        let dimension = embedder.dimension();
        tokio::spawn(run(embedder, settings, receiver, Arc::clone(&stats)));
        Self { sender, dimension, stats }
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.sender.send(Job { texts, reply }).await.map_err(|_| "embedding service stopped".to_string())?;
        answer.await.map_err(|_| "embedding service dropped the request".to_string())?
    }
}

async fn run(embedder: Arc<dyn Embedder>, settings: BatchSettings, mut receiver: mpsc::Receiver<Job>, stats: Arc<BatchStats>) {
    let max_texts = settings.max_texts.max(1);
    while let Some(first) = receiver.recv().await {
        let mut count = first.texts.len();
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + settings.max_wait;
        while count < max_texts {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(job)) => {
                    count += job.texts.len();
                    jobs.push(job);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let texts: Vec<String> = jobs.iter().flat_map(|j| j.texts.iter().cloned()).collect();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.texts.fetch_add(texts.len() as u64, Ordering::Relaxed);
        let model = Arc::clone(&embedder);
        // One forward pass per `max_texts` texts: a single large request
        // (a long document) cannot make one oversized batch.
        let embed_all = move || -> Result<Vec<Vec<f32>>, String> {
            let mut rows = Vec::with_capacity(texts.len());
            for slice in texts.chunks(max_texts) {
                rows.extend(model.embed(slice)?);
            }
            Ok(rows)
        };
        let result = match tokio::task::spawn_blocking(embed_all).await {
            Ok(result) => result,
            Err(e) => Err(format!("embedding task failed: {e}")),
        };
        match result {
            Ok(mut rows) => {
                for job in jobs.into_iter().rev() {
                    let tail = rows.split_off(rows.len().saturating_sub(job.texts.len()));
                    let _ = job.reply.send(Ok(tail));
                }
            }
            Err(message) => {
                for job in jobs {
                    let _ = job.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

//! Dynamic batching: concurrent callers share model calls, and every caller
//! gets its own rows back, in order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{words_vector, WordsEmbedder};
use meshguard_sidecar::batch::{BatchSettings, Batcher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_batches() {
    let model = Arc::new(WordsEmbedder { delay_ms: 20, ..Default::default() });
    let batcher = Batcher::spawn(model.clone(), BatchSettings { max_texts: 64, max_wait: Duration::from_millis(20) });
    let mut tasks = Vec::new();
    for i in 0..32 {
        let b = batcher.clone();
        tasks.push(tokio::spawn(async move {
            let texts = vec![format!("request {i} first"), format!("request {i} second")];
            let rows = b.embed(texts.clone()).await.unwrap();
            (texts, rows)
        }));
    }
    for task in tasks {
        let (texts, rows) = task.await.unwrap();
        assert_eq!(rows.len(), 2);
        for (text, row) in texts.iter().zip(&rows) {
            assert_eq!(row, &words_vector(text), "rows came back to the wrong caller");
        }
    }
    let calls = model.calls.load(Ordering::SeqCst);
    assert!(calls < 32 / 2, "32 concurrent requests took {calls} model calls");
    assert_eq!(batcher.stats.texts.load(Ordering::Relaxed), 64);
}

#[tokio::test]
async fn batches_respect_max_texts() {
    let model = Arc::new(WordsEmbedder::default());
    let batcher = Batcher::spawn(model.clone(), BatchSettings { max_texts: 4, max_wait: Duration::from_millis(50) });
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let b = batcher.clone();
            tokio::spawn(async move { b.embed(vec![format!("t{i}")]).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().len(), 1);
    }
    assert!(model.calls.load(Ordering::SeqCst) >= 2);
    assert!(batcher.embed(Vec::new()).await.unwrap().is_empty());
}

//! Throughput of the default catalogue (every PII and secret detector) on
//! prose with sprinkled findings, and on the same prose without any; then
//! 256 KB at falling densities of findings, which splits the time into a
//! cost per byte and a cost per finding.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meshguard_benches::{clean_prose, default_engine, prose, prose_every};
use meshguard_core::detect::ScanSession;

fn detect(c: &mut Criterion) {
    let Ok(engine) = default_engine() else {
        return;
    };
    let mut group = c.benchmark_group("default_catalogue");
    for (name, size) in [("1KB", 1024usize), ("16KB", 16 * 1024), ("256KB", 256 * 1024)] {
        let text = prose(size);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("process", name), &text, |b, text| {
            b.iter(|| {
                let mut session = ScanSession::new("request");
                std::hint::black_box(engine.process(text, "messages[0].content", &mut session))
            })
        });
    }
    // Clean prose: the common case, where nothing matches.
    let clean = clean_prose(64 * 1024);
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("process/clean_64KB", |b| {
        b.iter(|| {
            let mut session = ScanSession::new("request");
            std::hint::black_box(engine.process(&clean, "f", &mut session))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("density_256KB");
    for every in [8usize, 32, 128, 512, 0] {
        let text = prose_every(256 * 1024, every);
        let name = if every == 0 { "none".to_string() } else { format!("one_in_{every}_sentences") };
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("process", name), &text, |b, text| {
            b.iter(|| {
                let mut session = ScanSession::new("request");
                std::hint::black_box(engine.process(text, "f", &mut session))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, detect);
criterion_main!(benches);

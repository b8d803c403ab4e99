//! Figure 4 of BENCHMARKS.md in process with criterion: `Index::read` of the Alpine v3.16
//! index against inflating the same file alone, solving the suite's 150-package world
//! against it, and reading a generated index of 100,000 packages. The inputs are the
//! suite's own (`benches/src/workload.rs`).

use std::hint::black_box;
use std::io::Read;
use std::time::Duration;

use apk::index::Index;
use apk::solver::{self, Repository};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../../benches/src/workload.rs"]
mod workload;

/// Inflate every member, as `gzip -dc` does: the floor under reading an index.
fn inflate(bytes: &[u8]) -> usize {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("the index inflates");
    out.len()
}

fn alpine(c: &mut Criterion) {
    let bytes = std::fs::read(workload::ALPINE_INDEX).expect("reading the Alpine index fixture");
    let entries = Index::read(&bytes)
        .expect("the fixture reads")
        .index
        .entries;
    let world = workload::alpine_world(&entries).expect("the world parses");
    let mut group = c.benchmark_group("alpine-v3.16");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("inflate alone", |b| b.iter(|| inflate(black_box(&bytes))));
    // As in the suite, dropping the index is not part of reading it.
    group.bench_function("Index::read", |b| {
        b.iter_with_large_drop(|| Index::read(black_box(&bytes)).expect("the fixture reads"))
    });
    group.throughput(Throughput::Elements(world.len() as u64));
    let repos = [Repository::new(entries)];
    group.bench_function("solve the 150-package world", |b| {
        b.iter(|| {
            solver::solve(&repos, black_box(&world), "x86_64")
                .expect("the world solves")
                .packages
                .len()
        })
    });
    group.finish();
}

fn generated(c: &mut Criterion) {
    let (bytes, _) = workload::generated(100_000).expect("the generated index parses");
    let mut group = c.benchmark_group("generated-100k");
    // A read takes a few hundred milliseconds: ten samples keep the run short.
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("inflate alone", |b| b.iter(|| inflate(black_box(&bytes))));
    group.bench_function("Index::read", |b| {
        b.iter_with_large_drop(|| {
            Index::read(black_box(&bytes)).expect("the generated index reads")
        })
    });
    group.finish();
}

criterion_group!(benches, alpine, generated);
criterion_main!(benches);

//! Version comparison and validation on apk-tools' own test vectors
//! (`tests/fixtures/apk-tools/version.data`, 733 pairs), with criterion.

use std::cmp::Ordering;
use std::hint::black_box;

use apk::version;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const VERSION_DATA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/apk-tools/version.data"
));

/// The `a op b` pairs of the file, comments dropped.
fn pairs() -> Vec<(&'static str, &'static str)> {
    VERSION_DATA
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('#').next()?.split_whitespace().collect();
            match fields[..] {
                [a, _, b] => Some((a, b)),
                _ => None,
            }
        })
        .collect()
}

fn vectors(c: &mut Criterion) {
    let pairs = pairs();
    assert_eq!(pairs.len(), 733, "version.data changed");
    let mut group = c.benchmark_group("version.data");
    group.throughput(Throughput::Elements(pairs.len() as u64));
    group.bench_function("compare every pair", |b| {
        b.iter(|| {
            black_box(&pairs)
                .iter()
                .filter(|(a, b)| version::compare(a, b) == Ordering::Less)
                .count()
        })
    });
    group.bench_function("validate both sides", |b| {
        b.iter(|| {
            black_box(&pairs)
                .iter()
                .filter(|(a, b)| version::is_valid(a) && version::is_valid(b))
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, vectors);
criterion_main!(benches);

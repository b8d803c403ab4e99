//! `apk::gzip::ParallelEncoder` throughput on 8 MiB against one-threaded flate2 at the same
//! level, with criterion. The input is real text: the Alpine v3.16 index's tar, repeated
//! (each copy is far beyond deflate's 32 KiB window, so the ratio stays that of the text).

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use apk::gzip::{self, ParallelEncoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const INPUT_BYTES: usize = 8 << 20;

fn input() -> Vec<u8> {
    let index = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/alpine-v3.16/APKINDEX.tar.gz"
    );
    let bytes = std::fs::read(index).expect("reading the Alpine index fixture");
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .expect("the index inflates");
    tar.iter().copied().cycle().take(INPUT_BYTES).collect()
}

fn encoders(c: &mut Criterion) {
    let data = input();
    let mut group = c.benchmark_group("gzip 8 MiB");
    // Each run takes a good fraction of a second: ten samples keep the run short.
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("ParallelEncoder, level 6", |b| {
        b.iter(|| {
            let mut enc = ParallelEncoder::new(Vec::new(), gzip::DATA_LEVEL);
            enc.write_all(black_box(&data)).expect("writing to a Vec");
            enc.finish().expect("writing to a Vec").len()
        })
    });
    group.bench_function("flate2 one thread, level 6", |b| {
        b.iter(|| gzip::compress(black_box(&data), gzip::DATA_LEVEL).len())
    });
    group.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);

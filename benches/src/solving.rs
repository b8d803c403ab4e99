//! Figure 4, in process: reading indexes and solving worlds against them, on the real
//! Alpine v3.16 index and on generated indexes of 10,000 and 100,000 packages.

use std::io::Read;
use std::path::Path;

use crate::measure::median_of;
use crate::workload;
use anyhow::Context;
use apk::index::Index;
use apk::solver::{self, Repository};
use apk::Dependency;

/// Parse and solve times of one index, in seconds.
pub struct IndexFigures {
    pub packages: usize,
    pub parse_s: f64,
    /// Inflating the same `APKINDEX.tar.gz` alone: the floor under parsing.
    pub inflate_s: f64,
    pub world: usize,
    pub solve_s: f64,
    pub solved: usize,
}

/// Read the index (`Index::read`: gunzip, tar, stanzas), then solve `world` with
/// `solver::solve` as compose does (indexing the repository included).
fn measure(bytes: &[u8], world: &[Dependency], runs: usize) -> anyhow::Result<IndexFigures> {
    let (inflate_s, _) = median_of(runs, || {
        let mut out = Vec::new();
        flate_all(bytes, &mut out);
        out.len()
    });
    let (parse_s, read) = median_of(runs, || Index::read(bytes));
    let entries = read?.index.entries;
    let repos = [Repository::new(entries)];
    let (solve_s, solution) = median_of(runs, || {
        solver::solve(&repos, world, "x86_64").map(|s| s.packages.len())
    });
    let solved = solution.map_err(|e| anyhow::anyhow!("solving the benchmark world: {e}"))?;
    Ok(IndexFigures {
        packages: repos[0].packages.len(),
        parse_s,
        inflate_s,
        world: world.len(),
        solve_s,
        solved,
    })
}

/// Inflate every member, as `gzip -dc` does.
fn flate_all(bytes: &[u8], out: &mut Vec<u8>) {
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(out)
        .expect("the index inflates");
}

/// The real index with its world ([`workload::alpine_world`]).
pub fn alpine(fixture: &Path, runs: usize) -> anyhow::Result<IndexFigures> {
    let bytes = std::fs::read(fixture).with_context(|| format!("reading {}", fixture.display()))?;
    let entries = Index::read(&bytes)?.index.entries;
    let world = workload::alpine_world(&entries)?;
    measure(&bytes, &world, runs)
}

/// A generated index of about `n` packages and its world ([`workload::generated`]).
pub fn generated(n: usize, runs: usize) -> anyhow::Result<IndexFigures> {
    let (bytes, world) = workload::generated(n)?;
    measure(&bytes, &world, runs)
}

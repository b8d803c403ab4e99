//! The inputs of figure 4, shared by the suite (`bench`) and apk's criterion benches
//! (`apk/benches/index.rs` includes this file by path, so it uses only apk's public API
//! and its error type): the real Alpine index with its 150-package world, and generated
//! indexes with theirs.

use std::fmt::Write as _;

use apk::index::{Index, IndexEntry};
use apk::solver::{self, Repository};
use apk::Dependency;
use base64::Engine;
use sha1::{Digest, Sha1};

/// The Alpine v3.16 main x86_64 index in the test fixtures (4,929 packages). Both crates
/// that include this file sit one level under the workspace root.
pub const ALPINE_INDEX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/alpine-v3.16/APKINDEX.tar.gz"
);

/// Packages in every benchmark world.
pub const WORLD: usize = 150;

/// A world of 150 packages of `entries` that solve together, chosen by walking the names
/// in order (about 300 of them, evenly spaced) and keeping each that still solves with
/// those before it.
pub fn alpine_world(entries: &[IndexEntry]) -> apk::Result<Vec<Dependency>> {
    let repos = [Repository::new(entries.to_vec())];
    let mut names: Vec<&str> = entries.iter().map(|e| e.info.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let step = (names.len() / (2 * WORLD)).max(1);
    let mut world: Vec<Dependency> = Vec::new();
    for name in names.iter().step_by(step) {
        if world.len() == WORLD {
            break;
        }
        world.push(name.parse()?);
        if solver::solve(&repos, &world, "x86_64").is_err() {
            world.pop();
        }
    }
    Ok(world)
}

/// A generated index of about `n` packages, as an unsigned `APKINDEX.tar.gz`, with its
/// world of 150 packages spread over the index.
///
/// It has what makes solving hard: every package provides a soname and a command and
/// depends on sonames of packages before it (chains of depth log n), a quarter come in
/// two versions, one in eight has a `-compat` rival that provides the same soname and
/// conflicts with it, and virtual names (`virtual-K`) have several providers ranked by
/// `provider_priority`.
pub fn generated(n: usize) -> apk::Result<(Vec<u8>, Vec<Dependency>)> {
    let entries = Index::parse_text(&generated_text(n))?;
    let named = entries
        .iter()
        .filter(|e| e.info.version.as_str() == "2.0-r0")
        .count();
    let archive = Index {
        description: Some(format!("generated, {n} packages")),
        entries,
    }
    .to_archive(0);
    let world = (0..WORLD)
        .map(|k| format!("g{}", (k * named / WORLD + 7) % named).parse())
        .collect::<apk::Result<_>>()?;
    Ok((archive, world))
}

/// APKINDEX text of about `n` stanzas.
fn generated_text(n: usize) -> String {
    const VIRTUALS: usize = 97;
    let mut out = String::new();
    let stanza = |out: &mut String, name: &str, version: &str, extra: &str| {
        let c = Sha1::digest(format!("{name}-{version}"));
        let _ = write!(
            out,
            "C:Q1{}\nP:{name}\nV:{version}\nA:x86_64\nS:4096\nI:8192\nT:generated package\n\
             U:https://example.org\nL:MIT\nt:1700000000\n{extra}\n",
            base64_sha1(&c)
        );
    };
    // Each round writes at most three stanzas.
    let mut i = 0;
    while i + i / 4 + i / 8 + 3 + VIRTUALS < n {
        let mut deps: Vec<String> = [i / 2, i / 3, i / 5]
            .into_iter()
            .filter(|&p| p != i)
            .map(|p| format!("so:libg{p}.so.1"))
            .collect();
        deps.dedup();
        if i.is_multiple_of(11) {
            deps.push(format!("virtual-{}", i % 97));
        }
        if i.is_multiple_of(8) {
            deps.push(format!("!g{i}-compat"));
        }
        let mut provides = format!("so:libg{i}.so.1=1.{} cmd:g{i}", i % 10);
        if i.is_multiple_of(13) {
            let _ = write!(provides, " virtual-{}", i % 97);
        }
        let depends = if deps.is_empty() {
            String::new()
        } else {
            format!("D:{}\n", deps.join(" "))
        };
        let priority = if i.is_multiple_of(13) {
            format!("k:{}\n", 2 + i % 50)
        } else {
            String::new()
        };
        let name = format!("g{i}");
        stanza(
            &mut out,
            &name,
            "2.0-r0",
            &format!("{depends}p:{provides}\n{priority}"),
        );
        if i.is_multiple_of(4) {
            stanza(
                &mut out,
                &name,
                "1.0-r0",
                &format!("{depends}p:{provides}\n"),
            );
        }
        if i.is_multiple_of(8) {
            stanza(
                &mut out,
                &format!("g{i}-compat"),
                "1.0-r0",
                &format!("p:so:libg{i}.so.1=0.9\nD:!g{i}\n"),
            );
        }
        i += 1;
    }
    // Every virtual name needs at least one provider.
    for v in 0..VIRTUALS {
        stanza(
            &mut out,
            &format!("virtual-{v}-impl"),
            "1.0-r0",
            &format!("p:virtual-{v}\nk:1\n"),
        );
    }
    out
}

fn base64_sha1(sum: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sum)
}

//! The compose benchmarks' input: a signed local repository of generated packages for
//! every architecture, made the way a user makes one (packages through apk's
//! `PackageBuilder`, the key and the index through `pkgr keygen` and `pkgr index`), and an
//! image file over it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use apk::package::{PackageBuilder, Staged};
use apk::{Arch, Dependency, PackageInfo, SignatureAlgorithm, SigningKey};
use rayon::prelude::*;

use crate::content::write_tree;
use crate::measure::run;

/// Packages in the benchmark image.
pub const PACKAGES: usize = 30;

/// The generated project: `image.yaml` beside `repo/<arch>/` and the public key.
pub struct Project {
    pub dir: PathBuf,
    pub image: PathBuf,
    /// Uncompressed bytes of one architecture's packages.
    pub unpacked_bytes: u64,
}

fn name(n: usize) -> String {
    format!("bench-pkg{n:02}")
}

/// Package `n` depends on `n / 2` and `n / 3` (when different from itself): a shallow
/// tree that the solver must walk to reach all thirty from the world's few leaves.
fn depends(n: usize) -> Vec<usize> {
    let mut d: Vec<usize> = [n / 2, n / 3].into_iter().filter(|&p| p != n).collect();
    d.sort_unstable();
    d.dedup();
    d
}

/// Whether the architectures' packages carry the same files.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ArchFiles {
    /// The same files on every architecture, as noarch packages, data and scripts are:
    /// what compose can share between layers.
    Same,
    /// Different bytes in every file of every architecture, as compiled code is: nothing
    /// to share.
    Distinct,
}

/// Package `n`'s files in tree set `set` (one set per arch, or one for all), and their
/// uncompressed size.
struct StagedPackage {
    set: usize,
    n: usize,
    files: Staged,
    bytes: u64,
}

/// Make the repository for `archs` with `total` uncompressed bytes of files per arch,
/// shared unevenly between the packages (package 0 also ships `etc/os-release`).
pub fn generate(
    dir: &Path,
    pkgr: &Path,
    archs: &[Arch],
    total: u64,
    files: ArchFiles,
) -> anyhow::Result<Project> {
    let key_path = dir.join("bench.rsa");
    run(Command::new(pkgr)
        .args(["keygen", "--key-size", "2048"])
        .arg(&key_path))?;
    let key = SigningKey::load(&key_path)?;
    let trees = dir.join("trees");
    // Sizes 1..=30 parts of the total: a few big packages and many small ones.
    let parts: u64 = (1..=PACKAGES as u64).sum();
    // One set of trees for all arches, or one per arch.
    let sets = match files {
        ArchFiles::Same => 1,
        ArchFiles::Distinct => archs.len(),
    };
    let staged: Vec<StagedPackage> = (0..sets * PACKAGES)
        .into_par_iter()
        .map(|k| {
            let (set, n) = (k / PACKAGES, k % PACKAGES);
            let root = trees.join(format!("{set}/{}", name(n)));
            let size = total * (PACKAGES - n) as u64 / parts;
            let seed = 1000 + (set * PACKAGES + n) as u64;
            let stats = write_tree(&root, &name(n), size.max(4096), seed)?;
            if n == 0 {
                std::fs::create_dir_all(root.join("usr/lib"))?;
                std::fs::write(
                    root.join("usr/lib/os-release"),
                    "ID=bench\nNAME=\"Bench\"\nVERSION_ID=1\n",
                )?;
            }
            Ok(StagedPackage {
                set,
                n,
                files: Staged::from_dir(&root)?,
                bytes: stats.bytes,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let unpacked_bytes = staged.iter().filter(|s| s.set == 0).map(|s| s.bytes).sum();
    let repo = dir.join("repo");
    let jobs: Vec<(Arch, &StagedPackage)> = archs
        .iter()
        .enumerate()
        .flat_map(|(i, &a)| {
            let set = i % sets;
            staged
                .iter()
                .filter(move |s| s.set == set)
                .map(move |s| (a, s))
        })
        .collect();
    jobs.par_iter()
        .map(|(arch, StagedPackage { n, files, .. })| {
            let out = repo.join(arch.apk());
            std::fs::create_dir_all(&out)?;
            let mut info = PackageInfo::new(name(*n), "1.0-r0".parse()?, arch.apk());
            info.description = format!("generated benchmark package {n}");
            info.license = "Apache-2.0".into();
            info.origin = Some(name(*n));
            info.build_time = 1_700_000_000;
            info.depends = depends(*n)
                .into_iter()
                .map(|d| name(d).parse::<Dependency>())
                .collect::<Result<_, _>>()?;
            let mut builder = PackageBuilder::new(info, 1_700_000_000);
            builder.signer = Some((&key, vec![SignatureAlgorithm::Sha256]));
            let path = out.join(format!("{}-1.0-r0.apk", name(*n)));
            builder
                .write_to(files, &path)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(())
        })
        .collect::<anyhow::Result<()>>()?;
    for arch in archs {
        let out = repo.join(arch.apk());
        let mut apks: Vec<PathBuf> = std::fs::read_dir(&out)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        apks.sort();
        run(Command::new(pkgr)
            .arg("index")
            .arg("--signing-key")
            .arg(&key_path)
            .arg("-o")
            .arg(out.join("APKINDEX.tar.gz"))
            .args(&apks))?;
    }
    std::fs::remove_dir_all(&trees)?;
    // The world names only the packages nothing depends on; the solver finds the rest.
    let needed: std::collections::BTreeSet<usize> = (0..PACKAGES).flat_map(depends).collect();
    let world: String = (0..PACKAGES)
        .filter(|n| !needed.contains(n))
        .map(|n| format!("    - {}\n", name(n)))
        .collect();
    let arch_list: String = archs.iter().map(|a| format!("  - {}\n", a.apk())).collect();
    let image = dir.join("image.yaml");
    std::fs::write(
        &image,
        format!(
            "contents:\n  keyring:\n    - bench.rsa.pub\n  repositories:\n    - repo\n  packages:\n{world}\
             accounts:\n  users:\n    - username: nonroot\n      uid: 65532\n  run-as: 65532\n\
             archs:\n{arch_list}entrypoint:\n  command: /usr/bin/bench-pkg00-large-0\n"
        ),
    )?;
    Ok(Project {
        dir: dir.to_path_buf(),
        image,
        unpacked_bytes,
    })
}

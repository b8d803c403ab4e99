//! `bench`: every figure of BENCHMARKS.md against its baseline, measured in the same run.
//! `benches/run.sh` builds the release binaries and runs it; `--smoke` runs a tiny
//! version (small inputs, one iteration, no timing asserted) that CI runs as a test.

mod content;
mod measure;
mod report;
mod repository;
mod solving;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context};
use apk::Arch;
use clap::Parser;

use measure::{hyperfine, shell_quote, Job, Timing};
use report::{mib, seconds, verdict, Row};
use repository::ArchFiles;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmarks against baselines measured in the same run"
)]
struct Args {
    /// Tiny inputs and one iteration: proves the harness works, says nothing about speed.
    #[arg(long)]
    smoke: bool,
    /// Where `pkgr` and `compose` are (default: beside this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Scratch directory for the generated inputs (default: a temporary one, removed).
    #[arg(long)]
    work: Option<PathBuf>,
    /// The Markdown file whose results section gets the table (default: BENCHMARKS.md,
    /// or none with --smoke).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Only figure 4 (in process, needs neither `pkgr` nor `compose`); prints the table.
    #[arg(long)]
    indexes_only: bool,
    /// Only figures 2, 3 and 5 (compose); prints the table.
    #[arg(long, conflicts_with = "indexes_only")]
    compose_only: bool,
}

/// Input sizes and repetitions of one mode.
struct Scale {
    tree: u64,
    image: u64,
    runs: usize,
    in_process_runs: usize,
    generated: [usize; 2],
}

const FULL: Scale = Scale {
    tree: 256 << 20,
    image: 200 << 20,
    runs: 3,
    in_process_runs: 9,
    generated: [10_000, 100_000],
};

const SMOKE: Scale = Scale {
    tree: 2 << 20,
    image: 2 << 20,
    runs: 1,
    in_process_runs: 1,
    generated: [500, 2_000],
};

const EPOCH: &str = "1700000000";

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn run(args: Args) -> anyhow::Result<()> {
    let scale = if args.smoke { &SMOKE } else { &FULL };
    if args.indexes_only {
        let table = report::table(&machine(), "with `bench --indexes-only`", &indexes(scale)?);
        println!("{table}");
        return Ok(());
    }
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("this program's directory")?
            .to_path_buf(),
    };
    let pkgr = bin_dir.join("pkgr");
    let compose = bin_dir.join("compose");
    for bin in [&pkgr, &compose] {
        if !bin.exists() {
            bail!(
                "{} is missing: build it first (benches/run.sh does)",
                bin.display()
            );
        }
    }
    let temp;
    let work = match args.work {
        Some(w) => {
            std::fs::create_dir_all(&w)?;
            w
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let machine = machine();
    eprintln!("bench: {machine}; scratch in {}", work.display());

    let mut rows = Vec::new();
    if args.compose_only {
        rows.extend(composing(&work.join("compose"), &pkgr, &compose, scale)?);
        let table = report::table(&machine, "with `bench --compose-only`", &rows);
        println!("{table}");
        return Ok(());
    }
    eprintln!("bench: figure 1, packaging");
    rows.extend(packaging(&work.join("pack"), &pkgr, scale)?);
    eprintln!("bench: figures 2, 3 and 5, compose");
    rows.extend(composing(&work.join("compose"), &pkgr, &compose, scale)?);
    eprintln!("bench: figure 4, indexes and solver");
    rows.extend(indexes(scale)?);

    let mode = if args.smoke {
        "in smoke mode (tiny inputs, one run: not a measurement)"
    } else {
        "with `benches/run.sh`"
    };
    let table = report::table(&machine, mode, &rows);
    println!("{table}");
    let results = args
        .results
        .or_else(|| (!args.smoke).then(|| PathBuf::from("BENCHMARKS.md")));
    if let Some(path) = results {
        report::splice(&path, &table)?;
        eprintln!("bench: results written to {}", path.display());
    }
    Ok(())
}

/// CPU model, core count and the baseline tools' versions.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("{tool} (version unknown)"))
    };
    format!(
        "{cores} cores ({cpu}); {}, {}, {}",
        version("gzip"),
        version("tar"),
        version("hyperfine")
    )
}

fn rss(t: &Timing) -> String {
    t.peak_rss_kib
        .map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

fn rss_pair(ours: &Timing, base: &Timing) -> String {
    format!("{} / {}", rss(ours), rss(base))
}

fn cpu_pair(ours: &Timing, base: &Timing) -> String {
    let cpu = |t: &Timing| t.cpu_s.map_or("?".into(), seconds);
    format!("{} / {}", cpu(ours), cpu(base))
}

fn ratio(ours: f64, base: f64) -> String {
    format!("{:.2}×", ours / base)
}

/// Figure 1: `pkgr build` of a recipe that hard-links a generated tree into its
/// destination, against `tar | gzip -6` of the same tree.
fn packaging(dir: &Path, pkgr: &Path, scale: &Scale) -> anyhow::Result<Vec<Row>> {
    std::fs::create_dir_all(dir)?;
    let tree = dir.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    let stats = content::write_tree(&tree, "bench", scale.tree, 1)?;
    measure::run(
        Command::new(pkgr)
            .args(["keygen", "--key-size", "2048"])
            .arg(dir.join("bench.rsa")),
    )?;
    let tree_arg = shell_quote(&tree.to_string_lossy());
    // Hard links make the copy into the destination nearly free; `cp -a` where the
    // filesystem refuses them.
    std::fs::write(
        dir.join("bench-tree.yaml"),
        format!(
            "package:\n  name: bench-tree\n  version: 1.0.0\n  epoch: 0\n  description: generated tree\n  \
             copyright:\n    - license: Apache-2.0\npipeline:\n  - runs: |\n      \
             cp -al {tree_arg}/. \"${{{{targets.destdir}}}}/\" 2>/dev/null || cp -a {tree_arg}/. \"${{{{targets.destdir}}}}/\"\n"
        ),
    )?;
    let jobs = [
        Job {
            name: "pkgr build",
            command: format!(
                "{} build bench-tree.yaml --arch x86_64 --runner host --signing-key bench.rsa --out-dir out",
                shell_quote(&pkgr.to_string_lossy())
            ),
            prepare: "rm -rf out".into(),
        },
        Job {
            name: "tar | gzip -6",
            command: format!("tar -cf - -C {tree_arg} . | gzip -6 > tree.tar.gz"),
            prepare: "rm -f tree.tar.gz".into(),
        },
    ];
    let t = hyperfine(
        dir,
        &jobs,
        scale.runs,
        &[("SOURCE_DATE_EPOCH", EPOCH.into())],
    )?;
    let apk_size = std::fs::metadata(dir.join("out/x86_64/bench-tree-1.0.0-r0.apk"))
        .context("pkgr build wrote no package")?
        .len();
    let tgz_size = std::fs::metadata(dir.join("tree.tar.gz"))?.len();
    let target = 1.0 / 1.5;
    let (ours, base) = (t[0].median_s, t[1].median_s);
    Ok(vec![Row {
        figure: format!(
            "1. pkgr build, staged tree of {} ({} files) to a signed .apk ({}; tar.gz {})",
            mib(stats.bytes),
            stats.files,
            mib(apk_size),
            mib(tgz_size)
        ),
        ours: seconds(ours),
        baseline: format!("{} (`tar -cf - \\| gzip -6`)", seconds(base)),
        ratio: ratio(ours, base),
        target: "≤ 0.67× (≥ 1.5× faster)".into(),
        verdict: verdict(ours / base <= target),
        peak_rss: rss_pair(&t[0], &t[1]),
        cpu: cpu_pair(&t[0], &t[1]),
    }])
}

/// Generate a repository for every arch in `dir` (emptied first).
#[allow(clippy::print_stderr)]
fn generate_project(
    dir: &Path,
    pkgr: &Path,
    scale: &Scale,
    files: ArchFiles,
) -> anyhow::Result<repository::Project> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    let project = repository::generate(dir, pkgr, &Arch::ALL, scale.image, files)?;
    eprintln!(
        "bench: repository of {} packages x {} arches made in {}",
        repository::PACKAGES,
        Arch::ALL.len(),
        seconds(started.elapsed().as_secs_f64())
    );
    Ok(project)
}

/// `compose build` of `project`'s image for `arch` (`--arch` argument) into `out`.
fn compose_cmd(compose: &Path, project: &repository::Project, arch: &str, out: &str) -> String {
    format!(
        "{} build {} --arch {arch} --out {out}",
        shell_quote(&compose.to_string_lossy()),
        shell_quote(&project.image.to_string_lossy()),
    )
}

/// Figures 2, 3 and 5: one repository for five arches, one image of 30 packages; compose
/// for one arch against the tar floor, five arches against one, and their peak memory;
/// then five arches against one again on a repository whose arches share no file.
fn composing(dir: &Path, pkgr: &Path, compose: &Path, scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let project = generate_project(dir, pkgr, scale, ArchFiles::Same)?;
    let cmd = |arch: &str, out: &str| compose_cmd(compose, &project, arch, out);
    let jobs = [
        Job {
            name: "compose, 1 arch",
            command: cmd("x86_64", "out1"),
            prepare: "rm -rf out1".into(),
        },
        Job {
            name: "tar -xzf each + tar -czf",
            // GNU tar reads the concatenated members of an .apk as one archive.
            command: "mkdir floor && for f in repo/x86_64/*.apk; do tar -xzf \"$f\" -C floor \
                      --warning=no-unknown-keyword || exit 1; done && tar -czf floor.tar.gz -C floor ."
                .into(),
            prepare: "rm -rf floor floor.tar.gz".into(),
        },
        Job {
            name: "compose, 5 arches",
            command: cmd("all", "out5"),
            prepare: "rm -rf out5".into(),
        },
    ];
    let env = [("SOURCE_DATE_EPOCH", EPOCH.to_string())];
    let t = hyperfine(&project.dir, &jobs, scale.runs, &env)?;
    let (one, floor, five) = (&t[0], &t[1], &t[2]);

    // The same build on one thread must give the same bytes.
    let started = Instant::now();
    measure::run(
        Command::new("sh")
            .arg("-c")
            .arg(cmd("all", "out5-serial"))
            .current_dir(&project.dir)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env("RAYON_NUM_THREADS", "1"),
    )?;
    let serial_s = started.elapsed().as_secs_f64();
    let read_index = |out: &str| std::fs::read(project.dir.join(out).join("index.json"));
    let identical = read_index("out5")? == read_index("out5-serial")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let distinct = generate_project(&dir.join("distinct"), pkgr, scale, ArchFiles::Distinct)?;
    let distinct_jobs = [
        Job {
            name: "compose, 1 arch, no file shared between arches",
            command: compose_cmd(compose, &distinct, "x86_64", "out1"),
            prepare: "rm -rf out1".into(),
        },
        Job {
            name: "compose, 5 arches, no file shared between arches",
            command: compose_cmd(compose, &distinct, "all", "out5"),
            prepare: "rm -rf out5".into(),
        },
    ];
    let d = hyperfine(&distinct.dir, &distinct_jobs, scale.runs, &env)?;
    let (distinct_one, distinct_five) = (&d[0], &d[1]);

    let size = mib(project.unpacked_bytes);
    Ok(vec![
        Row {
            figure: format!(
                "2. compose build, 1 arch, {} packages ({size}), local repository",
                repository::PACKAGES
            ),
            ours: seconds(one.median_s),
            baseline: format!(
                "{} (`tar -xzf` each .apk, `tar -czf` the tree)",
                seconds(floor.median_s)
            ),
            ratio: ratio(one.median_s, floor.median_s),
            target: "≤ 1.2×".into(),
            verdict: verdict(one.median_s / floor.median_s <= 1.2),
            peak_rss: rss_pair(one, floor),
            cpu: cpu_pair(one, floor),
        },
        five_against_one(
            "3. compose build, 5 arches, same image (the arches' packages hold the same files)",
            five,
            one,
        ),
        five_against_one(
            "3. the same on a repository whose arches share no file (nothing to share)",
            distinct_five,
            distinct_one,
        ),
        Row {
            figure: format!(
                "3. same, RAYON_NUM_THREADS=1 against {cores} threads: identical index.json"
            ),
            ours: seconds(serial_s),
            baseline: format!("{} ({cores} threads)", seconds(five.median_s)),
            ratio: ratio(serial_s, five.median_s),
            target: "identical bytes".into(),
            verdict: verdict(identical),
            peak_rss: "".into(),
            cpu: String::new(),
        },
        Row {
            figure: format!("5. peak RSS, compose build, 5 arches of a {size} image"),
            ours: rss(five),
            baseline: format!("{size} (the image, unpacked, one arch)"),
            ratio: five.peak_rss_kib.map_or("?".into(), |k| {
                format!("{:.2}×", (k * 1024) as f64 / project.unpacked_bytes as f64)
            }),
            target: "< 256 MiB".into(),
            verdict: verdict(five.peak_rss_kib.is_some_and(|k| k < 256 * 1024)),
            peak_rss: rss(five),
            cpu: String::new(),
        },
    ])
}

/// A row of figure 3: five arches against one.
fn five_against_one(figure: &str, five: &Timing, one: &Timing) -> Row {
    Row {
        figure: figure.into(),
        ours: seconds(five.median_s),
        baseline: format!("{} (1 arch)", seconds(one.median_s)),
        ratio: ratio(five.median_s, one.median_s),
        target: "≤ 2.6×".into(),
        verdict: verdict(five.median_s / one.median_s <= 2.6),
        peak_rss: rss_pair(five, one),
        cpu: cpu_pair(five, one),
    }
}

/// Figure 4: the Alpine index and generated ones.
fn indexes(scale: &Scale) -> anyhow::Result<Vec<Row>> {
    let alpine = solving::alpine(Path::new(workload::ALPINE_INDEX), scale.in_process_runs)?;
    let [small_n, large_n] = scale.generated;
    let small = solving::generated(small_n, scale.in_process_runs)?;
    let large = solving::generated(large_n, scale.in_process_runs.div_ceil(3))?;
    let parse_row = |label: String, f: &solving::IndexFigures, target_s: f64| Row {
        figure: label,
        ours: seconds(f.parse_s),
        baseline: format!("{} (inflating it alone)", seconds(f.inflate_s)),
        ratio: ratio(f.parse_s, f.inflate_s),
        target: format!("< {}", seconds(target_s)),
        verdict: verdict(f.parse_s < target_s),
        peak_rss: String::new(),
        cpu: String::new(),
    };
    let solve_row = |label: String, f: &solving::IndexFigures, target_s: f64| Row {
        figure: format!("{label} ({} packages chosen)", f.solved),
        ours: seconds(f.solve_s),
        baseline: "—".into(),
        ratio: "—".into(),
        target: format!("< {}", seconds(target_s)),
        verdict: verdict(f.solve_s < target_s),
        peak_rss: String::new(),
        cpu: String::new(),
    };
    // Time per package at the large size against the small one.
    let growth_row = |figure: String, small_s: f64, large_s: f64| {
        let per_package = (large_s / large.packages as f64) / (small_s / small.packages as f64);
        Row {
            figure,
            ours: seconds(large_s),
            baseline: format!("{} ({} packages)", seconds(small_s), small.packages),
            ratio: format!("{per_package:.2}× per package"),
            target: "near-linear".into(),
            verdict: verdict(per_package < 1.5),
            peak_rss: String::new(),
            cpu: String::new(),
        }
    };
    Ok(vec![
        parse_row(
            format!(
                "4. read the Alpine v3.16 index ({} packages)",
                alpine.packages
            ),
            &alpine,
            0.030,
        ),
        solve_row(
            format!("4. solve a {}-package world against it", alpine.world),
            &alpine,
            0.010,
        ),
        parse_row(
            format!("4. read a generated index ({} packages)", large.packages),
            &large,
            0.600,
        ),
        solve_row(
            format!("4. solve a {}-package world against it", large.world),
            &large,
            0.100,
        ),
        growth_row(
            format!(
                "4. growth {} → {} packages: read",
                small.packages, large.packages
            ),
            small.parse_s,
            large.parse_s,
        ),
        growth_row("4. growth: solve".into(), small.solve_s, large.solve_s),
    ])
}

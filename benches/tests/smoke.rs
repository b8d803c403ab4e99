//! The benchmark suite in smoke mode: tiny inputs, one run of every figure against its
//! baseline. It proves the harness runs end to end (generation, pkgr, compose, tar, gzip,
//! hyperfine, GNU time, the table); it asserts nothing about speed.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn smoke_run_measures_every_figure() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    // `cargo test --workspace` builds pkgr and compose into the same directory.
    let bin_dir = bench.parent().unwrap();
    let work = tempfile::tempdir().unwrap();
    let results = work.path().join("RESULTS.md");
    std::fs::write(
        &results,
        "# prose kept\n<!-- results:begin -->\nold\n<!-- results:end -->\nafter\n",
    )
    .unwrap();
    let out = Command::new(&bench)
        .arg("--smoke")
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--work")
        .arg(work.path().join("scratch"))
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench --smoke failed:\n{stderr}");
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.starts_with("# prose kept\n<!-- results:begin -->\nMeasured in smoke mode"));
    assert!(text.ends_with("<!-- results:end -->\nafter\n"), "{text}");
    assert!(!text.contains("\nold\n"), "{text}");
    for figure in [
        "| 1. pkgr build",
        "| 2. compose build, 1 arch",
        "| 3. compose build, 5 arches",
        "| 3. same, RAYON_NUM_THREADS=1",
        "| 3. the same on a repository whose arches share no file",
        "| 4. read the Alpine",
        "| 4. solve a 150-package world",
        "| 4. growth",
        "| 5. peak RSS",
    ] {
        assert!(text.contains(figure), "no row {figure:?}:\n{text}");
    }
    // Five arches built on one thread and on several give the same bytes, smoke or not.
    let row = text
        .lines()
        .find(|l| l.contains("RAYON_NUM_THREADS=1"))
        .unwrap();
    assert!(row.contains("| met |"), "{row}");
    // Every whole-process figure got a peak RSS from GNU time.
    let rss = text
        .lines()
        .find(|l| l.starts_with("| 5. peak RSS"))
        .unwrap();
    assert!(rss.contains("MiB |"), "{rss}");
}

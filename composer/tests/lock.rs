//! `compose lock`: the lock file beside the image file pins every package per arch; a
//! build and `show-packages` take exactly the locked packages, and a lock that no longer
//! matches the repositories or the configuration fails naming the lock and the package.

mod common;

use std::path::Path;

use common::{compose, project, text};

/// replayout depends on pretend-baselayout: the lock holds both per arch.
const IMAGE: &str = "contents:
  keyring: [repo/melange.rsa.pub]
  repositories: [repo]
  packages: [replayout]
archs: [x86_64, aarch64]
";

fn lock(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = compose(dir, &[&["lock", "image.yaml"], args].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "image.lock.json\n");
    serde_json::from_slice(&std::fs::read(dir.join("image.lock.json")).unwrap()).unwrap()
}

fn save(dir: &Path, lock: &serde_json::Value) {
    std::fs::write(
        dir.join("image.lock.json"),
        serde_json::to_string_pretty(lock).unwrap(),
    )
    .unwrap();
}

/// The locked package `name` of `arch`.
fn package<'a>(
    lock: &'a mut serde_json::Value,
    name: &str,
    arch: &str,
) -> &'a mut serde_json::Value {
    lock["contents"]["packages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["name"] == name && p["architecture"] == arch)
        .unwrap_or_else(|| panic!("{name} ({arch}) is not locked"))
}

fn digest(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().last().unwrap().to_string()
}

fn build_fails(dir: &Path) -> String {
    let out = compose(dir, &["build", "image.yaml", "--out", "oci"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(!dir.join("oci").exists());
    text(&out.stderr)
}

#[test]
fn a_locked_build_gives_the_digest_of_a_solved_build() {
    let dir = project(IMAGE);
    let solved = digest(&compose(
        dir.path(),
        &["build", "image.yaml", "--out", "solved"],
    ));
    let json = lock(dir.path(), &[]);
    assert_eq!(json["version"], "v1");
    assert_eq!(json["config"]["name"], "image.yaml");
    let packages = json["contents"]["packages"].as_array().unwrap();
    let listed: Vec<String> = packages
        .iter()
        .map(|p| format!("{} {}", p["architecture"], p["name"]))
        .collect();
    assert_eq!(
        listed,
        [
            "\"aarch64\" \"pretend-baselayout\"",
            "\"aarch64\" \"replayout\"",
            "\"x86_64\" \"pretend-baselayout\"",
            "\"x86_64\" \"replayout\"",
        ]
    );
    for p in packages {
        assert!(p["checksum"].as_str().unwrap().starts_with("Q1"), "{p}");
        assert_eq!(p["version"], "1.0.0-r0");
        assert_eq!(p["repository"], "repo");
        let url = format!(
            "repo/{}/{}-1.0.0-r0.apk",
            p["architecture"].as_str().unwrap(),
            p["name"].as_str().unwrap()
        );
        assert_eq!(p["url"], url.as_str());
        assert!(dir.path().join(url).is_file());
    }
    // Locking again writes the same bytes.
    let before = std::fs::read(dir.path().join("image.lock.json")).unwrap();
    lock(dir.path(), &[]);
    assert_eq!(
        std::fs::read(dir.path().join("image.lock.json")).unwrap(),
        before
    );

    let locked = digest(&compose(
        dir.path(),
        &["build", "image.yaml", "--out", "locked"],
    ));
    assert_eq!(locked, solved);
}

#[test]
fn a_tampered_identity_names_the_package_and_the_lock_file() {
    let dir = project(IMAGE);
    let mut json = lock(dir.path(), &[]);
    let real = package(&mut json, "pretend-baselayout", "x86_64")["checksum"].clone();
    let forged = "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    package(&mut json, "pretend-baselayout", "x86_64")["checksum"] = forged.into();
    save(dir.path(), &json);
    let err = build_fails(dir.path());
    let expected = format!(
        "image.lock.json: pretend-baselayout-1.0.0-r0 (x86_64) is locked to {forged} but the repository has {}",
        real.as_str().unwrap()
    );
    assert!(err.contains(&expected), "{err}");
    // --no-lock solves instead.
    let out = compose(
        dir.path(),
        &["build", "image.yaml", "--out", "oci", "--no-lock"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_locked_version_missing_from_the_repository_fails() {
    let dir = project(IMAGE);
    let mut json = lock(dir.path(), &[]);
    package(&mut json, "replayout", "aarch64")["version"] = "9.9-r0".into();
    save(dir.path(), &json);
    let err = build_fails(dir.path());
    assert!(
        err.contains(
            "image.lock.json: replayout-9.9-r0 (aarch64) is locked but no repository has it"
        ),
        "{err}"
    );
}

#[test]
fn a_lock_must_cover_every_arch_built() {
    let dir = project(IMAGE);
    lock(dir.path(), &["--arch", "x86_64"]);
    let err = build_fails(dir.path());
    assert!(
        err.contains("image.lock.json does not cover aarch64 (it covers x86_64)"),
        "{err}"
    );
    let out = compose(
        dir.path(),
        &["build", "image.yaml", "--out", "oci", "--arch", "x86_64"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_lock_made_for_other_packages_is_stale() {
    let dir = project(IMAGE);
    lock(dir.path(), &[]);
    std::fs::write(
        dir.path().join("image.yaml"),
        IMAGE.replace("[replayout]", "[replayout, pretend-baselayout]"),
    )
    .unwrap();
    let err = build_fails(dir.path());
    assert!(
        err.contains("image.lock.json was made for other contents of image.yaml")
            && err.contains("compose lock image.yaml"),
        "{err}"
    );
    // Other parts of the file do not touch the solve: the lock stays valid.
    lock(dir.path(), &[]);
    std::fs::write(
        dir.path().join("image.yaml"),
        format!(
            "{}entrypoint:\n  command: /bin/true\n",
            IMAGE.replace("[replayout]", "[replayout, pretend-baselayout]")
        ),
    )
    .unwrap();
    let out = compose(dir.path(), &["build", "image.yaml", "--out", "oci"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_lock_whose_packages_do_not_install_together_fails_in_apk_terms() {
    let dir = project(IMAGE);
    let mut json = lock(dir.path(), &[]);
    json["contents"]["packages"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["name"] != "pretend-baselayout");
    save(dir.path(), &json);
    let err = build_fails(dir.path());
    assert!(
        err.contains("image.lock.json: the packages locked for")
            && err.contains("pretend-baselayout")
            && err.contains("replayout-1.0.0-r0"),
        "{err}"
    );
}

/// show-packages prints what build would install: the lock's packages, without
/// downloading them; --no-lock shows the solver's choice.
#[test]
fn show_packages_honours_the_lock() {
    let dir = project(IMAGE);
    lock(dir.path(), &["--arch", "x86_64"]);
    let shown = compose(
        dir.path(),
        &["show-packages", "image.yaml", "--arch", "x86_64"],
    );
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert_eq!(
        text(&shown.stdout),
        "pretend-baselayout 1.0.0-r0\nreplayout 1.0.0-r0\n"
    );
    let uncovered = compose(
        dir.path(),
        &["show-packages", "image.yaml", "--arch", "aarch64"],
    );
    assert!(!uncovered.status.success());
    assert!(
        text(&uncovered.stderr).contains("does not cover aarch64"),
        "{}",
        text(&uncovered.stderr)
    );
    let solved = compose(
        dir.path(),
        &[
            "show-packages",
            "image.yaml",
            "--arch",
            "aarch64",
            "--no-lock",
        ],
    );
    assert_eq!(
        text(&solved.stdout),
        "pretend-baselayout 1.0.0-r0\nreplayout 1.0.0-r0\n"
    );
}

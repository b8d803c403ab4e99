//! `compose build --tar`: packages made by melange compose into a docker archive that
//! skopeo's `docker-archive:` transport reads and copies, deterministically, holding the
//! same images as `--out`.

mod common;

use std::path::Path;

use common::{compose, peer, project, text};
use serde_json::Value;

const IMAGE: &str = common::MELANGE_IMAGE;

/// The `SOURCE_DATE_EPOCH` `common::compose` sets.
const EPOCH: u64 = 1_700_000_000;

fn compose_ok(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = compose(dir, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Run skopeo, the peer that reads docker archives here (there is no Docker daemon).
fn skopeo(args: &[&str], cwd: &Path) -> String {
    peer("skopeo", args, cwd)
}

fn skopeo_json(args: &[&str], cwd: &Path) -> Value {
    serde_json::from_str(&skopeo(args, cwd)).unwrap()
}

/// The layout's config of one architecture, as `--out` writes it.
fn layout_config_digest(layout: &Path, apk_arch: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                == format!("latest-{apk_arch}").as_str()
        })
        .unwrap();
    let hex = desc["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn a_single_arch_tar_is_read_and_copied_by_skopeo_docker_archive() {
    let dir = project(IMAGE);
    let lines = compose_ok(
        dir.path(),
        &[
            "build",
            "image.yaml",
            "--tar",
            "out/image.tar",
            "--arch",
            "aarch64",
        ],
    );
    assert_eq!(lines[0], "out/image.tar");
    assert!(lines[1].starts_with("sha256:"), "{lines:?}");
    let layout_lines = compose_ok(
        dir.path(),
        &["build", "image.yaml", "--out", "oci", "--arch", "aarch64"],
    );
    assert_eq!(lines[1], layout_lines[1], "the tar holds the --out image");

    // One image: skopeo reads it without a reference, and by either of its tags.
    for source in [
        "docker-archive:out/image.tar",
        "docker-archive:out/image.tar:image:latest",
        "docker-archive:out/image.tar:image:latest-aarch64",
    ] {
        let info = skopeo_json(&["inspect", source], dir.path());
        assert_eq!(info["Architecture"], "arm64", "{source}: {info}");
        assert_eq!(info["Os"], "linux");
    }
    let info = skopeo_json(&["inspect", "docker-archive:out/image.tar"], dir.path());
    let config = skopeo_json(
        &["inspect", "--config", "docker-archive:out/image.tar"],
        dir.path(),
    );
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["config"]["User"], "65532");
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/bin/app");
    assert_eq!(config["config"]["WorkingDir"], "/home/nonroot");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    // skopeo names a docker archive's layers by their diff IDs.
    assert_eq!(info["Layers"], config["rootfs"]["diff_ids"], "{info}");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 1);
    let raw = skopeo_json(
        &["inspect", "--raw", "docker-archive:out/image.tar"],
        dir.path(),
    );
    assert_eq!(
        raw["config"]["digest"].as_str().unwrap(),
        layout_config_digest(&dir.path().join("oci"), "aarch64"),
        "same config as the layout"
    );

    skopeo(
        &["copy", "docker-archive:out/image.tar", "oci:copied:t"],
        dir.path(),
    );
    let copied = skopeo_json(&["inspect", "oci:copied:t"], dir.path());
    assert_eq!(copied["Architecture"], "arm64");
    assert_eq!(copied["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn a_two_arch_tar_tags_each_image_with_its_arch_like_apko() {
    let dir = project(IMAGE);
    let lines = compose_ok(
        dir.path(),
        &["build", "image.yaml", "--tar", "two.tar", "--name", "demo"],
    );
    let layout = compose_ok(dir.path(), &["build", "image.yaml", "--out", "oci"]);
    assert_eq!(lines[1], layout[1], "same image index digest as --out");

    for (oci_arch, apk_arch) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let source = format!("docker-archive:two.tar:demo:latest-{apk_arch}");
        let info = skopeo_json(&["inspect", &source], dir.path());
        assert_eq!(info["Architecture"], oci_arch, "{info}");
        let raw = skopeo_json(&["inspect", "--raw", &source], dir.path());
        assert_eq!(
            raw["config"]["digest"].as_str().unwrap(),
            layout_config_digest(&dir.path().join("oci"), apk_arch)
        );
        let target = format!("oci:copy-{apk_arch}:t");
        skopeo(&["copy", &source, &target], dir.path());
    }
    // The tar is the layout plus manifest.json: it reads as an OCI archive too.
    let raw = skopeo(
        &["inspect", "--raw", "oci-archive:two.tar:latest"],
        dir.path(),
    );
    assert!(
        raw.contains("\"architecture\":\"amd64\"") && raw.contains("\"architecture\":\"arm64\""),
        "{raw}"
    );
}

#[test]
fn two_builds_give_the_same_tar_bytes() {
    let dir = project(IMAGE);
    compose_ok(dir.path(), &["build", "image.yaml", "--tar", "one.tar"]);
    compose_ok(dir.path(), &["build", "image.yaml", "--tar", "two.tar"]);
    let one = std::fs::read(dir.path().join("one.tar")).unwrap();
    assert_eq!(one, std::fs::read(dir.path().join("two.tar")).unwrap());

    let parsed = apk::tarball::parse(&one).unwrap();
    assert!(parsed.has_eoa, "the tar ends with end-of-archive blocks");
    let paths: Vec<&str> = parsed.entries.iter().map(|e| e.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    for name in ["manifest.json", "index.json", "oci-layout", "blobs/sha256/"] {
        assert!(paths.contains(&name), "{name} in {paths:?}");
    }
    // index.json names the images for Docker's containerd store, as `docker save` does.
    let index = parsed
        .entries
        .iter()
        .find(|e| e.path == "index.json")
        .unwrap();
    let index = String::from_utf8_lossy(index.data);
    for name in [
        "image:latest",
        "image:latest-x86_64",
        "image:latest-aarch64",
    ] {
        let annotation = format!("\"io.containerd.image.name\":\"docker.io/library/{name}\"");
        assert!(index.contains(&annotation), "{index}");
    }
    for e in &parsed.entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, EPOCH), "{}", e.path);
        let mode = if e.path.ends_with('/') { 0o755 } else { 0o644 };
        assert_eq!(e.mode, mode, "{}", e.path);
    }
    // Only the two tars are left: no temporary layout or file.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["image.yaml", "one.tar", "repo", "two.tar"]);
}

#[test]
fn a_failed_build_keeps_the_previous_tar() {
    let dir = project(IMAGE);
    compose_ok(dir.path(), &["build", "image.yaml", "--tar", "image.tar"]);
    let before = std::fs::read(dir.path().join("image.tar")).unwrap();
    std::fs::write(
        dir.path().join("image.yaml"),
        IMAGE.replace(
            "    - replayout\n",
            "    - replayout\n    - no-such-package\n",
        ),
    )
    .unwrap();
    let out = compose(dir.path(), &["build", "image.yaml", "--tar", "image.tar"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no-such-package"));
    assert_eq!(std::fs::read(dir.path().join("image.tar")).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn an_invalid_name_is_refused_before_building() {
    let dir = project(IMAGE);
    let out = compose(
        dir.path(),
        &[
            "build",
            "image.yaml",
            "--tar",
            "x.tar",
            "--name",
            "Bad:Name",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a valid image name"));
    assert!(!dir.path().join("x.tar").exists());
}

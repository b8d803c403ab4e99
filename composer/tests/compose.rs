//! `compose` end to end: packages made by melange compose into a two-arch image that
//! skopeo and umoci accept, reproducibly; bad input fails clearly and changes nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{compose, fixture, peer, project, text};

const IMAGE: &str = common::MELANGE_IMAGE;

#[test]
fn melange_packages_compose_into_a_two_arch_image_skopeo_and_umoci_accept() {
    let dir = project(IMAGE);
    let out = compose(
        dir.path(),
        &["build", "image.yaml", "--out", "oci", "--tag", "test"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let digest = text(&out.stdout).lines().last().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let raw = peer("skopeo", &["inspect", "--raw", "oci:oci:test"], dir.path());
    assert!(
        raw.contains("\"architecture\":\"arm64\"") && raw.contains("\"architecture\":\"amd64\""),
        "{raw}"
    );
    for (oci_arch, apk_arch) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let config = peer(
            "skopeo",
            &["inspect", "--config", &format!("oci:oci:test-{apk_arch}")],
            dir.path(),
        );
        assert!(
            config.contains(&format!("\"architecture\": \"{oci_arch}\"")),
            "{config}"
        );
        assert!(config.contains("\"User\": \"65532\""), "{config}");
        assert!(config.contains("\"/usr/bin/app\""), "{config}");
        assert!(
            config.contains("\"WorkingDir\": \"/home/nonroot\""),
            "{config}"
        );

        let bundle = dir.path().join(format!("bundle-{apk_arch}"));
        peer(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("oci:test-{apk_arch}"),
                bundle.to_str().unwrap(),
            ],
            dir.path(),
        );
        let root = bundle.join("rootfs");
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
        let installed = std::fs::read_to_string(root.join("lib/apk/db/installed")).unwrap();
        assert!(installed.contains("P:pretend-baselayout") && installed.contains("P:replayout"));
        assert!(installed.contains(&format!("A:{apk_arch}")));
        assert_eq!(
            std::fs::read_to_string(root.join("etc/apk/arch"))
                .unwrap()
                .trim(),
            apk_arch
        );
        assert!(root.join("home/nonroot").is_dir());
    }
    let copied = dir.path().join("copy");
    peer(
        "skopeo",
        &[
            "copy",
            "--all",
            "oci:oci:test",
            &format!("oci:{}:test", copied.display()),
        ],
        dir.path(),
    );
}

#[test]
fn two_builds_give_the_same_digest() {
    let dir = project(IMAGE);
    let one = compose(dir.path(), &["build", "image.yaml", "--out", "one"]);
    let two = compose(dir.path(), &["build", "image.yaml", "--out", "two"]);
    assert!(
        one.status.success() && two.status.success(),
        "{}",
        text(&one.stderr)
    );
    assert_eq!(
        text(&one.stdout).lines().last(),
        text(&two.stdout).lines().last()
    );
}

#[test]
fn show_packages_prints_the_solution_per_arch() {
    let dir = project(IMAGE);
    let out = compose(
        dir.path(),
        &["show-packages", "image.yaml", "--arch", "aarch64"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "pretend-baselayout 1.0.0-r0\nreplayout 1.0.0-r0\n"
    );
}

#[test]
fn an_untrusted_index_is_refused_unless_allowed() {
    let dir = project(&IMAGE.replace("  keyring:\n    - repo/melange.rsa.pub\n", ""));
    let out = compose(dir.path(), &["build", "image.yaml", "--out", "oci"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not signed by a trusted key"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("oci").exists());
    let out = compose(
        dir.path(),
        &["build", "image.yaml", "--out", "oci", "--allow-untrusted"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn an_unsatisfiable_world_names_what_is_missing_and_keeps_the_old_layout() {
    let dir = project(IMAGE);
    assert!(
        compose(dir.path(), &["build", "image.yaml", "--out", "oci"])
            .status
            .success()
    );
    let before = std::fs::read(dir.path().join("oci/index.json")).unwrap();
    std::fs::write(
        dir.path().join("image.yaml"),
        IMAGE.replace(
            "    - replayout\n",
            "    - replayout\n    - no-such-package\n",
        ),
    )
    .unwrap();
    let out = compose(dir.path(), &["build", "image.yaml", "--out", "oci"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no-such-package") && err.contains("image.yaml"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("oci/index.json")).unwrap(),
        before
    );
}

#[test]
fn an_unknown_key_names_file_line_and_column() {
    let dir = project(&IMAGE.replace("work-dir:", "workdir:"));
    let out = compose(dir.path(), &["build", "image.yaml", "--out", "oci"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("image.yaml:") && err.contains("workdir"),
        "{err}"
    );
}

/// A repository made with the library: `packages` per arch, signed by the test key.
fn write_repo(root: &Path, packages: &[(&str, &str, &str)]) {
    use apk::index::{Index, IndexEntry};
    use apk::package::{Content, PackageBuilder, Staged, StagedEntry};
    use apk::tarball::Kind;
    let key = apk::SigningKey::load(&fixture("test-keys/test.rsa")).unwrap();
    let mut by_arch: std::collections::BTreeMap<&str, Vec<IndexEntry>> = Default::default();
    for (arch, name, version) in packages {
        let dir = root.join(arch);
        std::fs::create_dir_all(&dir).unwrap();
        let body = format!("{name} {version}\n").into_bytes();
        let staged = Staged::new(vec![
            StagedEntry::new("etc", Kind::Dir, 0o755, Content::None),
            StagedEntry::new(
                format!("etc/{name}"),
                Kind::File {
                    size: body.len() as u64,
                },
                0o644,
                Content::Bytes(body),
            ),
        ])
        .unwrap();
        let info = apk::PackageInfo::new(*name, version.parse().unwrap(), *arch);
        let mut b = PackageBuilder::new(info, 1_700_000_000);
        b.signer = Some((&key, vec![apk::SignatureAlgorithm::Sha256]));
        let built = b
            .write_to(&staged, &dir.join(format!("{name}-{version}.apk")))
            .unwrap();
        by_arch.entry(arch).or_default().push(IndexEntry {
            checksum: built.checksum,
            size: built.size,
            info: built.info,
        });
    }
    for (arch, entries) in by_arch {
        let index = Index {
            description: None,
            entries,
        };
        let signed = apk::index::sign(
            &index.to_archive(0),
            &key,
            &[apk::SignatureAlgorithm::Sha256],
            0,
        )
        .unwrap();
        std::fs::write(root.join(arch).join("APKINDEX.tar.gz"), signed).unwrap();
    }
}

#[test]
fn arches_get_the_same_version_where_one_exists_on_all() {
    let dir = tempfile::tempdir().unwrap();
    // x86_64 has a newer hello that aarch64 lacks: both must get 1.0.
    write_repo(
        &dir.path().join("repo"),
        &[
            ("x86_64", "hello", "1.0-r0"),
            ("x86_64", "hello", "2.0-r0"),
            ("aarch64", "hello", "1.0-r0"),
        ],
    );
    std::fs::copy(
        fixture("test-keys/test.rsa.pub"),
        dir.path().join("test.rsa.pub"),
    )
    .unwrap();
    let image = "contents:\n  keyring: [test.rsa.pub]\n  repositories: [repo]\n  packages: [hello]\narchs: [x86_64, aarch64]\n";
    std::fs::write(dir.path().join("image.yaml"), image).unwrap();
    let out = compose(
        dir.path(),
        &["build", "image.yaml", "--out", "oci", "--tag", "t"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for arch in ["x86_64", "aarch64"] {
        let bundle = dir.path().join(format!("b-{arch}"));
        peer(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("oci:t-{arch}"),
                bundle.to_str().unwrap(),
            ],
            dir.path(),
        );
        let installed =
            std::fs::read_to_string(bundle.join("rootfs/lib/apk/db/installed")).unwrap();
        assert!(installed.contains("V:1.0-r0"), "{arch}: {installed}");
    }
    // show-packages solves each arch alone: the newest where it exists.
    let alone = compose(
        dir.path(),
        &["show-packages", "image.yaml", "--arch", "x86_64"],
    );
    assert_eq!(text(&alone.stdout), "hello 2.0-r0\n");
}

/// The pip packages the SBOM checks need: the SPDX validator, and a JSON schema validator
/// with the SPDX 2.3 JSON schema, which lib4sbom ships as `schemas/spdx/2.3-schema.json`
/// (spdx-spec's `schemas/spdx-schema.json` at v2.3; only this machine's registries are
/// reachable, not the spec's repository).
const SBOM_PIP: &str = "pip install 'spdx-tools>=0.8,<0.9' 'jsonschema>=4' 'lib4sbom==0.10.4'";

/// Validates `doc` against the SPDX 2.3 JSON schema (draft-07) with Python's jsonschema;
/// lib4sbom is found, not imported, so nothing of it runs.
const SPDX_SCHEMA_CHECK: &str = r#"
import importlib.util, json, os, sys
import jsonschema
spec = importlib.util.find_spec("lib4sbom")
if spec is None:
    sys.exit("lib4sbom is not installed: it ships the SPDX 2.3 JSON schema")
path = os.path.join(spec.submodule_search_locations[0], "schemas", "spdx", "2.3-schema.json")
with open(path, encoding="utf-8") as f:
    schema = json.load(f)
assert schema["title"] == "SPDX 2.3", schema["title"]
with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f)
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print("/".join(map(str, e.path)), e.message)
sys.exit(1 if errors else 0)
"#;

fn sbom_validator(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed for the SBOM checks ({SBOM_PIP}): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} ({}; the checks need {SBOM_PIP}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr)).to_ascii_lowercase();
    for word in ["invalid", "issue", "error"] {
        assert!(!said.contains(word), "{program} said {word:?}: {said}");
    }
}

#[test]
fn each_arch_gets_an_spdx_sbom_that_both_validators_accept() {
    let dir = project(IMAGE);
    let out = compose(
        dir.path(),
        &["build", "image.yaml", "--out", "oci", "--tag", "test"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for arch in ["x86_64", "aarch64"] {
        let path = dir.path().join(format!("oci/sbom-{arch}.spdx.json"));
        let json =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.to_str().unwrap();
        sbom_validator("pyspdxtools", &["-i", file]);
        sbom_validator("python3", &["-c", SPDX_SCHEMA_CHECK, file]);

        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let packages = doc["packages"].as_array().unwrap();
        let os: Vec<_> = packages
            .iter()
            .filter(|p| p["primaryPackagePurpose"] == "OPERATING_SYSTEM")
            .collect();
        assert_eq!(os.len(), 1, "{json}");
        let purls: Vec<&str> = packages
            .iter()
            .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
            .filter(|r| r["referenceType"] == "purl")
            .map(|r| r["referenceLocator"].as_str().unwrap())
            .collect();
        // Every installed package, as the solver chose it, with its purl and checksum.
        let shown = compose(dir.path(), &["show-packages", "image.yaml", "--arch", arch]);
        let installed = text(&shown.stdout);
        assert!(!installed.trim().is_empty());
        for line in installed.lines() {
            let (name, version) = line.split_once(' ').unwrap();
            // The namespace is the os-release ID that pretend-baselayout ships.
            let purl = format!("pkg:apk/replaces/{name}@{version}?arch=");
            assert!(
                purls.iter().any(|p| p.starts_with(&purl)),
                "{purl} not in {purls:?}"
            );
            let package = packages.iter().find(|p| p["name"] == name).unwrap();
            assert_eq!(package["versionInfo"], version);
            assert_eq!(package["checksums"][0]["algorithm"], "SHA1");
        }
        assert_eq!(purls.len(), installed.lines().count());
        // replayout depends on pretend-baselayout.
        for kind in ["DESCRIBES", "CONTAINS", "DEPENDS_ON"] {
            assert!(json.contains(&format!("\"{kind}\"")), "{kind}: {json}");
        }
    }
    // The SBOMs are beside the layout, not in it: skopeo still reads it.
    peer("skopeo", &["inspect", "--raw", "oci:oci:test"], dir.path());
}

//! The SBOMs pkgr embeds in packages and compose writes for images, checked by a real
//! peer: the SPDX project's own validator `pyspdxtools` (PyPI `spdx-tools`). It must be
//! installed; the test fails, not skips, without it.

use std::path::Path;
use std::process::Command;

use apk::sbom::{
    image_spdx_json, sbom_path, spdx_json, ImagePackage, ImageSbomInput, OperatingSystem, SbomFile,
    SbomInput, SourceRef,
};
use apk::Arch;

const INSTALL: &str = "pip install 'spdx-tools>=0.8,<0.9'";

/// Runs `pyspdxtools -i <file>`, which parses and validates; it logs nothing on success.
fn validate(path: &Path) {
    let output = match Command::new("pyspdxtools").arg("-i").arg(path).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("pyspdxtools is not on PATH; the SBOM tests need the SPDX validator: {INSTALL}")
        }
        Err(e) => panic!("running pyspdxtools: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!(
        "pyspdxtools -i {} ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\ndocument:\n{}",
        path.display(),
        output.status,
        std::fs::read_to_string(path).unwrap_or_default()
    );
    assert!(output.status.success(), "{report}");
    let all = format!("{stdout}{stderr}").to_ascii_lowercase();
    for word in ["invalid", "issue", "error"] {
        assert!(!all.contains(word), "validator said {word:?}: {report}");
    }
}

fn check(dir: &Path, input: &SbomInput) -> String {
    let json = spdx_json(input);
    // Where the package carries it, relative to a temporary root.
    let path = dir.join(sbom_path(input.name, input.version));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &json).unwrap();
    validate(&path);
    json
}

fn base<'a>() -> SbomInput<'a> {
    SbomInput {
        name: "hello",
        version: "2.12.1-r0",
        arch: Arch::X86_64,
        license: "GPL-3.0-or-later",
        license_texts: &[],
        copyright: "",
        description: "the GNU hello world program",
        url: "https://www.gnu.org/software/hello/",
        origin: "hello",
        namespace: "wolfi",
        created: 1_700_000_000,
        files: &[],
        sources: &[],
    }
}

fn sources() -> Vec<SourceRef> {
    vec![
        SourceRef::Archive {
            uri: "https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz".into(),
            name: String::new(),
            version: String::new(),
            sha256: Some("8d99142afd92576f30b0cd7cb42a8dc6809998bc5d607d88761f512e26c7db20".into()),
            sha512: None,
        },
        SourceRef::Git {
            repository: "https://github.com/chainguard-dev/melange".into(),
            tag: Some("v0.1.0".into()),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        },
        SourceRef::Git {
            repository: "https://git.savannah.gnu.org/git/hello.git".into(),
            tag: None,
            commit: Some("89abcdef0123456789abcdef0123456789abcdef".into()),
        },
        SourceRef::Git {
            repository: "git@gitlab.com:group/sub/project.git".into(),
            tag: Some("1.0".into()),
            commit: None,
        },
        // Neither location is a URL validators accept: NOASSERTION.
        SourceRef::Archive {
            uri: "file:///srv/mirror/patches.tar.xz".into(),
            name: "patches".into(),
            version: "3".into(),
            sha256: None,
            sha512: Some("ab".repeat(64)),
        },
        SourceRef::Git {
            repository: "/srv/git/local".into(),
            tag: None,
            commit: None,
        },
    ]
}

fn files() -> Vec<SbomFile> {
    [
        "usr/bin/hello",
        "usr/share/man/man1/hello.1",
        "usr/share/info/hello.info",
        "usr/lib/libx_y+z.so.1",
    ]
    .iter()
    .enumerate()
    .map(|(i, path)| SbomFile {
        path: path.to_string(),
        sha1: [i as u8 + 1; 20],
        sha256: [i as u8 + 0x10; 32],
    })
    .collect()
}

#[test]
fn sbom_without_files_validates() {
    let dir = tempfile::tempdir().unwrap();
    let sources = sources();
    let json = check(
        dir.path(),
        &SbomInput {
            sources: &sources,
            ..base()
        },
    );
    assert!(json.contains("\"filesAnalyzed\": false"));
    assert!(json.contains("GENERATED_FROM"));
}

#[test]
fn sbom_with_files_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (files, sources) = (files(), sources());
    let json = check(
        dir.path(),
        &SbomInput {
            name: "hello-doc",
            files: &files,
            sources: &sources,
            namespace: "unknown",
            arch: Arch::Armv7,
            ..base()
        },
    );
    assert!(json.contains("\"packageVerificationCode\""));
    assert_eq!(json.matches("\"CONTAINS\"").count(), files.len());
}

#[test]
fn sbom_with_odd_licenses_validates() {
    let dir = tempfile::tempdir().unwrap();
    let texts = vec![(
        "LicenseRef-custom".to_string(),
        "Permission is granted to do anything.".to_string(),
    )];
    for (i, license) in [
        "",
        "NONE",
        "GPL v2 or later",
        "BSD-style",
        "mit and apache-2.0",
        "GPL-2.0+ WITH Classpath-exception-2.0 OR (LGPL-2.1 AND LicenseRef-custom)",
        "MIT AND Unknown-License-1.0 AND MIT+",
        "GPL-2.0-only WITH No-Such-exception",
        "GPL-2.0-with-GCC-exception",
        "foo+ AND LicenseRef-fooplus",
        "((MIT)",
        "Public Domain",
        "ЛИЦЕНЗИЯ",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("odd{i}");
        check(
            dir.path(),
            &SbomInput {
                name: &name,
                license,
                license_texts: &texts,
                copyright: "Copyright 2024 Someone <someone@example.com>",
                ..base()
            },
        );
    }
}

#[test]
fn sbom_with_odd_names_and_no_metadata_validates() {
    let dir = tempfile::tempdir().unwrap();
    let files = files();
    check(
        dir.path(),
        &SbomInput {
            name: "libstdc++-dev",
            version: "14.2.0_git20240101-r12",
            origin: "gcc",
            description: "",
            url: "not a url",
            namespace: "",
            created: 0,
            files: &files,
            arch: Arch::Ppc64le,
            ..base()
        },
    );
}

#[test]
fn image_sbom_validates() {
    let dir = tempfile::tempdir().unwrap();
    let licenses = [
        "MIT",
        "GPL-2.0-only WITH Linux-syscall-note",
        "GPL v2 or later",
        "",
        "LicenseRef-custom AND custom+",
    ];
    let packages: Vec<ImagePackage> = [
        "wolfi-baselayout",
        "glibc",
        "libstdc++",
        "ld-linux",
        "ca-certificates-bundle",
    ]
    .iter()
    .zip(licenses)
    .enumerate()
    .map(|(i, (&name, license))| ImagePackage {
        name,
        version: "1.2.3_git20240101-r4",
        arch: if i == 0 { "noarch" } else { "aarch64" },
        license,
        origin: "glibc",
        description: "a package",
        url: "https://example.org/project",
        checksum: if i == 4 {
            apk::Checksum::Md5([i as u8; 16])
        } else {
            apk::Checksum::Sha1([i as u8; 20])
        },
        depends: if i == 0 {
            vec![]
        } else {
            vec!["wolfi-baselayout", "glibc"]
        },
    })
    .collect();
    for (i, os_release) in [
        Some("ID=wolfi\nNAME=\"Wolfi\"\nVERSION_ID=20230201\n"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let os = OperatingSystem::from_os_release(os_release);
        let json = image_spdx_json(&ImageSbomInput {
            name: "static",
            tag: "latest",
            arch: Arch::Aarch64,
            created: 1_700_000_000,
            os: &os,
            namespace: &os.id,
            packages: &packages,
        });
        let path = dir.path().join(format!("sbom-{i}.spdx.json"));
        std::fs::write(&path, &json).unwrap();
        validate(&path);
        assert!(json.contains("\"primaryPackagePurpose\": \"OPERATING_SYSTEM\""));
        assert_eq!(json.matches("\"DEPENDS_ON\"").count(), 7);
        assert_eq!(json.matches("\"CONTAINS\"").count(), packages.len());
    }
}

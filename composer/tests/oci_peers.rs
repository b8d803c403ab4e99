//! Layers and OCI layouts checked by the tools that consume them: skopeo reads, inspects
//! and copies the multi-arch layout; umoci unpacks each architecture's rootfs.
//!
//! The peers are required: a missing one fails with the Debian package to install.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use apk::package::{Content, Package, PackageBuilder, Staged, StagedEntry};
use apk::tarball::{Kind, Owner};
use apk::{Arch, PackageInfo};
use composer::layer::{self, ApkFiles, Extra, ExtraKind, LayerSpec, PackageInput};
use composer::oci::{self, ArchImage, ImageConfig, WrittenLayout};
use serde_json::Value;

const MTIME: u64 = 1_700_000_000;
const TAG: &str = "test";
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/bin/sh\n";

/// Run a peer, failing the test with the Debian package to install when it is missing.
fn peer(tool: &str, debian_package: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "{tool} is needed for this test and could not be run ({e}): \
             install the Debian package `{debian_package}` (apt-get install -y {debian_package})"
        )
    });
    assert!(
        out.status.success(),
        "{tool} {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn skopeo(args: &[&str]) -> String {
    // No policy file on a fresh machine: accept anything, this is a local layout.
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    peer("skopeo", "skopeo", &all)
}

fn umoci(args: &[&str]) -> String {
    peer("umoci", "umoci", args)
}

fn entry(path: &str, kind: Kind, mode: u32, content: Content) -> StagedEntry {
    StagedEntry::new(path, kind, mode, content)
}

fn dir(path: &str, mode: u32) -> StagedEntry {
    entry(path, Kind::Dir, mode, Content::None)
}

fn file(path: &str, body: &str, mode: u32) -> StagedEntry {
    entry(
        path,
        Kind::File {
            size: body.len() as u64,
        },
        mode,
        Content::Bytes(body.as_bytes().to_vec()),
    )
}

fn symlink(path: &str, target: &str) -> StagedEntry {
    entry(
        path,
        Kind::Symlink {
            target: target.into(),
        },
        0o777,
        Content::None,
    )
}

struct Built {
    package: Package,
    bytes: Vec<u8>,
}

fn build_package(name: &str, arch: Arch, entries: Vec<StagedEntry>) -> Built {
    let mut info = PackageInfo::new(name, "1.0.0-r0".parse().unwrap(), arch.apk());
    info.description = format!("{name} for the OCI peer tests");
    info.license = "Apache-2.0".into();
    info.build_time = MTIME;
    let mut bytes = Vec::new();
    PackageBuilder::new(info, MTIME)
        .write(&Staged::new(entries).unwrap(), &mut bytes)
        .unwrap();
    Built {
        package: Package::read(&bytes).unwrap(),
        bytes,
    }
}

/// `hello`: a program, a setuid helper, a symlink, a directory of its own; `hello-conf`:
/// a config file, a shared directory and an absolute symlink. Contents differ by arch.
fn packages(arch: Arch) -> Vec<Built> {
    let hello = build_package(
        "hello",
        arch,
        vec![
            dir("usr", 0o755),
            dir("usr/bin", 0o755),
            file(
                "usr/bin/hello",
                &format!("#!/bin/sh\necho hello from {arch}\n"),
                0o755,
            ),
            file("usr/bin/hello-suid", "#!/bin/sh\nid\n", 0o4755),
            symlink("usr/bin/hi", "hello"),
            dir("usr/share", 0o755),
            dir("usr/share/hello", 0o750),
            file("usr/share/hello/README", "hello\n", 0o644),
        ],
    );
    let conf = build_package(
        "hello-conf",
        arch,
        vec![
            dir("etc", 0o755),
            file("etc/hello.conf", &format!("arch={arch}\n"), 0o644),
            dir("usr", 0o755),
            dir("usr/bin", 0o755),
            symlink("usr/bin/hello-abs", "/usr/bin/hello"),
        ],
    );
    vec![hello, conf]
}

fn extras() -> Vec<Extra> {
    vec![
        Extra::file("/etc/passwd", PASSWD, 0o644),
        Extra {
            path: "/home/nonroot".into(),
            kind: ExtraKind::Directory { recursive: false },
            mode: Some(0o750),
            owner: Some(Owner {
                uid: 65532,
                gid: 65532,
                uname: "nonroot".into(),
                gname: "nonroot".into(),
            }),
        },
    ]
}

fn image_config() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/usr/bin/hello".into()],
        env: BTreeMap::from([(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin".into(),
        )]),
        work_dir: Some("/".into()),
        user: Some("65532".into()),
        stop_signal: Some("SIGTERM".into()),
        volumes: ["/data".to_string()].into(),
        annotations: BTreeMap::from([("org.opencontainers.image.title".into(), "hello".into())]),
        ..ImageConfig::default()
    }
}

const ARCHS: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

/// Build both arches' layers and write the layout at `out`.
fn write_image(out: &Path) -> WrittenLayout {
    let staging = oci::staging_dir(out);
    fs::create_dir_all(&staging).unwrap();
    let apk_files = ApkFiles {
        world: vec!["hello-conf".into(), "hello".into()],
        repositories: vec!["https://packages.example/main".into()],
        keys: BTreeMap::new(),
    };
    let extras = extras();
    let images = ARCHS
        .iter()
        .map(|&arch| {
            let built = packages(arch);
            let inputs: Vec<PackageInput> = built
                .iter()
                .map(|b| PackageInput {
                    package: &b.package,
                    bytes: &b.bytes,
                    tag: None,
                })
                .collect();
            let spec = LayerSpec {
                arch,
                packages: &inputs,
                apk_files: &apk_files,
                extras: &extras,
                mtime: MTIME,
            };
            let layer = layer::build(&spec, &staging).unwrap();
            ArchImage { arch, layer }
        })
        .collect();
    oci::write_layout(out, TAG, MTIME, &image_config(), images, &[]).unwrap()
}

fn oci_ref(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let image = format!("{}:{tag}", layout.display());
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &image,
        bundle.to_str().unwrap(),
    ]);
    bundle.join("rootfs")
}

#[test]
fn skopeo_reads_inspects_and_copies_the_multi_arch_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("image");
    let written = write_image(&out);

    let raw = skopeo(&["inspect", "--raw", &oci_ref(&out, TAG)]);
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    assert_eq!(
        format!("sha256:{}", apk::checksum::sha256_hex(raw.as_bytes())),
        written.index.digest,
        "skopeo serves the index blob unchanged"
    );

    for (oci_arch, apk_arch) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let inspected = skopeo(&[
            "inspect",
            "--override-os",
            "linux",
            "--override-arch",
            oci_arch,
            &oci_ref(&out, TAG),
        ]);
        let v: Value = serde_json::from_str(&inspected).unwrap();
        assert_eq!(v["Architecture"], oci_arch, "{inspected}");
        assert_eq!(v["Os"], "linux");
        assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
        assert_eq!(v["Labels"]["org.opencontainers.image.title"], "hello");
        // Each arch's manifest also has a ref of its own.
        let config = skopeo(&[
            "inspect",
            "--config",
            &oci_ref(&out, &format!("{TAG}-{apk_arch}")),
        ]);
        let config: Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["architecture"], oci_arch);
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/bin/hello");
        assert_eq!(config["config"]["User"], "65532");
        assert_eq!(config["config"]["StopSignal"], "SIGTERM");
    }

    let copy = tmp.path().join("copy");
    skopeo(&["copy", "--all", &oci_ref(&out, TAG), &oci_ref(&copy, TAG)]);
    let copied = skopeo(&["inspect", "--raw", &oci_ref(&copy, TAG)]);
    assert_eq!(copied, raw, "an OCI to OCI copy keeps the index as it is");
    for image in &written.images {
        let hex = image.layer.digest.strip_prefix("sha256:").unwrap();
        assert!(copy.join("blobs/sha256").join(hex).is_file());
    }
}

#[test]
fn umoci_unpacks_each_arch_with_contents_modes_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("image");
    write_image(&out);
    for arch in ARCHS {
        let bundle = tmp.path().join(format!("bundle-{arch}"));
        let rootfs = unpack(&out, &format!("{TAG}-{}", arch.apk()), &bundle);
        assert_eq!(
            fs::read_to_string(rootfs.join("usr/bin/hello")).unwrap(),
            format!("#!/bin/sh\necho hello from {arch}\n")
        );
        assert_eq!(mode(&rootfs.join("usr/bin/hello")), 0o755);
        assert_eq!(mode(&rootfs.join("usr/bin/hello-suid")), 0o4755);
        assert_eq!(mode(&rootfs.join("usr/share/hello")), 0o750);
        assert_eq!(mode(&rootfs.join("tmp")), 0o1777);
        assert_eq!(
            fs::read_link(rootfs.join("usr/bin/hi")).unwrap(),
            Path::new("hello")
        );
        assert_eq!(
            fs::read_link(rootfs.join("usr/bin/hello-abs")).unwrap(),
            Path::new("/usr/bin/hello")
        );
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/hello.conf")).unwrap(),
            format!("arch={arch}\n")
        );
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/passwd")).unwrap(),
            PASSWD
        );
        assert_eq!(mode(&rootfs.join("home/nonroot")), 0o750);
        assert_eq!(mode(&rootfs.join("home")), 0o755);
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/apk/arch")).unwrap(),
            format!("{}\n", arch.apk())
        );
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/apk/world")).unwrap(),
            "hello\nhello-conf\n"
        );
        // Scanners find the packages where apk keeps them.
        let installed = fs::read_to_string(rootfs.join("lib/apk/db/installed")).unwrap();
        let db = apk::installed::InstalledDb::parse_installed(&installed).unwrap();
        let names: Vec<&str> = db
            .packages
            .iter()
            .map(|p| p.entry.info.name.as_str())
            .collect();
        assert_eq!(names, ["hello", "hello-conf"]);
        assert!(installed.contains(&format!("A:{}", arch.apk())));
        assert!(
            installed.contains("R:hello-suid\na:0:0:4755\n"),
            "{installed}"
        );
        // umoci writes the runtime config from the image config.
        let runtime: Value =
            serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(runtime["process"]["args"][0], "/usr/bin/hello");
    }
}

#[test]
fn the_same_inputs_give_the_same_index_digest_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let write_with = |threads: usize, name: &str| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| write_image(&tmp.path().join(name)))
    };
    let one = write_with(1, "one");
    let many = write_with(8, "many");
    assert_eq!(one, many);
    assert_eq!(
        fs::read(tmp.path().join("one/index.json")).unwrap(),
        fs::read(tmp.path().join("many/index.json")).unwrap()
    );
}

#[test]
fn a_layer_without_packages_has_a_golden_digest() {
    // Pins the tar and gzip encoding of the layer and of the OCI documents. If this
    // changes on purpose, update the digests and say why in the commit.
    let tmp = tempfile::tempdir().unwrap();
    let spec = LayerSpec {
        arch: Arch::X86_64,
        packages: &[],
        apk_files: &ApkFiles {
            world: vec!["hello".into()],
            repositories: vec!["https://packages.example/main".into()],
            keys: BTreeMap::from([("test.rsa.pub".to_string(), b"KEY\n".to_vec())]),
        },
        extras: &extras(),
        mtime: 0,
    };
    let layer = layer::build(&spec, tmp.path()).unwrap();
    let (digest, diff_id) = (layer.digest.clone(), layer.diff_id.clone());
    let out = tmp.path().join("image");
    // Files beside the layout (SBOMs) change no digest.
    let extra = ("extra.txt".to_string(), b"beside the layout\n".to_vec());
    let written = oci::write_layout(
        &out,
        TAG,
        0,
        &ImageConfig::default(),
        vec![ArchImage {
            arch: Arch::X86_64,
            layer,
        }],
        std::slice::from_ref(&extra),
    )
    .unwrap();
    assert_eq!(fs::read(out.join("extra.txt")).unwrap(), extra.1);
    assert_eq!(
        (
            digest.as_str(),
            diff_id.as_str(),
            written.index.digest.as_str()
        ),
        (
            "sha256:f2033a890e24cd3a0ad08778261fcb5317a8d053fa5f16b306abc755462156c5",
            "sha256:c3a18fec8c357a2e7bdf8aa97ac9d129a82f477ef4f144287c0fdf89f2f7c426",
            "sha256:2082dfe91d6c9767028266359109906cbba1fb5b412ebc5bba77a338112221c5"
        )
    );
}

#[test]
fn a_file_claimed_by_two_packages_names_both() {
    let a = build_package(
        "alpha",
        Arch::X86_64,
        vec![
            dir("usr", 0o755),
            dir("usr/bin", 0o755),
            file("usr/bin/tool", "a", 0o755),
        ],
    );
    let b = build_package(
        "beta",
        Arch::X86_64,
        vec![
            dir("usr", 0o755),
            dir("usr/bin", 0o755),
            file("usr/bin/tool", "b", 0o755),
        ],
    );
    let inputs: Vec<PackageInput> = [&a, &b]
        .iter()
        .map(|b| PackageInput {
            package: &b.package,
            bytes: &b.bytes,
            tag: None,
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let spec = LayerSpec {
        arch: Arch::X86_64,
        packages: &inputs,
        apk_files: &ApkFiles::default(),
        extras: &[],
        mtime: 0,
    };
    let err = layer::build(&spec, tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("/usr/bin/tool")
            && err.contains("alpha-1.0.0-r0")
            && err.contains("beta-1.0.0-r0"),
        "{err}"
    );
    // Nothing is left behind in the staging directory.
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_failed_write_leaves_the_previous_layout_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("image");
    let first = write_image(&out);
    let before = fs::read(out.join("index.json")).unwrap();
    // Two images for one arch: refused before anything is written.
    let staging = oci::staging_dir(&out);
    let spec = LayerSpec {
        arch: Arch::X86_64,
        packages: &[],
        apk_files: &ApkFiles::default(),
        extras: &[],
        mtime: 0,
    };
    let images = (0..2)
        .map(|_| ArchImage {
            arch: Arch::X86_64,
            layer: layer::build(&spec, &staging).unwrap(),
        })
        .collect();
    let err = oci::write_layout(&out, TAG, 0, &ImageConfig::default(), images, &[]).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    assert_eq!(fs::read(out.join("index.json")).unwrap(), before);
    let raw = skopeo(&["inspect", "--raw", &oci_ref(&out, TAG)]);
    assert_eq!(
        format!("sha256:{}", apk::checksum::sha256_hex(raw.as_bytes())),
        first.index.digest
    );
    // Writing again replaces the layout and leaves no temporary directory beside it.
    write_image(&out);
    let names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["image"]);
}

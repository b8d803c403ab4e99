//! The project's distroless set end to end (issue 5): every recipe in `recipes/` built by
//! `pkgr` for the five architectures, `images/hello.yaml` composed by `compose`, and each
//! architecture's image unpacked by umoci and its `/usr/bin/hello` run under qemu-user.
//!
//! The peers (bubblewrap, the cross compilers, umoci, qemu-user-static) are required: a
//! missing one fails the test with the Debian package to install, never skips it.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One target: apk arch, qemu-user program, Debian GNU triplet, Debian arch.
struct Target {
    apk: &'static str,
    qemu: &'static str,
    triplet: &'static str,
    debian: &'static str,
}

const TARGETS: [Target; 5] = [
    Target {
        apk: "x86_64",
        qemu: "qemu-x86_64-static",
        triplet: "x86_64-linux-gnu",
        debian: "amd64",
    },
    Target {
        apk: "aarch64",
        qemu: "qemu-aarch64-static",
        triplet: "aarch64-linux-gnu",
        debian: "arm64",
    },
    Target {
        apk: "armv7",
        qemu: "qemu-arm-static",
        triplet: "arm-linux-gnueabihf",
        debian: "armhf",
    },
    Target {
        apk: "s390x",
        qemu: "qemu-s390x-static",
        triplet: "s390x-linux-gnu",
        debian: "s390x",
    },
    Target {
        apk: "ppc64le",
        qemu: "qemu-ppc64le-static",
        triplet: "powerpc64le-linux-gnu",
        debian: "ppc64el",
    },
];

const TAG: &str = "hello";
const NONROOT: u32 = 65532;

/// File names that would mean a shell or a package manager got into the image.
const FORBIDDEN: &[&str] = &["sh", "ash", "bash", "dash", "busybox", "apk"];

#[allow(clippy::print_stderr)]
fn log(what: &str, since: Instant) {
    eprintln!("[{:>6.1}s] {what}", since.elapsed().as_secs_f64());
}

/// The repository root: this crate lives in `tests/`.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root")
}

/// `pkgr` or `compose` beside this test's executable: `target/<profile>/deps/e2e-*` runs,
/// the binaries are in `target/<profile>/`.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` (or `cargo test --workspace`, which builds it)",
        path.display()
    );
    path
}

/// The apk arch this machine runs natively, if it is one of the five.
fn host_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64"),
        "aarch64" => Some("aarch64"),
        "arm" => Some("armv7"),
        "s390x" => Some("s390x"),
        "powerpc64" if cfg!(target_endian = "little") => Some("ppc64le"),
        _ => None,
    }
}

/// Every peer the test needs, checked up front so that a missing one fails at once with
/// the Debian packages to install.
fn require_peers() {
    let mut missing: BTreeSet<String> = BTreeSet::new();
    fn probe(
        missing: &mut BTreeSet<String>,
        program: &str,
        args: &[&str],
        package: &str,
    ) -> Option<String> {
        match Command::new(program).args(args).output() {
            Ok(out) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                missing.insert(format!("{program} (Debian package `{package}`)"));
                None
            }
            Err(e) => panic!("cannot run {program}: {e}"),
        }
    }
    probe(&mut missing, "bwrap", &["--version"], "bubblewrap");
    probe(&mut missing, "umoci", &["--version"], "umoci");
    probe(&mut missing, "zic", &["--version"], "libc-bin");
    for t in &TARGETS {
        let native = host_arch() == Some(t.apk);
        if !native {
            probe(&mut missing, t.qemu, &["--version"], "qemu-user-static");
        }
        // Debian names the cross compilers by the triplet with `_` spelled `-`.
        let (gcc_pkg, libc_pkg) = if native {
            ("gcc".to_string(), "libc6-dev".to_string())
        } else {
            (
                format!("gcc-{}", t.triplet.replace('_', "-")),
                format!("libc6-dev-{}-cross", t.debian),
            )
        };
        let cc = format!("{}-gcc", t.triplet);
        // A static program needs the target's libc.a; gcc prints the bare name when it
        // has none.
        if let Some(libc) = probe(&mut missing, &cc, &["-print-file-name=libc.a"], &gcc_pkg) {
            if !Path::new(&libc).is_absolute() {
                missing.insert(format!(
                    "{} static C library (Debian package `{libc_pkg}`)",
                    t.triplet
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "this test needs peers that are not installed:\n  {}\n\
         install them with apt-get install -y <packages> (see .ci/run)",
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// Run a command to success and return its stdout.
fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `images/hello.yaml` with its repository and keyring pointed at the test's own.
fn image_file(repo: &Path, key_pub: &Path) -> String {
    let path = project_root().join("images/hello.yaml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut image: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let contents = image
        .get_mut("contents")
        .and_then(serde_norway::Value::as_mapping_mut)
        .expect("images/hello.yaml has `contents`");
    let one = |p: &Path| {
        serde_norway::Value::Sequence(vec![serde_norway::Value::String(
            p.to_str().expect("UTF-8 temp path").to_string(),
        )])
    };
    contents.insert("repositories".into(), one(repo));
    contents.insert("keyring".into(), one(key_pub));
    serde_norway::to_string(&image).expect("YAML")
}

/// Relative paths of everything under `root`, sorted; symlinks are not followed.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(root.join(&rel))
            .unwrap_or_else(|e| panic!("{}: {e}", root.join(&rel).display()))
            .map(|e| e.expect("directory entry"))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = rel.join(e.file_name());
            if e.file_type().expect("file type").is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

fn read(rootfs: &Path, rel: &str) -> String {
    fs::read_to_string(rootfs.join(rel)).unwrap_or_else(|e| panic!("/{rel} in the image: {e}"))
}

/// What every architecture's image must hold, and must not.
fn check_rootfs(arch: &str, bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    let ctx = |what: &str| format!("{TAG}-{arch}: {what}");

    // The runtime configuration umoci derived from the image config.
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/usr/bin/hello"]),
        "{}",
        ctx("entrypoint")
    );
    assert_eq!(
        config["process"]["user"]["uid"],
        serde_json::json!(NONROOT),
        "{}",
        ctx("runs as nonroot")
    );

    let passwd = read(&rootfs, "etc/passwd");
    assert!(
        passwd.lines().any(|l| l.starts_with("root:x:0:0:")),
        "{}",
        ctx(&format!("root in /etc/passwd:\n{passwd}"))
    );
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with(&format!("nonroot:x:{NONROOT}:"))),
        "{}",
        ctx(&format!("nonroot in /etc/passwd:\n{passwd}"))
    );
    let group = read(&rootfs, "etc/group");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with(&format!("nonroot:x:{NONROOT}:"))),
        "{}",
        ctx(&format!("nonroot in /etc/group:\n{group}"))
    );
    assert!(
        read(&rootfs, "usr/lib/os-release").contains("\nID="),
        "{}",
        ctx("/usr/lib/os-release")
    );

    let bundle_pem = read(&rootfs, "etc/ssl/certs/ca-certificates.crt");
    let certs = bundle_pem.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certs > 100, "{}", ctx(&format!("{certs} CA certificates")));
    let mode = fs::metadata(rootfs.join("etc/ssl/certs/ca-certificates.crt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "{}", ctx("CA bundle mode"));
    assert_eq!(
        fs::read_link(rootfs.join("etc/ssl/cert.pem")).ok(),
        Some(PathBuf::from("certs/ca-certificates.crt")),
        "{}",
        ctx("/etc/ssl/cert.pem")
    );

    for zone in ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"] {
        let data = fs::read(rootfs.join("usr/share/zoneinfo").join(zone))
            .unwrap_or_else(|e| panic!("{}", ctx(&format!("zoneinfo {zone}: {e}"))));
        assert!(
            data.starts_with(b"TZif"),
            "{}",
            ctx(&format!("{zone} is TZif"))
        );
    }

    let tmp = fs::symlink_metadata(rootfs.join("tmp")).unwrap();
    assert!(tmp.is_dir(), "{}", ctx("/tmp is a directory"));
    assert_eq!(
        tmp.permissions().mode() & 0o7777,
        0o1777,
        "{}",
        ctx("/tmp mode")
    );
    for dir in ["home/nonroot", "root", "var"] {
        assert!(rootfs.join(dir).is_dir(), "{}", ctx(&format!("/{dir}")));
    }

    // No shell and no package manager, under any path: symlinks count, dangling or not.
    for rel in [
        "bin/sh",
        "bin/bash",
        "bin/busybox",
        "usr/bin/sh",
        "sbin/apk",
        "usr/bin/apk",
    ] {
        assert!(
            fs::symlink_metadata(rootfs.join(rel)).is_err(),
            "{}",
            ctx(&format!("/{rel} must not be in a distroless image"))
        );
    }
    let all = walk(&rootfs);
    let forbidden: Vec<_> = all
        .iter()
        .filter(|p| {
            // apk's database directories (/lib/apk/db, /etc/apk) are expected.
            let named = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| FORBIDDEN.contains(&n));
            named && !fs::symlink_metadata(rootfs.join(p)).is_ok_and(|m| m.is_dir())
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "{}",
        ctx(&format!("shells or package managers: {forbidden:?}"))
    );
    // The application is the only program.
    let programs: Vec<_> = all
        .iter()
        .filter(|p| {
            let meta = fs::symlink_metadata(rootfs.join(p)).unwrap();
            meta.is_file() && meta.permissions().mode() & 0o111 != 0
        })
        .collect();
    assert_eq!(
        programs,
        [Path::new("usr/bin/hello")],
        "{}",
        ctx("executables")
    );
}

/// Run the image's `/usr/bin/hello`: natively for the host's arch, else under qemu-user.
fn run_hello(t: &Target, rootfs: &Path) -> String {
    let hello = rootfs.join("usr/bin/hello");
    let mut cmd = if host_arch() == Some(t.apk) {
        Command::new(&hello)
    } else {
        let mut c = Command::new(t.qemu);
        c.arg(&hello);
        c
    };
    run(cmd.env_clear()).trim().to_string()
}

#[test]
fn hello_image_runs_on_every_arch_and_is_distroless() {
    let started = Instant::now();
    require_peers();
    let pkgr = binary("pkgr");
    let compose = binary("compose");
    let root = project_root();
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let key = keys.join("e2e.rsa");
    let repo = tmp.path().join("packages");

    run(Command::new(&pkgr)
        .args(["keygen", "--key-size", "2048"])
        .arg(&key));
    log("signing key made", started);

    run(Command::new(&pkgr)
        .arg("build")
        .arg(root.join("recipes"))
        .args(["--arch", "all", "--signing-key"])
        .arg(&key)
        .arg("--out-dir")
        .arg(&repo));
    log("recipes/ built for five architectures", started);

    // The base set is there for every arch, and every package and index verifies
    // against the key.
    let mut files: Vec<PathBuf> = Vec::new();
    for t in &TARGETS {
        let dir = repo.join(t.apk);
        let apks: Vec<String> = walk(&dir)
            .into_iter()
            .filter_map(|p| p.to_str().map(str::to_string))
            .filter(|n| n.ends_with(".apk"))
            .collect();
        for name in ["base-files", "ca-certificates-bundle", "tzdata", "hello"] {
            // `<name>-<version>-r<epoch>.apk`; versions start with a digit.
            let made = apks.iter().any(|n| {
                n.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            });
            assert!(made, "no {name} package for {} among {apks:?}", t.apk);
        }
        files.push(dir.join("APKINDEX.tar.gz"));
        files.extend(apks.iter().map(|n| dir.join(n)));
    }
    run(Command::new(&pkgr)
        .arg("verify")
        .arg("--keys-dir")
        .arg(&keys)
        .args(&files));
    log("repository verified", started);

    let image = tmp.path().join("hello.yaml");
    fs::write(&image, image_file(&repo, &key.with_extension("rsa.pub"))).unwrap();
    let layout = tmp.path().join("oci");
    // compose prints the layout path, then the image index digest.
    let compose_build = |out: &Path| {
        let printed = run(Command::new(&compose)
            .arg("build")
            .arg(&image)
            .arg("--out")
            .arg(out)
            .args(["--tag", TAG]));
        printed
            .lines()
            .find(|l| l.starts_with("sha256:"))
            .unwrap_or_else(|| panic!("compose printed no digest: {printed:?}"))
            .to_string()
    };
    let digest = compose_build(&layout);
    log(&format!("images/hello.yaml composed: {digest}"), started);
    // The same inputs compose to the same image.
    assert_eq!(
        compose_build(&tmp.path().join("oci-again")),
        digest,
        "composing twice gave two digests"
    );

    for t in &TARGETS {
        let bundle = tmp.path().join(format!("bundle-{}", t.apk));
        let image_ref = format!("{}:{TAG}-{}", layout.display(), t.apk);
        run(Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &image_ref])
            .arg(&bundle));
        let said = run_hello(t, &bundle.join("rootfs"));
        assert_eq!(said, format!("hello from {}", t.apk), "{TAG}-{}", t.apk);
        check_rootfs(t.apk, &bundle);
        log(&format!("{TAG}-{}: {said}", t.apk), started);
    }
}

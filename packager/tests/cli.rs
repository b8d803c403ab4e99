//! The `pkgr` repository commands, driven as a user drives them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use apk::package::{Content, PackageBuilder, Staged, StagedEntry};
use apk::tarball::Kind;
use apk::{PackageInfo, SignatureAlgorithm, SigningKey};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

fn pkgr(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkgr"));
    for a in args {
        cmd.arg(a);
    }
    cmd.env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("pkgr runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A small package built with the library, signed by the test key.
fn write_package(dir: &Path, name: &str) -> PathBuf {
    let key = SigningKey::load(&fixture("test-keys/test.rsa")).unwrap();
    let body = format!("{name}\n").into_bytes();
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
    let mut b = PackageBuilder::new(
        PackageInfo::new(name, "1.0-r0".parse().unwrap(), "x86_64"),
        1_700_000_000,
    );
    b.signer = Some((&key, vec![SignatureAlgorithm::Sha256]));
    let path = dir.join(format!("{name}-1.0-r0.apk"));
    b.write_to(&staged, &path).unwrap();
    path
}

#[test]
fn keygen_index_sign_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("local.rsa");
    let out = pkgr(&[&"keygen", &"--key-size", &"2048", &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(dir.path().join("local.rsa.pub"), keys.join("local.rsa.pub")).unwrap();
    std::fs::copy(fixture("test-keys/test.rsa.pub"), keys.join("test.rsa.pub")).unwrap();

    let a = write_package(dir.path(), "alpha");
    let b = write_package(dir.path(), "beta");
    let index = dir.path().join("APKINDEX.tar.gz");
    let out = pkgr(&[&"index", &"--signing-key", &key, &"-o", &index, &a, &b]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = pkgr(&[&"verify", &"--keys-dir", &keys, &index, &a, &b]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches(": OK").count(), 3, "{}", stdout(&out));
    assert!(stdout(&out).contains("APKINDEX.tar.gz: OK (signed by local.rsa.pub)"));

    // Re-sign with another key, in place: the old signature is replaced.
    let out = pkgr(&[
        &"sign-index",
        &"--signing-key",
        &fixture("test-keys/test.rsa"),
        &index,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = apk::index::Index::read_file(&index).unwrap();
    assert_eq!(read.signatures.len(), 1);
    assert_eq!(read.signatures[0].key_name, "test.rsa.pub");
    assert_eq!(read.index.entries.len(), 2);
}

#[test]
fn index_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_package(dir.path(), "alpha");
    let key = fixture("test-keys/test.rsa");
    let one = dir.path().join("one.tar.gz");
    let two = dir.path().join("two.tar.gz");
    assert!(pkgr(&[&"index", &"--signing-key", &key, &"-o", &one, &a])
        .status
        .success());
    assert!(pkgr(&[&"index", &"--signing-key", &key, &"-o", &two, &a])
        .status
        .success());
    assert_eq!(std::fs::read(one).unwrap(), std::fs::read(two).unwrap());
}

#[test]
fn verify_names_each_failure_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_package(dir.path(), "good");
    let unknown_keys = fixture("alpine-v3.16/keys");
    let out = pkgr(&[&"verify", &"--keys-dir", &unknown_keys, &good]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("good-1.0-r0.apk: FAILED: signed by unknown key test.rsa.pub"),
        "{}",
        stdout(&out)
    );

    // A changed byte in the data member.
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0xff;
    let bad = dir.path().join("bad-1.0-r0.apk");
    std::fs::write(&bad, bytes).unwrap();
    let keys = fixture("test-keys");
    let out = pkgr(&[&"verify", &"--keys-dir", &keys, &good, &bad]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("good-1.0-r0.apk: OK"), "{text}");
    assert!(
        text.contains("bad-1.0-r0.apk: FAILED: malformed archive"),
        "{text}"
    );
}

#[test]
fn verifies_the_upstream_fixtures() {
    let alpine = fixture("alpine-v3.16");
    let out = pkgr(&[
        &"verify",
        &"--keys-dir",
        &alpine.join("keys"),
        &alpine.join("APKINDEX.tar.gz"),
        &alpine.join("alpine-baselayout-3.2.0-r23-aarch64.apk"),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.rsa");
    std::fs::write(&key, "precious").unwrap();
    let out = pkgr(&[&"keygen", &"--key-size", &"1024", &key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "precious");
}

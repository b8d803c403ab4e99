//! Packages and indexes we write read back, verify, fail when tampered with, and are
//! byte-for-byte reproducible.

use std::path::{Path, PathBuf};
use std::process::Command;

use apk::index::{self, Index, IndexEntry};
use apk::package::{Content, Package, PackageBuilder, Staged, StagedEntry};
use apk::tarball::Kind;
use apk::{Error, Keyring, PackageInfo, SignatureAlgorithm, SigningKey};
use sha2::{Digest, Sha256};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

fn test_key() -> SigningKey {
    SigningKey::load(&fixture("test-keys/test.rsa")).unwrap()
}

fn test_keyring() -> Keyring {
    let mut ring = Keyring::default();
    ring.add_file(&fixture("test-keys/test.rsa.pub")).unwrap();
    ring
}

fn hello_staged() -> Staged {
    let bin = b"#!/bin/true\n".to_vec();
    let conf = b"greeting=hello\n".to_vec();
    Staged::new(vec![
        StagedEntry::new("usr", Kind::Dir, 0o755, Content::None),
        StagedEntry::new("usr/bin", Kind::Dir, 0o755, Content::None),
        StagedEntry::new(
            "usr/bin/hello",
            Kind::File {
                size: bin.len() as u64,
            },
            0o755,
            Content::Bytes(bin),
        ),
        StagedEntry::new(
            "usr/bin/hi",
            Kind::Symlink {
                target: "hello".into(),
            },
            0o777,
            Content::None,
        ),
        StagedEntry::new("etc", Kind::Dir, 0o755, Content::None),
        StagedEntry::new(
            "etc/hello.conf",
            Kind::File {
                size: conf.len() as u64,
            },
            0o644,
            Content::Bytes(conf),
        ),
        StagedEntry::new("tmp", Kind::Dir, 0o1777, Content::None),
    ])
    .unwrap()
}

fn hello_info() -> PackageInfo {
    let mut info = PackageInfo::new("hello", "1.0-r0".parse().unwrap(), "x86_64");
    info.description = "says hello".into();
    info.license = "MIT".into();
    info.build_time = 1_700_000_000;
    info.depends = apk::dependency::parse_list("so:libc.musl-x86_64.so.1").unwrap();
    info.provides = apk::dependency::parse_list("cmd:hello=1.0-r0").unwrap();
    info
}

fn build(key: &SigningKey, algs: Vec<SignatureAlgorithm>) -> (Vec<u8>, apk::package::Built) {
    let mut b = PackageBuilder::new(hello_info(), 1_700_000_000);
    b.generator = "pkgr-test".into();
    b.scripts
        .insert(".post-install".into(), b"#!/bin/sh\necho hi\n".to_vec());
    b.signer = Some((key, algs));
    let mut out = Vec::new();
    let built = b.write(&hello_staged(), &mut out).unwrap();
    (out, built)
}

#[test]
fn written_package_reads_back_and_verifies() {
    let key = test_key();
    for alg in [SignatureAlgorithm::Sha256, SignatureAlgorithm::Sha1] {
        let (bytes, built) = build(&key, vec![alg]);
        let pkg = Package::read(&bytes).unwrap();
        let sig = pkg.verify(&test_keyring()).unwrap();
        assert_eq!(sig.algorithm, alg);
        assert_eq!(sig.key_name, "test.rsa.pub");
        assert_eq!(pkg.info, built.info);
        assert_eq!(pkg.checksum, built.checksum);
        assert_eq!(pkg.size, bytes.len() as u64);
        let paths: Vec<_> = pkg.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/hello.conf",
                "tmp/",
                "usr/",
                "usr/bin/",
                "usr/bin/hello",
                "usr/bin/hi"
            ]
        );
        let hi = &pkg.files[6];
        assert_eq!((hi.typeflag, hi.link.as_str()), (b'2', "hello"));
        assert_eq!(hi.sha1, Some(Sha1Digest::of(b"hello")));
        assert_eq!(pkg.files[2].mode, 0o1777);
        assert_eq!(pkg.info.installed_size, 12 + 15);
        assert_eq!(pkg.scripts[".post-install"], b"#!/bin/sh\necho hi\n");
    }
}

struct Sha1Digest;
impl Sha1Digest {
    fn of(data: &[u8]) -> [u8; 20] {
        use sha1::Digest as _;
        sha1::Sha1::digest(data).into()
    }
}

/// Golden hash: the same inputs give the same bytes, today and after any change that
/// is not meant to change the format (the gzip backend included).
#[test]
fn package_bytes_are_reproducible_golden() {
    let (a, _) = build(&test_key(), vec![SignatureAlgorithm::Sha256]);
    let (b, _) = build(&test_key(), vec![SignatureAlgorithm::Sha256]);
    assert_eq!(a, b);
    let digest = hex::encode(Sha256::digest(&a));
    assert_eq!(digest, GOLDEN_PACKAGE_SHA256, "package bytes changed");
}

const GOLDEN_PACKAGE_SHA256: &str =
    "41a9b3f1e998f469e662c5bf7428a524eee20bb1307113c8076faac2047ebc74";

#[test]
fn same_bytes_whatever_the_thread_count() {
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| build(&test_key(), vec![SignatureAlgorithm::Sha256]).0)
    };
    assert_eq!(run(1), run(4));
}

fn member_bounds(bytes: &[u8]) -> Vec<(usize, usize)> {
    apk::gzip::split_members(bytes, u64::MAX)
        .unwrap()
        .iter()
        .map(|m| (m.offset, m.offset + m.compressed.len()))
        .collect()
}

#[test]
fn changing_one_byte_of_control_or_data_fails_naming_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = build(&test_key(), vec![SignatureAlgorithm::Sha256]);
    let members = member_bounds(&bytes);
    assert_eq!(members.len(), 3);
    for (which, (start, end)) in [("control", members[1]), ("data", members[2])] {
        // Flip a byte in the middle of the deflate stream, and separately swap in a
        // different but valid member so that the check is the signature or datahash,
        // not only gzip's CRC.
        let mut flipped = bytes.clone();
        flipped[(start + end) / 2] ^= 0x01;
        let path = dir.path().join(format!("hello-{which}.apk"));
        std::fs::write(&path, &flipped).unwrap();
        let err = Package::read_file(&path).and_then(|p| p.verify(&test_keyring()).map(|_| ()));
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{which}: {msg}");
    }

    // Valid gzip, different compression: the control member's bytes change.
    let control = apk::gzip::split_members(&bytes, u64::MAX).unwrap()[1]
        .unpacked
        .clone();
    let recompressed = apk::gzip::compress(&control, 1);
    let swapped = [
        &bytes[..members[1].0],
        &recompressed,
        &bytes[members[2].0..],
    ]
    .concat();
    let pkg = Package::read(&swapped).unwrap();
    assert!(matches!(
        pkg.verify(&test_keyring()),
        Err(Error::BadSignature { .. })
    ));

    let data = apk::gzip::split_members(&bytes, u64::MAX).unwrap()[2]
        .unpacked
        .clone();
    let recompressed = apk::gzip::compress(&data, 1);
    let swapped = [&bytes[..members[2].0], &recompressed].concat();
    assert!(matches!(
        Package::read(&swapped),
        Err(Error::DatahashMismatch { .. })
    ));
}

/// openssl, an independent implementation, accepts our signature over the control member.
#[test]
fn openssl_verifies_our_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = build(&test_key(), vec![SignatureAlgorithm::Sha256]);
    let members = apk::gzip::split_members(&bytes, u64::MAX).unwrap();
    let sig_tar = apk::tarball::parse(&members[0].unpacked).unwrap();
    assert_eq!(sig_tar.entries[0].path, ".SIGN.RSA256.test.rsa.pub");
    let sig = dir.path().join("sig");
    let control = dir.path().join("control.tar.gz");
    std::fs::write(&sig, sig_tar.entries[0].data).unwrap();
    std::fs::write(&control, members[1].compressed).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(fixture("test-keys/test.rsa.pub"))
        .arg("-signature")
        .arg(&sig)
        .arg(&control)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GNU tar reads the three members as one stream, as apk does, and lists our entries.
#[test]
fn gnu_tar_reads_the_package_as_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello-1.0-r0.apk");
    std::fs::write(
        &path,
        build(&test_key(), vec![SignatureAlgorithm::Sha256]).0,
    )
    .unwrap();
    let out = Command::new("tar").arg("-tzf").arg(&path).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    // The signature and control tars have no end blocks, so tar sees every entry.
    assert!(listing.contains(".SIGN.RSA256.test.rsa.pub"), "{listing}");
    assert!(listing.contains(".PKGINFO"), "{listing}");
    assert!(listing.contains("usr/bin/hello"), "{listing}");
}

#[test]
fn index_round_trips_signed_and_sorted() {
    let key = test_key();
    let (bytes, _) = build(&key, vec![SignatureAlgorithm::Sha256]);
    let pkg = Package::read(&bytes).unwrap();
    let mut other = IndexEntry::from_package(&pkg);
    other.info.name = "Abc".into();
    let index = Index {
        description: Some("test repo".into()),
        entries: vec![IndexEntry::from_package(&pkg), other],
    };
    let unsigned = index.to_archive(1_700_000_000);
    let signed = index::sign(
        &unsigned,
        &key,
        &[SignatureAlgorithm::Sha256],
        1_700_000_000,
    )
    .unwrap();
    let read = Index::read(&signed).unwrap();
    read.verify(&test_keyring()).unwrap();
    assert_eq!(read.unsigned_bytes(), &unsigned[..]);
    assert_eq!(read.index.description.as_deref(), Some("test repo"));
    let names: Vec<_> = read
        .index
        .entries
        .iter()
        .map(|e| e.info.name.as_str())
        .collect();
    assert_eq!(names, ["Abc", "hello"], "strcasecmp order");
    let stanza = |e: &IndexEntry| {
        let mut s = String::new();
        e.write_stanza(&mut s);
        s
    };
    assert_eq!(
        stanza(&read.index.entries[1]),
        stanza(&IndexEntry::from_package(&pkg))
    );

    let unsigned_read = Index::read(&unsigned).unwrap();
    assert!(matches!(
        unsigned_read.verify(&test_keyring()),
        Err(Error::Unsigned)
    ));
}

#[test]
fn staged_dir_walk_keeps_modes_links_and_order() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir(root.join("usr-x")).unwrap();
    std::fs::write(root.join("usr/bin/b"), b"data").unwrap();
    std::fs::hard_link(root.join("usr/bin/b"), root.join("usr/bin/a")).unwrap();
    symlink("b", root.join("usr/bin/c")).unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/b"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let staged = Staged::from_dir(root).unwrap();
    let got: Vec<_> = staged
        .entries()
        .iter()
        .map(|e| (e.path.as_str(), e.kind.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("usr", Kind::Dir),
            ("usr-x", Kind::Dir),
            ("usr/bin", Kind::Dir),
            ("usr/bin/a", Kind::File { size: 4 }),
            (
                "usr/bin/b",
                Kind::Hardlink {
                    target: "usr/bin/a".into()
                }
            ),
            ("usr/bin/c", Kind::Symlink { target: "b".into() }),
        ]
    );
    assert_eq!(staged.entries()[3].mode, 0o4755);
    assert_eq!(staged.installed_size(), 4, "hard links count once");
}

#[test]
fn staged_entries_need_their_directories() {
    let err = Staged::new(vec![StagedEntry::new(
        "usr/bin/x",
        Kind::File { size: 0 },
        0o644,
        Content::Bytes(vec![]),
    )])
    .unwrap_err();
    assert!(err.to_string().contains("usr/bin"), "{err}");
    let _ = Path::new("");
}

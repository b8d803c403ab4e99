//! Ground truth: files made by abuild, apk-tools and melange must read and verify.

use std::path::PathBuf;

use apk::index::Index;
use apk::package::Package;
use apk::{Error, Keyring};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

fn alpine_keys() -> Keyring {
    Keyring::load_dir(&fixture("alpine-v3.16/keys")).unwrap()
}

fn melange_keys() -> Keyring {
    let mut ring = Keyring::default();
    ring.add_file(&fixture("melange-repo/melange.rsa.pub"))
        .unwrap();
    ring
}

#[test]
fn alpine_index_reads_in_full_and_verifies() {
    let read = Index::read_file(&fixture("alpine-v3.16/APKINDEX.tar.gz")).unwrap();
    assert_eq!(read.index.entries.len(), 4929);
    let sig = read.verify(&alpine_keys()).unwrap();
    assert_eq!(
        sig.key_name,
        "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
    );
    assert_eq!(sig.algorithm, apk::SignatureAlgorithm::Sha1);
    assert!(read
        .index
        .description
        .as_deref()
        .unwrap_or("")
        .starts_with("v3.16"));
    let musl = read
        .index
        .entries
        .iter()
        .find(|e| e.info.name == "musl")
        .unwrap();
    assert!(musl
        .info
        .provides
        .iter()
        .any(|p| p.name == "so:libc.musl-x86_64.so.1"));
}

#[test]
fn alpine_index_stanzas_round_trip_byte_for_byte() {
    // Our writer must produce apk-tools' own text for every package: same fields, same
    // order. (Alpine's builder wrote packages in hash order; we sort, so compare stanzas.)
    let bytes = std::fs::read(fixture("alpine-v3.16/APKINDEX.tar.gz")).unwrap();
    let read = Index::read(&bytes).unwrap();
    let members = apk::gzip::split_members(read.unsigned_bytes(), u64::MAX).unwrap();
    let tar = apk::tarball::parse(&members[0].unpacked).unwrap();
    let original = tar.entries.iter().find(|e| e.path == "APKINDEX").unwrap();
    let original = std::str::from_utf8(original.data).unwrap();
    let stanzas: Vec<&str> = original.split_terminator("\n\n").collect();
    assert_eq!(stanzas.len(), read.index.entries.len());
    for (text, entry) in stanzas.iter().zip(&read.index.entries) {
        let mut ours = String::new();
        entry.write_stanza(&mut ours);
        assert_eq!(ours.trim_end(), *text);
    }
}

#[test]
fn alpine_index_with_only_other_keys_is_unknown_key() {
    let mut ring = Keyring::default();
    ring.add_file(&fixture("melange-repo/melange.rsa.pub"))
        .unwrap();
    let read = Index::read_file(&fixture("alpine-v3.16/APKINDEX.tar.gz")).unwrap();
    assert!(matches!(read.verify(&ring), Err(Error::UnknownKey { .. })));
}

#[test]
fn alpine_baselayout_verifies_with_its_scripts_and_checksums() {
    let pkg = Package::read_file(&fixture(
        "alpine-v3.16/alpine-baselayout-3.2.0-r23-aarch64.apk",
    ))
    .unwrap();
    let sig = pkg.verify(&alpine_keys()).unwrap();
    assert_eq!(
        sig.key_name,
        "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub"
    );
    assert_eq!(pkg.info.name, "alpine-baselayout");
    assert_eq!(pkg.info.arch, "aarch64");
    assert_eq!(pkg.scripts.len(), 4);
    assert!(pkg.info.datahash.is_some());
    let files: Vec<_> = pkg.files.iter().filter(|f| f.typeflag == b'0').collect();
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|f| f.sha1.is_some()),
        "every regular file has its PAX checksum"
    );
}

#[test]
fn melange_packages_and_indexes_verify_and_match_their_index() {
    let ring = melange_keys();
    for arch in ["x86_64", "aarch64"] {
        let dir = fixture(&format!("melange-repo/{arch}"));
        let read = Index::read_file(&dir.join("APKINDEX.tar.gz")).unwrap();
        read.verify(&ring).unwrap();
        assert_eq!(read.index.entries.len(), 4);
        for entry in &read.index.entries {
            let path = dir.join(format!("{}.apk", entry.info.file_stem()));
            let pkg = Package::read_file(&path).unwrap();
            pkg.verify(&ring).unwrap();
            assert_eq!(
                pkg.checksum,
                entry.checksum,
                "{}: C: identity",
                path.display()
            );
            assert_eq!(pkg.size, entry.size, "{}: S: size", path.display());
            assert_eq!(pkg.info.arch, arch);
        }
    }
}

//! SPDX 2.3 SBOMs, two kinds:
//!
//! - [`spdx_json`]: the document embedded in each package at
//!   `var/lib/db/sbom/<name>-<version>.spdx.json`, as melange writes it (`pkg/build/sbom/`,
//!   `pkg/sbom/`): the document DESCRIBES the apk package, which is GENERATED_FROM each
//!   fetched source. Unlike melange we may also list the package's files, with checksums
//!   and a package verification code.
//! - [`image_spdx_json`]: one per architecture of an image, as apko writes
//!   `sbom-<arch>.spdx.json`: the document DESCRIBES the image's operating system
//!   (`primaryPackagePurpose: OPERATING_SYSTEM`), which CONTAINS every installed apk
//!   package; packages DEPENDS_ON the packages that meet their dependencies.
//!
//! A document is a pure function of its input: no clock, no random UUID. Its namespace
//! carries a hash of its own content, so two different documents never share one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::dependency::Constraint;
use crate::index::IndexEntry;
use crate::{Arch, Checksum as ApkChecksum};

/// Everything the SBOM says about one package, as plain data.
#[derive(Clone, Debug)]
pub struct SbomInput<'a> {
    pub name: &'a str,
    /// Full apk version, `1.2.3-r0`.
    pub version: &'a str,
    pub arch: Arch,
    /// SPDX license expression as the recipe gives it; empty means NOASSERTION. Identifiers
    /// that are not on the SPDX License List become declared `LicenseRef-` licenses.
    pub license: &'a str,
    /// Texts for custom licenses (melange's `license-path`): the key is the `LicenseRef-` id
    /// or the license as the recipe spells it, the value the license text.
    pub license_texts: &'a [(String, String)],
    /// The copyright statements (melange's `attestation`s); empty means NOASSERTION.
    pub copyright: &'a str,
    pub description: &'a str,
    /// The project's homepage; left out when it is not an absolute http(s) URL.
    pub url: &'a str,
    /// The main package of the recipe (`.PKGINFO` `origin`).
    pub origin: &'a str,
    /// Distro namespace (`wolfi`, or `unknown`): purl namespace and supplier.
    pub namespace: &'a str,
    /// `SOURCE_DATE_EPOCH`, seconds.
    pub created: u64,
    /// The package's files, if they are to be listed; order does not matter. The SBOM file
    /// itself is never one of them (it cannot hold its own checksum).
    pub files: &'a [SbomFile],
    /// Sources the package was built from, in recipe order.
    pub sources: &'a [SourceRef],
}

/// A file in the package: its path in the package (`usr/bin/hello`) and content digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomFile {
    pub path: String,
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
}

/// A source a package is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceRef {
    /// A `fetch`: an archive downloaded and checked against a pinned hash. `name` and
    /// `version` are melange's `purl-name` and `purl-version`; empty means the origin
    /// package's name and version (without `-rN`), as melange defaults them.
    Archive {
        uri: String,
        name: String,
        version: String,
        /// Lowercase hex.
        sha256: Option<String>,
        /// Lowercase hex.
        sha512: Option<String>,
    },
    /// A `git-checkout` of `repository` at a tag and/or commit.
    Git {
        repository: String,
        tag: Option<String>,
        commit: Option<String>,
    },
}

/// Where the SBOM goes inside the package's data, as melange puts it.
pub fn sbom_path(name: &str, version: &str) -> String {
    format!("var/lib/db/sbom/{name}-{version}.spdx.json")
}

/// The SPDX 2.3 JSON document for a package: pretty-printed, with a trailing newline.
pub fn spdx_json(input: &SbomInput) -> String {
    let namespace = format!(
        "pkgr/{}-{}-{}",
        purl_escape(input.name),
        purl_escape(input.version),
        input.arch.apk()
    );
    finish(document(input), &namespace, "pkgr")
}

/// Names the document and serializes it. The namespace is derived from everything else
/// but the tool version, so that it is unique per content and a golden test survives a
/// version bump: `https://spdx.org/spdxdocs/<prefix>-<hash of the content>`.
fn finish(mut doc: Document, prefix: &str, tool: &str) -> String {
    doc.creation_info.creators = vec![format!("Tool: {tool}")];
    let content = serde_json::to_vec(&doc).expect("an SPDX document serializes");
    let digest = hex::encode(&Sha256::digest(&content)[..16]);
    doc.document_namespace = format!("https://spdx.org/spdxdocs/{prefix}-{digest}");
    doc.creation_info.creators = vec![format!("Tool: {tool}-{}", env!("CARGO_PKG_VERSION"))];
    let mut out = serde_json::to_string_pretty(&doc).expect("an SPDX document serializes");
    out.push('\n');
    out
}

/// Everything an image's SBOM says about one architecture, as plain data.
#[derive(Clone, Debug)]
pub struct ImageSbomInput<'a> {
    /// The image's name (say, its configuration file's stem) and tag: they name the
    /// document.
    pub name: &'a str,
    pub tag: &'a str,
    pub arch: Arch,
    /// `SOURCE_DATE_EPOCH`, seconds.
    pub created: u64,
    pub os: &'a OperatingSystem,
    /// Distro namespace (`wolfi`, or `unknown`): purl namespace and supplier, as in
    /// [`SbomInput::namespace`].
    pub namespace: &'a str,
    /// The installed packages, in any order, one per name.
    pub packages: &'a [ImagePackage<'a>],
}

/// The operating system an image is, as its `os-release` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatingSystem {
    /// `ID` (`wolfi`); empty when unknown.
    pub id: String,
    /// `NAME` (`Wolfi`), or [`OperatingSystem::DEFAULT_NAME`].
    pub name: String,
    /// `VERSION_ID`; empty when unknown.
    pub version: String,
}

impl OperatingSystem {
    /// The name of an image without an `os-release` (apko's wording).
    pub const DEFAULT_NAME: &'static str = "apko-compatible image";

    /// From the text of an `os-release` file (`KEY=value` lines, values optionally quoted
    /// as in a shell), or the defaults when there is none.
    pub fn from_os_release(text: Option<&str>) -> Self {
        let mut os = OperatingSystem {
            id: String::new(),
            name: String::new(),
            version: String::new(),
        };
        for line in text.unwrap_or_default().lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let value = unquote(value.trim());
            match key.trim() {
                "ID" => os.id = value,
                "NAME" => os.name = value,
                "VERSION_ID" => os.version = value,
                _ => {}
            }
        }
        if os.name.trim().is_empty() {
            os.name = Self::DEFAULT_NAME.to_string();
        }
        os
    }
}

/// An `os-release` value without its quotes: `"a \"b\""` -> `a "b"` (os-release(5)).
fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    let quote = match bytes.first() {
        Some(&q @ (b'"' | b'\'')) if bytes.len() >= 2 && bytes[bytes.len() - 1] == q => q,
        _ => return value.to_string(),
    };
    let inner = &value[1..value.len() - 1];
    if quote == b'\'' {
        return inner.to_string();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// An installed apk package, as its index entry describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePackage<'a> {
    pub name: &'a str,
    /// Full apk version, `1.2.3-r0`.
    pub version: &'a str,
    /// The package's own architecture (`x86_64`, `noarch`).
    pub arch: &'a str,
    /// As `.PKGINFO` gives it; handled like [`SbomInput::license`].
    pub license: &'a str,
    pub origin: &'a str,
    pub description: &'a str,
    pub url: &'a str,
    /// The `C:` identity: the SHA-1 of the package's control segment.
    pub checksum: ApkChecksum,
    /// Names of the packages of the image that meet this one's dependencies; names that
    /// are not in the image are left out of the document.
    pub depends: Vec<&'a str>,
}

impl<'a> ImagePackage<'a> {
    /// The packages of one installed set, each with the packages among them that meet its
    /// dependencies: a dependency is met by a package of its name, or by a provide of it
    /// (a versioned dependency only by a versioned provide, as apk matches them).
    pub fn from_entries(entries: impl IntoIterator<Item = &'a IndexEntry>) -> Vec<Self> {
        let entries: Vec<&IndexEntry> = entries.into_iter().collect();
        let meets = |dep: &crate::Dependency, e: &IndexEntry| {
            let real = dep.matches(&e.info.name, &e.info.version)
                || (dep.name == e.info.name
                    && dep.constraint.matches_checksum(&e.checksum.to_string()));
            real || e
                .info
                .provides
                .iter()
                .any(|p| match p.constraint.version() {
                    Some(v) => dep.matches(&p.name, v),
                    None => p.name == dep.name && dep.constraint == Constraint::Any,
                })
        };
        entries
            .iter()
            .map(|e| {
                let info = &e.info;
                let mut depends: Vec<&str> = entries
                    .iter()
                    .filter(|other| other.info.name != info.name)
                    .filter(|other| {
                        info.depends
                            .iter()
                            .any(|dep| !dep.conflict && meets(dep, other))
                    })
                    .map(|other| other.info.name.as_str())
                    .collect();
                depends.sort_unstable();
                depends.dedup();
                ImagePackage {
                    name: &info.name,
                    version: info.version.as_str(),
                    arch: &info.arch,
                    license: &info.license,
                    origin: info.origin.as_deref().unwrap_or_default(),
                    description: &info.description,
                    url: &info.url,
                    checksum: e.checksum,
                    depends,
                }
            })
            .collect()
    }
}

/// The SPDX 2.3 JSON document for one architecture of an image: pretty-printed, with a
/// trailing newline.
pub fn image_spdx_json(input: &ImageSbomInput) -> String {
    let namespace = format!(
        "compose/{}-{}-{}",
        purl_escape(input.name),
        purl_escape(input.tag),
        input.arch.apk()
    );
    finish(image_document(input), &namespace, "compose")
}

const OS_ID: &str = "SPDXRef-OperatingSystem";

fn image_document(input: &ImageSbomInput) -> Document {
    let namespace = purl_namespace(input.namespace);
    let mut sorted: Vec<&ImagePackage> = input.packages.iter().collect();
    sorted.sort_by(|a, b| (a.name, a.version).cmp(&(b.name, b.version)));
    let mut licensing = Licensing::new(sorted.iter().map(|p| p.license));

    let os = input.os;
    let mut packages = vec![Package {
        spdx_id: OS_ID.to_string(),
        name: os.name.clone(),
        version_info: (!os.version.trim().is_empty()).then(|| os.version.clone()),
        supplier: Some(supplier(namespace, &os.name)),
        download_location: NOASSERTION.to_string(),
        files_analyzed: false,
        package_verification_code: None,
        homepage: None,
        source_info: None,
        checksums: Vec::new(),
        license_concluded: NOASSERTION.to_string(),
        license_declared: NOASSERTION.to_string(),
        copyright_text: NOASSERTION.to_string(),
        description: Some(format!(
            "The operating system of the image {}:{} for {}",
            input.name,
            input.tag,
            input.arch.apk()
        )),
        external_refs: Vec::new(),
        primary_package_purpose: Some("OPERATING_SYSTEM"),
    }];
    let mut relationships = vec![Relationship::new("SPDXRef-DOCUMENT", "DESCRIBES", OS_ID)];

    // Ids are unique even if two names sanitize alike.
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::from([OS_ID.to_string()]);
    for p in &sorted {
        if ids.contains_key(p.name) {
            continue;
        }
        let license = licensing.expression(p.license, &[]);
        let mut package = apk_package(
            &ApkMeta {
                name: p.name,
                version: p.version,
                arch: p.arch,
                origin: p.origin,
                description: p.description,
                url: p.url,
            },
            namespace,
            license,
        );
        let base = package.spdx_id.clone();
        let mut n = 1;
        while !taken.insert(package.spdx_id.clone()) {
            n += 1;
            package.spdx_id = format!("{base}-{n}");
        }
        package.checksums.push(match p.checksum {
            ApkChecksum::Sha1(b) => Checksum {
                algorithm: "SHA1",
                checksum_value: hex::encode(b),
            },
            ApkChecksum::Md5(b) => Checksum {
                algorithm: "MD5",
                checksum_value: hex::encode(b),
            },
        });
        relationships.push(Relationship::new(OS_ID, "CONTAINS", &package.spdx_id));
        ids.insert(p.name, package.spdx_id.clone());
        packages.push(package);
    }

    let mut depends: BTreeSet<(&str, &str)> = BTreeSet::new();
    for p in &sorted {
        for dep in &p.depends {
            if let (Some(from), Some(to)) = (ids.get(p.name), ids.get(dep)) {
                if from != to {
                    depends.insert((from, to));
                }
            }
        }
    }
    relationships.extend(
        depends
            .into_iter()
            .map(|(from, to)| Relationship::new(from, "DEPENDS_ON", to)),
    );

    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("image-{}-{}-{}", input.name, input.tag, input.arch.apk()),
        document_namespace: String::new(),
        creation_info: CreationInfo {
            created: rfc3339(input.created),
            creators: Vec::new(),
            license_list_version: LICENSE_LIST_VERSION,
        },
        packages,
        files: Vec::new(),
        has_extracted_licensing_infos: licensing.extracted,
        relationships,
    }
}

const NOASSERTION: &str = "NOASSERTION";
/// The SPDX License List version of [`SPDX_LICENSES`].
const LICENSE_LIST_VERSION: &str = "3.27";

// SPDX 2.3 JSON, in the field order of the spec's examples.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<File>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<ExtractedLicense>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
    license_list_version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<String>,
    download_location: String,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_verification_code: Option<VerificationCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    homepage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    license_concluded: String,
    license_declared: String,
    copyright_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationCode {
    package_verification_code_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    file_name: String,
    checksums: Vec<Checksum>,
    license_concluded: &'static str,
    copyright_text: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractedLicense {
    license_id: String,
    extracted_text: String,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

impl Relationship {
    fn new(from: &str, kind: &'static str, to: &str) -> Self {
        Relationship {
            spdx_element_id: from.to_string(),
            relationship_type: kind,
            related_spdx_element: to.to_string(),
        }
    }
}

fn document(input: &SbomInput) -> Document {
    let namespace = purl_namespace(input.namespace);
    let licensing = Licensing::of(input.license, input.license_texts);
    let mut main = apk_package(
        &ApkMeta {
            name: input.name,
            version: input.version,
            arch: input.arch.apk(),
            origin: input.origin,
            description: input.description,
            url: input.url,
        },
        namespace,
        licensing.expression,
    );
    main.copyright_text = text_or_noassertion(input.copyright);
    let package_id = main.spdx_id.clone();

    let mut relationships = vec![Relationship::new(
        "SPDXRef-DOCUMENT",
        "DESCRIBES",
        &package_id,
    )];
    let mut packages = Vec::with_capacity(1 + input.sources.len());
    packages.push(main);

    for (i, source) in input.sources.iter().enumerate() {
        let package = source_package(i, source, input);
        relationships.push(Relationship::new(
            &package_id,
            "GENERATED_FROM",
            &package.spdx_id,
        ));
        packages.push(package);
    }

    let files = files(input.files);
    if !files.is_empty() {
        let main = &mut packages[0];
        main.files_analyzed = true;
        main.package_verification_code = Some(VerificationCode {
            package_verification_code_value: verification_code(&files),
        });
        for (file, _) in &files {
            relationships.push(Relationship::new(&package_id, "CONTAINS", &file.spdx_id));
        }
    }

    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("apk-{}-{}", input.name, input.version),
        document_namespace: String::new(),
        creation_info: CreationInfo {
            created: rfc3339(input.created),
            creators: Vec::new(),
            license_list_version: LICENSE_LIST_VERSION,
        },
        packages,
        files: files.into_iter().map(|(file, _)| file).collect(),
        has_extracted_licensing_infos: licensing.extracted,
        relationships,
    }
}

fn text_or_noassertion(text: &str) -> String {
    match text.trim() {
        "" => NOASSERTION.to_string(),
        _ => text.to_string(),
    }
}

fn purl_ref(locator: String) -> ExternalRef {
    ExternalRef {
        reference_category: "PACKAGE-MANAGER",
        reference_type: "purl",
        reference_locator: locator,
    }
}

/// The distro namespace of purls and suppliers: `unknown` when none is given.
fn purl_namespace(namespace: &str) -> &str {
    match namespace.trim() {
        "" => "unknown",
        ns => ns,
    }
}

/// `Organization: <organization>`, or NOASSERTION when the distro is `unknown`.
fn supplier(namespace: &str, organization: &str) -> String {
    match namespace {
        "unknown" => NOASSERTION.to_string(),
        _ => format!("Organization: {organization}"),
    }
}

/// What the index says about an apk package, for [`apk_package`].
struct ApkMeta<'a> {
    name: &'a str,
    version: &'a str,
    /// The package's `A:` (`x86_64`, `noarch`).
    arch: &'a str,
    origin: &'a str,
    description: &'a str,
    url: &'a str,
}

/// An apk package as both documents describe it; `license_declared` is an expression
/// from [`Licensing`]. The supplier is the distro, NOASSERTION for `unknown`.
fn apk_package(meta: &ApkMeta, namespace: &str, license_declared: String) -> Package {
    Package {
        spdx_id: spdx_id(&format!("SPDXRef-Package-{}-{}", meta.name, meta.version)),
        name: meta.name.to_string(),
        version_info: Some(meta.version.to_string()),
        supplier: Some(supplier(namespace, namespace)),
        download_location: NOASSERTION.to_string(),
        files_analyzed: false,
        package_verification_code: None,
        homepage: is_plausible_url(meta.url).then(|| meta.url.to_string()),
        source_info: (!meta.origin.is_empty() && meta.origin != meta.name)
            .then(|| format!("built from the recipe of {}", meta.origin)),
        checksums: Vec::new(),
        license_concluded: NOASSERTION.to_string(),
        license_declared,
        copyright_text: NOASSERTION.to_string(),
        description: (!meta.description.trim().is_empty()).then(|| meta.description.to_string()),
        external_refs: vec![purl_ref(apk_purl(meta, namespace))],
        primary_package_purpose: None,
    }
}

/// `pkg:apk/<namespace>/<name>@<version>?arch=<arch>&distro=<namespace>`, as melange's
/// `newAPKPackageURL` writes it: no `distro` for the `unknown` namespace.
fn apk_purl(meta: &ApkMeta, namespace: &str) -> String {
    let mut purl = format!(
        "pkg:apk/{}/{}@{}?arch={}",
        purl_escape(namespace),
        purl_escape(meta.name),
        purl_escape(meta.version),
        purl_escape(meta.arch)
    );
    if namespace != "unknown" {
        purl.push_str("&distro=");
        purl.push_str(&purl_escape(namespace));
    }
    purl
}

fn source_package(index: usize, source: &SourceRef, input: &SbomInput) -> Package {
    let mut package = Package {
        spdx_id: String::new(),
        name: String::new(),
        version_info: None,
        supplier: None,
        download_location: NOASSERTION.to_string(),
        files_analyzed: false,
        package_verification_code: None,
        homepage: None,
        source_info: None,
        checksums: Vec::new(),
        // What the recipe declares is the license of the package; a source may hold more.
        license_concluded: NOASSERTION.to_string(),
        license_declared: NOASSERTION.to_string(),
        copyright_text: NOASSERTION.to_string(),
        description: None,
        external_refs: Vec::new(),
        primary_package_purpose: Some("SOURCE"),
    };
    match source {
        SourceRef::Archive {
            uri,
            name,
            version,
            sha256,
            sha512,
        } => {
            let name = if name.is_empty() {
                if input.origin.is_empty() {
                    input.name
                } else {
                    input.origin
                }
            } else {
                name
            };
            let version = if version.is_empty() {
                strip_epoch(input.version)
            } else {
                version
            };
            let sha256 = sha256.as_deref().filter(|h| is_hex(h, 64));
            let sha512 = sha512.as_deref().filter(|h| is_hex(h, 128));
            let mut qualifiers = Vec::new();
            let checksums: Vec<String> = [("sha256", sha256), ("sha512", sha512)]
                .into_iter()
                .filter_map(|(algo, h)| h.map(|h| format!("{algo}:{}", h.to_ascii_lowercase())))
                .collect();
            if !checksums.is_empty() {
                qualifiers.push(("checksum", checksums.join(",")));
            }
            qualifiers.push(("download_url", uri.clone()));
            package.spdx_id = spdx_id(&format!("SPDXRef-Source-{index}-{name}-{version}"));
            package.name = name.to_string();
            package.version_info = Some(version.to_string());
            if is_plausible_url(uri) {
                package.download_location = uri.clone();
            }
            for (algorithm, h) in [("SHA256", sha256), ("SHA512", sha512)] {
                if let Some(h) = h {
                    package.checksums.push(Checksum {
                        algorithm,
                        checksum_value: h.to_ascii_lowercase(),
                    });
                }
            }
            package.external_refs.push(purl_ref(format!(
                "pkg:generic/{}@{}{}",
                purl_escape(name),
                purl_escape(version),
                purl_qualifiers(&qualifiers)
            )));
        }
        SourceRef::Git {
            repository,
            tag,
            commit,
        } => {
            let tag = tag.as_deref().filter(|t| !t.is_empty());
            let commit = commit
                .as_deref()
                .filter(|c| is_hex(c, 40))
                .map(str::to_ascii_lowercase);
            let repo = repository.trim_end_matches('/');
            let (owner, name) = repo_owner_and_name(repo);
            // melange prefers the tag for the version and the commit for the location.
            let version = tag.or(commit.as_deref());
            let reference = commit.as_deref().or(tag);
            let vcs = if repo.starts_with("git+") {
                repo.to_string()
            } else {
                format!("git+{repo}")
            };
            let vcs_url = match reference {
                Some(r) => format!("{vcs}@{r}"),
                None => vcs.clone(),
            };
            package.spdx_id = spdx_id(&format!(
                "SPDXRef-Source-{index}-{name}-{}",
                version.unwrap_or("HEAD")
            ));
            package.name = name.to_string();
            package.version_info = version.map(str::to_string);
            if is_plausible_vcs(&vcs_url) {
                package.download_location = vcs_url.clone();
            }
            let at_version = version
                .map(|v| format!("@{}", purl_escape(v)))
                .unwrap_or_default();
            let purl = match (host_of(repo), owner) {
                (Some(host @ ("github.com" | "gitlab.com")), Some(owner)) => format!(
                    "pkg:{}/{}/{}{at_version}",
                    host.trim_end_matches(".com"),
                    owner
                        .split('/')
                        .map(purl_escape)
                        .collect::<Vec<_>>()
                        .join("/"),
                    purl_escape(name)
                ),
                _ => format!(
                    "pkg:generic/{}{at_version}{}",
                    purl_escape(name),
                    purl_qualifiers(&[("vcs_url", vcs_url)])
                ),
            };
            package.external_refs.push(purl_ref(purl));
            if let Some(commit) = &commit {
                // A commit id is the gitoid of the commit object (SPDX 2.3 Annex F).
                package.external_refs.push(ExternalRef {
                    reference_category: "PERSISTENT-ID",
                    reference_type: "gitoid",
                    reference_locator: format!("gitoid:commit:sha1:{commit}"),
                });
            }
        }
    }
    package
}

/// `1.2.3-r4` -> `1.2.3`.
fn strip_epoch(version: &str) -> &str {
    match version.rsplit_once("-r") {
        Some((v, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => version,
    }
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The host of `scheme://[user@]host[:port]/...` or `user@host:path`.
fn host_of(repo: &str) -> Option<&str> {
    let repo = repo.strip_prefix("git+").unwrap_or(repo);
    let rest = match repo.split_once("://") {
        Some((_, rest)) => rest,
        None => repo.split_once('@')?.1,
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let end = rest.find(['/', ':']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|h| !h.is_empty())
}

/// `https://github.com/owner/group/name.git` -> (`owner/group`, `name`).
fn repo_owner_and_name(repo: &str) -> (Option<&str>, &str) {
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let path = match repo.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => repo.split_once(':').map_or(repo, |(_, p)| p),
    };
    match path.rsplit_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() => (Some(owner), name),
        _ => (None, if path.is_empty() { repo } else { path }),
    }
}

/// Accepts what SPDX validators accept as a URL: an absolute URL with a known scheme and
/// a DNS host name (pyspdxtools' `url_pattern`).
fn is_plausible_url(url: &str) -> bool {
    if url.is_empty() || url.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "https" | "ftp" | "sftp" | "ssh" | "git" | "svn"
    ) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
    let labels: Vec<&str> = host.split('.').collect();
    port.bytes().all(|b| b.is_ascii_digit())
        && port.len() <= 5
        && labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && labels.last().is_some_and(|tld| {
            tld.len() >= 2 && tld.bytes().take(2).all(|b| b.is_ascii_alphabetic())
        })
}

/// SPDX 2.3 §7.7 VCS locations: `git+<url>[@ref]` or `git+git@host:path[@ref]`.
fn is_plausible_vcs(location: &str) -> bool {
    let Some(rest) = location.strip_prefix("git+") else {
        return false;
    };
    if let Some(scp) = rest.strip_prefix("git@") {
        return scp.split_once(':').is_some_and(|(host, path)| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                && !path.is_empty()
                && path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/\\.@-".contains(&b))
        });
    }
    is_plausible_url(rest)
}

/// The files, sorted by path and deduplicated, with their SHA-1 hex for the verification
/// code.
fn files(input: &[SbomFile]) -> Vec<(File, String)> {
    let mut sorted: BTreeMap<String, &SbomFile> = BTreeMap::new();
    for file in input {
        let path = file.path.trim_start_matches("./").trim_start_matches('/');
        sorted.entry(format!("./{path}")).or_insert(file);
    }
    let mut ids = BTreeSet::new();
    sorted
        .into_iter()
        .map(|(name, file)| {
            // Stable across versions of a package, unlike an index; readable enough.
            let hash = hex::encode(&Sha256::digest(name.as_bytes())[..8]);
            let mut id = format!("SPDXRef-File-{hash}");
            let mut n = 1;
            while !ids.insert(id.clone()) {
                n += 1;
                id = format!("SPDXRef-File-{hash}-{n}");
            }
            let sha1 = hex::encode(file.sha1);
            let spdx = File {
                spdx_id: id,
                file_name: name,
                checksums: vec![
                    Checksum {
                        algorithm: "SHA1",
                        checksum_value: sha1.clone(),
                    },
                    Checksum {
                        algorithm: "SHA256",
                        checksum_value: hex::encode(file.sha256),
                    },
                ],
                license_concluded: NOASSERTION,
                copyright_text: NOASSERTION,
            };
            (spdx, sha1)
        })
        .collect()
}

/// SPDX 2.3 §7.9: SHA-1 of the sorted, concatenated lowercase SHA-1 hex of every file.
fn verification_code(files: &[(File, String)]) -> String {
    let mut hashes: Vec<&str> = files.iter().map(|(_, sha1)| sha1.as_str()).collect();
    hashes.sort_unstable();
    hex::encode(crate::Checksum::sha1_of(hashes.concat().as_bytes()).as_bytes())
}

/// An SPDX element id: `[A-Za-z0-9.-]` as is, `:` and `/` as `-`, anything else as
/// `C<code point>` (melange's `stringToIdentifier`).
fn spdx_id(text: &str) -> String {
    let (prefix, rest) = text.split_at("SPDXRef-".len());
    let mut out = String::from(prefix);
    for c in rest.chars() {
        match c {
            ':' | '/' => out.push('-'),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => out.push(c),
            c => out.push_str(&format!("C{}", c as u32)),
        }
    }
    out
}

/// Percent-encodes all but the purl spec's unreserved characters.
fn purl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&k=v`, keys sorted as the purl spec's canonical form has them.
fn purl_qualifiers(qualifiers: &[(&str, String)]) -> String {
    let mut sorted: Vec<_> = qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    sorted.sort_by_key(|(k, _)| *k);
    let mut out = String::new();
    for (i, (k, v)) in sorted.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&purl_escape(v));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (Howard Hinnant's `civil_from_days`):
/// how SBOMs and OCI configs write `SOURCE_DATE_EPOCH`.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// License expressions for one document, in which every identifier is on the SPDX License
/// List or a `LicenseRef-` declared in `extracted`, so that validators accept the document.
struct Licensing {
    extracted: Vec<ExtractedLicense>,
    /// Ids the expressions write as `LicenseRef-` themselves: generated ids steer clear.
    reserved: BTreeSet<String>,
}

/// One package's license, on its own.
struct Declared {
    expression: String,
    extracted: Vec<ExtractedLicense>,
}

/// A parsed SPDX license expression (SPDX 2.3 Annex D), identifiers still as written.
enum Expr {
    License(String),
    With(String, String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Group(Box<Expr>),
}

impl Expr {
    fn license_refs(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::License(id) if id.starts_with("LicenseRef-") => {
                out.insert(id.clone());
            }
            Expr::License(_) | Expr::With(..) => {}
            Expr::And(terms) | Expr::Or(terms) => terms.iter().for_each(|t| t.license_refs(out)),
            Expr::Group(inner) => inner.license_refs(out),
        }
    }
}

impl Licensing {
    /// For a document whose packages declare `licenses`: their own `LicenseRef-` ids are
    /// reserved before any expression is rendered.
    fn new<'t>(licenses: impl IntoIterator<Item = &'t str>) -> Self {
        let mut reserved = BTreeSet::new();
        for text in licenses {
            if let Some(expr) = parse_expression(text.trim()) {
                expr.license_refs(&mut reserved);
            }
        }
        Licensing {
            extracted: Vec::new(),
            reserved,
        }
    }

    fn of(text: &str, texts: &[(String, String)]) -> Declared {
        let mut licensing = Licensing::new([text]);
        let expression = licensing.expression(text, texts);
        Declared {
            expression,
            extracted: licensing.extracted,
        }
    }

    /// `text` as an expression validators accept; custom licenses it names are declared
    /// once per document.
    fn expression(&mut self, text: &str, texts: &[(String, String)]) -> String {
        let text = text.trim();
        match text {
            "" | NOASSERTION => NOASSERTION.to_string(),
            "NONE" => "NONE".to_string(),
            _ => match parse_expression(text) {
                Some(expr) => self.render(&expr, texts),
                // Not an expression at all ("GPL v2 or later"): one custom license.
                None => self.custom(text, texts),
            },
        }
    }

    fn render(&mut self, expr: &Expr, texts: &[(String, String)]) -> String {
        match expr {
            Expr::License(id) => self.license(id, texts),
            Expr::With(id, exception) => {
                match (
                    lookup(SPDX_LICENSES, id),
                    lookup(SPDX_EXCEPTIONS, exception),
                ) {
                    (Some(id), Some(exception)) => format!("{id} WITH {exception}"),
                    // SPDX 2.3 has no custom exceptions: the pair is one custom license.
                    _ => self.custom(&format!("{id} WITH {exception}"), texts),
                }
            }
            Expr::And(terms) => self.join(terms, " AND ", texts),
            Expr::Or(terms) => self.join(terms, " OR ", texts),
            Expr::Group(inner) => format!("({})", self.render(inner, texts)),
        }
    }

    fn join(&mut self, terms: &[Expr], op: &str, texts: &[(String, String)]) -> String {
        let parts: Vec<String> = terms.iter().map(|t| self.render(t, texts)).collect();
        parts.join(op)
    }

    /// A listed identifier in its canonical case, a well-formed `LicenseRef-` as is, and
    /// anything else as a custom license.
    fn license(&mut self, id: &str, texts: &[(String, String)]) -> String {
        if let Some(listed) = lookup(SPDX_LICENSES, id) {
            return listed.to_string();
        }
        if let Some(rest) = id.strip_prefix("LicenseRef-") {
            if !rest.is_empty() && rest.bytes().all(is_idstring_byte) {
                return self.declare(id.to_string(), id, texts);
            }
        }
        self.custom(id, texts)
    }

    /// `LicenseRef-<text, sanitized>`, declared once per distinct text.
    fn custom(&mut self, text: &str, texts: &[(String, String)]) -> String {
        if let Some(known) = self.extracted.iter().find(|e| e.name == text) {
            return known.license_id.clone();
        }
        let mut base = String::from("LicenseRef-");
        for c in text.chars() {
            match c {
                c if c.is_ascii_alphanumeric() || c == '.' => base.push(c),
                '+' => base.push_str("plus"),
                _ if base.ends_with('-') => {}
                _ => base.push('-'),
            }
        }
        let mut base = base.trim_end_matches('-').to_string();
        if base == "LicenseRef" {
            base.push_str("-unknown");
        }
        let mut id = base.clone();
        let mut n = 1;
        while self.reserved.contains(&id) || self.extracted.iter().any(|e| e.license_id == id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        self.declare(id, text, texts)
    }

    fn declare(&mut self, id: String, name: &str, texts: &[(String, String)]) -> String {
        if !self.extracted.iter().any(|e| e.license_id == id) {
            let text = texts
                .iter()
                .find(|(key, text)| (key == &id || key == name) && !text.trim().is_empty())
                .map(|(_, text)| text.clone())
                .unwrap_or_else(|| {
                    format!(
                        "The package declares the license \"{name}\", which is not on the \
                         SPDX License List; its text was not supplied."
                    )
                });
            self.extracted.push(ExtractedLicense {
                license_id: id.clone(),
                extracted_text: text,
                name: name.to_string(),
            });
        }
        id
    }
}

fn is_idstring_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// An identifier from `list` matching `id` without regard to case (SPDX 2.3 Annex D.2).
fn lookup(list: &'static str, id: &str) -> Option<&'static str> {
    list.split_ascii_whitespace()
        .find(|listed| listed.eq_ignore_ascii_case(id))
}

/// Parses `compound`, with `AND` binding tighter than `OR`. Operators are accepted in
/// upper or lower case; anything else that does not fit the grammar gives `None`.
fn parse_expression(text: &str) -> Option<Expr> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c == '(' || c == ')' || c.is_whitespace() {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser.or()?;
    (parser.pos == parser.tokens.len()).then_some(expr)
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        self.tokens
            .get(self.pos)
            .is_some_and(|t| t == op || t == &op.to_ascii_lowercase())
    }

    fn or(&mut self) -> Option<Expr> {
        let mut terms = vec![self.and()?];
        while self.peek_op("OR") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Some(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Option<Expr> {
        let mut terms = vec![self.primary()?];
        while self.peek_op("AND") {
            self.pos += 1;
            terms.push(self.primary()?);
        }
        Some(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::And(terms)
        })
    }

    fn primary(&mut self) -> Option<Expr> {
        let token = self.tokens.get(self.pos)?.clone();
        self.pos += 1;
        if token == "(" {
            let inner = self.or()?;
            if self.tokens.get(self.pos)? != ")" {
                return None;
            }
            self.pos += 1;
            return Some(Expr::Group(Box::new(inner)));
        }
        if !is_identifier(&token) {
            return None;
        }
        if self.peek_op("WITH") {
            self.pos += 1;
            let exception = self.tokens.get(self.pos)?.clone();
            if !is_identifier(&exception) || exception.ends_with('+') {
                return None;
            }
            self.pos += 1;
            return Some(Expr::With(token, exception));
        }
        Some(Expr::License(token))
    }
}

/// An idstring, optionally with `+`, that is not an operator or parenthesis.
fn is_identifier(token: &str) -> bool {
    let bare = token.strip_suffix('+').unwrap_or(token);
    !bare.is_empty()
        && !matches!(
            token,
            "AND" | "OR" | "WITH" | "and" | "or" | "with" | "(" | ")"
        )
        && bare.bytes().all(|b| is_idstring_byte(b) || b == b':')
}

// The SPDX License List 3.27 as the validator `pyspdxtools` knows it: the `spdx_license_key`s
// of license-expression's scancode-licensedb index (spdx-tools 0.8.5, license-expression
// 30.4), plus the deprecated ids on the SPDX list that it accepts (`GPL-2.0+`, `LGPL-2.1`...).
// Left out: the deprecated `GPL-2.0-with-*-exception` licenses, which it takes for exceptions.
// Ids missing here are not lost: they become declared `LicenseRef-`s.
const SPDX_LICENSES: &str = "\
    0BSD 3D-Slicer-1.0 AAL Abstyles AdaCore-doc Adobe-2006 Adobe-Display-PostScript Adobe-Glyph \
    Adobe-Utopia ADSL AFL-1.1 AFL-1.2 AFL-2.0 AFL-2.1 AFL-3.0 Afmparse AGPL-1.0 AGPL-1.0+ \
    AGPL-1.0-only AGPL-1.0-or-later AGPL-3.0 AGPL-3.0+ AGPL-3.0-only AGPL-3.0-or-later Aladdin \
    AMD-newlib AMDPLPA AML AML-glslang AMPAS ANTLR-PD ANTLR-PD-fallback any-OSI \
    any-OSI-perl-modules Apache-1.0 Apache-1.1 Apache-2.0 APAFML APL-1.0 App-s2p APSL-1.0 \
    APSL-1.1 APSL-1.2 APSL-2.0 Arphic-1999 Artistic-1.0 Artistic-1.0-cl8 Artistic-1.0-Perl \
    Artistic-2.0 Artistic-dist Aspell-RU ASWF-Digital-Assets-1.0 ASWF-Digital-Assets-1.1 Baekmuk \
    Bahyph Barr bcrypt-Solar-Designer Beerware Bitstream-Charter Bitstream-Vera BitTorrent-1.0 \
    BitTorrent-1.1 blessing BlueOak-1.0.0 Boehm-GC Boehm-GC-without-fee Borceux \
    Brian-Gladman-2-Clause Brian-Gladman-3-Clause BSD-1-Clause BSD-2-Clause BSD-2-Clause-Darwin \
    BSD-2-Clause-first-lines BSD-2-Clause-FreeBSD BSD-2-Clause-NetBSD BSD-2-Clause-Patent \
    BSD-2-Clause-pkgconf-disclaimer BSD-2-Clause-Views BSD-3-Clause BSD-3-Clause-acpica \
    BSD-3-Clause-Attribution BSD-3-Clause-Clear BSD-3-Clause-flex BSD-3-Clause-HP \
    BSD-3-Clause-LBNL BSD-3-Clause-Modification BSD-3-Clause-No-Military-License \
    BSD-3-Clause-No-Nuclear-License BSD-3-Clause-No-Nuclear-License-2014 \
    BSD-3-Clause-No-Nuclear-Warranty BSD-3-Clause-Open-MPI BSD-3-Clause-Sun BSD-4-Clause \
    BSD-4-Clause-Shortened BSD-4-Clause-UC BSD-4.3RENO BSD-4.3TAHOE \
    BSD-Advertising-Acknowledgement BSD-Attribution-HPND-disclaimer BSD-Inferno-Nettverk \
    BSD-Protection BSD-Source-beginning-file BSD-Source-Code BSD-Systemics BSD-Systemics-W3Works \
    BSL-1.0 BUSL-1.1 bzip2-1.0.5 bzip2-1.0.6 C-UDA-1.0 CAL-1.0 CAL-1.0-Combined-Work-Exception \
    Caldera Caldera-no-preamble Catharon CATOSL-1.1 CC-BY-1.0 CC-BY-2.0 CC-BY-2.5 CC-BY-2.5-AU \
    CC-BY-3.0 CC-BY-3.0-AT CC-BY-3.0-AU CC-BY-3.0-DE CC-BY-3.0-IGO CC-BY-3.0-NL CC-BY-3.0-US \
    CC-BY-4.0 CC-BY-NC-1.0 CC-BY-NC-2.0 CC-BY-NC-2.5 CC-BY-NC-3.0 CC-BY-NC-3.0-DE CC-BY-NC-4.0 \
    CC-BY-NC-ND-1.0 CC-BY-NC-ND-2.0 CC-BY-NC-ND-2.5 CC-BY-NC-ND-3.0 CC-BY-NC-ND-3.0-DE \
    CC-BY-NC-ND-3.0-IGO CC-BY-NC-ND-4.0 CC-BY-NC-SA-1.0 CC-BY-NC-SA-2.0 CC-BY-NC-SA-2.0-DE \
    CC-BY-NC-SA-2.0-FR CC-BY-NC-SA-2.0-UK CC-BY-NC-SA-2.5 CC-BY-NC-SA-3.0 CC-BY-NC-SA-3.0-DE \
    CC-BY-NC-SA-3.0-IGO CC-BY-NC-SA-4.0 CC-BY-ND-1.0 CC-BY-ND-2.0 CC-BY-ND-2.5 CC-BY-ND-3.0 \
    CC-BY-ND-3.0-DE CC-BY-ND-4.0 CC-BY-SA-1.0 CC-BY-SA-2.0 CC-BY-SA-2.0-UK CC-BY-SA-2.1-JP \
    CC-BY-SA-2.5 CC-BY-SA-3.0 CC-BY-SA-3.0-AT CC-BY-SA-3.0-DE CC-BY-SA-3.0-IGO CC-BY-SA-4.0 \
    CC-PDDC CC-PDM-1.0 CC-SA-1.0 CC0-1.0 CDDL-1.0 CDDL-1.1 CDL-1.0 CDLA-Permissive-1.0 \
    CDLA-Permissive-2.0 CDLA-Sharing-1.0 CECILL-1.0 CECILL-1.1 CECILL-2.0 CECILL-2.1 CECILL-B \
    CECILL-C CERN-OHL-1.1 CERN-OHL-1.2 CERN-OHL-P-2.0 CERN-OHL-S-2.0 CERN-OHL-W-2.0 CFITSIO \
    check-cvs checkmk ClArtistic Clips CMU-Mach CMU-Mach-nodoc CNRI-Jython CNRI-Python \
    CNRI-Python-GPL-Compatible COIL-1.0 Community-Spec-1.0 Condor-1.1 copyleft-next-0.3.0 \
    copyleft-next-0.3.1 Cornell-Lossless-JPEG CPAL-1.0 CPL-1.0 CPOL-1.02 Cronyx Crossword \
    CryptoSwift CrystalStacker CUA-OPL-1.0 Cube curl cve-tou D-FSL-1.0 DEC-3-Clause diffmark \
    DL-DE-BY-2.0 DL-DE-ZERO-2.0 DOC DocBook-DTD DocBook-Schema DocBook-Stylesheet DocBook-XML \
    Dotseqn DRL-1.0 DRL-1.1 DSDP dtoa dvipdfm ECL-1.0 ECL-2.0 EFL-1.0 EFL-2.0 eGenix Elastic-2.0 \
    Entessa EPICS EPL-1.0 EPL-2.0 ErlPL-1.1 etalab-2.0 EUDatagrid EUPL-1.0 EUPL-1.1 EUPL-1.2 \
    Eurosym Fair FBM FDK-AAC Ferguson-Twofish Frameworx-1.0 FreeBSD-DOC FreeImage FSFAP \
    FSFAP-no-warranty-disclaimer FSFUL FSFULLR FSFULLRSD FSFULLRWD FSL-1.1-ALv2 FSL-1.1-MIT FTL \
    Furuseth fwlw Game-Programming-Gems GCR-docs GD generic-xts GFDL-1.1 GFDL-1.1+ \
    GFDL-1.1-invariants-only GFDL-1.1-invariants-or-later GFDL-1.1-no-invariants-only \
    GFDL-1.1-no-invariants-or-later GFDL-1.1-only GFDL-1.1-or-later GFDL-1.2 GFDL-1.2+ \
    GFDL-1.2-invariants-only GFDL-1.2-invariants-or-later GFDL-1.2-no-invariants-only \
    GFDL-1.2-no-invariants-or-later GFDL-1.2-only GFDL-1.2-or-later GFDL-1.3 GFDL-1.3+ \
    GFDL-1.3-invariants-only GFDL-1.3-invariants-or-later GFDL-1.3-no-invariants-only \
    GFDL-1.3-no-invariants-or-later GFDL-1.3-only GFDL-1.3-or-later Giftware GL2PS Glide Glulxe \
    GLWTPL gnuplot GPL-1.0 GPL-1.0+ GPL-1.0-only GPL-1.0-or-later GPL-2.0 GPL-2.0+ GPL-2.0-only \
    GPL-2.0-or-later GPL-3.0 GPL-3.0+ GPL-3.0-only GPL-3.0-or-later Graphics-Gems gSOAP-1.3b \
    gtkbook Gutmann HaskellReport HDF5 hdparm HIDAPI Hippocratic-2.1 HP-1986 HP-1989 HPND \
    HPND-DEC HPND-doc HPND-doc-sell HPND-export-US HPND-export-US-acknowledgement \
    HPND-export-US-modify HPND-export2-US HPND-Fenneberg-Livingston HPND-INRIA-IMAG HPND-Intel \
    HPND-Kevlin-Henney HPND-Markus-Kuhn HPND-merchantability-variant HPND-MIT-disclaimer \
    HPND-Netrek HPND-Pbmplus HPND-sell-MIT-disclaimer-xserver HPND-sell-regexpr \
    HPND-sell-variant HPND-sell-variant-MIT-disclaimer HPND-sell-variant-MIT-disclaimer-rev \
    HPND-UC HPND-UC-export-US HTMLTIDY IBM-pibs ICU IEC-Code-Components-EULA IJG IJG-short \
    ImageMagick iMatix Imlib2 Info-ZIP Inner-Net-2.0 InnoSetup Intel Intel-ACPI Interbase-1.0 \
    IPA IPL-1.0 ISC ISC-Veillard Jam JasPer-2.0 jove JPL-image JPNIC JSON Kastrup Kazlib \
    Knuth-CTAN LAL-1.2 LAL-1.3 Latex2e Latex2e-translated-notice Leptonica LGPL-2.0 LGPL-2.0+ \
    LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1 LGPL-2.1+ LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0 \
    LGPL-3.0+ LGPL-3.0-only LGPL-3.0-or-later LGPLLR Libpng libpng-1.6.35 libpng-2.0 \
    libselinux-1.0 libtiff libutil-David-Nugent LiLiQ-P-1.1 LiLiQ-R-1.1 LiLiQ-Rplus-1.1 \
    Linux-man-pages-1-para Linux-man-pages-copyleft Linux-man-pages-copyleft-2-para \
    Linux-man-pages-copyleft-var Linux-OpenIB LOOP LPD-document LPL-1.0 LPL-1.02 LPPL-1.0 \
    LPPL-1.1 LPPL-1.2 LPPL-1.3a LPPL-1.3c lsof Lucida-Bitmap-Fonts LZMA-SDK-9.11-to-9.20 \
    LZMA-SDK-9.22 Mackerras-3-Clause Mackerras-3-Clause-acknowledgment magaz mailprio MakeIndex \
    man2html Martin-Birgmeier McPhee-slideshow metamail Minpack MIPS MirOS MIT MIT-0 \
    MIT-advertising MIT-Click MIT-CMU MIT-enna MIT-feh MIT-Festival MIT-Khronos-old \
    MIT-Modern-Variant MIT-open-group MIT-testregex MIT-Wu MITNFA MMIXware Motosoto MPEG-SSG \
    mpi-permissive mpich2 MPL-1.0 MPL-1.1 MPL-2.0 mplus MS-LPL MS-PL MS-RL MTLL MulanPSL-1.0 \
    MulanPSL-2.0 Multics Mup NAIST-2003 NASA-1.3 Naumen NBPL-1.0 NCBI-PD NCGL-UK-2.0 NCL NCSA \
    Net-SNMP NetCDF Newsletr NGPL ngrep NICTA-1.0 NIST-PD NIST-PD-fallback NIST-Software \
    NLOD-1.0 NLOD-2.0 NLPL Nokia NOSL Noweb NPL-1.0 NPL-1.1 NPOSL-3.0 NRL NTIA-PD NTP NTP-0 \
    Nunit O-UDA-1.0 OAR OCCT-PL OCLC-2.0 ODbL-1.0 ODC-By-1.0 OFFIS OFL-1.0 OFL-1.0-no-RFN \
    OFL-1.0-RFN OFL-1.1 OFL-1.1-no-RFN OFL-1.1-RFN OGC-1.0 OGDL-Taiwan-1.0 OGL-Canada-2.0 \
    OGL-UK-1.0 OGL-UK-2.0 OGL-UK-3.0 OGTSL OLDAP-1.1 OLDAP-1.2 OLDAP-1.3 OLDAP-1.4 OLDAP-2.0 \
    OLDAP-2.0.1 OLDAP-2.1 OLDAP-2.2 OLDAP-2.2.1 OLDAP-2.2.2 OLDAP-2.3 OLDAP-2.4 OLDAP-2.5 \
    OLDAP-2.6 OLDAP-2.7 OLDAP-2.8 OLFL-1.3 OML OpenPBS-2.3 OpenSSL OpenSSL-standalone OpenVision \
    OPL-1.0 OPL-UK-3.0 OPUBL-1.0 OSET-PL-2.1 OSL-1.0 OSL-1.1 OSL-2.0 OSL-2.1 OSL-3.0 PADL \
    Parity-6.0.0 Parity-7.0.0 PDDL-1.0 PHP-3.0 PHP-3.01 Pixar pkgconf Plexus pnmstitch \
    PolyForm-Noncommercial-1.0.0 PolyForm-Small-Business-1.0.0 PostgreSQL PPL PSF-2.0 psfrag \
    psutils Python-2.0 Python-2.0.1 python-ldap Qhull QPL-1.0 QPL-1.0-INRIA-2004 radvd Rdisc \
    RHeCos-1.1 RPL-1.1 RPL-1.5 RPSL-1.0 RSA-MD RSCPL Ruby Ruby-pty SAX-PD SAX-PD-2.0 Saxpath \
    SCEA SchemeReport Sendmail Sendmail-8.23 Sendmail-Open-Source-1.1 SGI-B-1.0 SGI-B-1.1 \
    SGI-B-2.0 SGI-OpenGL SGP4 SHL-0.5 SHL-0.51 SimPL-2.0 SISSL SISSL-1.2 SL Sleepycat SMAIL-GPL \
    SMLNJ SMPPL SNIA snprintf SOFA softSurfer Soundex Spencer-86 Spencer-94 Spencer-99 SPL-1.0 \
    ssh-keyscan SSH-OpenSSH SSH-short SSLeay-standalone SSPL-1.0 StandardML-NJ SugarCRM-1.1.3 \
    SUL-1.0 Sun-PPP Sun-PPP-2000 SunPro SWL swrule Symlinks TAPR-OHL-1.0 TCL TCP-wrappers \
    TermReadKey TGPPL-1.0 ThirdEye threeparttable TMate TORQUE-1.1 TOSL TPDL TPL-1.0 TrustedQSL \
    TTWL TTYP0 TU-Berlin-1.0 TU-Berlin-2.0 Ubuntu-font-1.0 UCAR UCL-1.0 ulem UMich-Merit \
    Unicode-3.0 Unicode-DFS-2015 Unicode-DFS-2016 Unicode-TOU UnixCrypt Unlicense \
    Unlicense-libtelnet Unlicense-libwhirlpool UPL-1.0 URT-RLE Vim VOSTROM VSL-1.0 W3C \
    W3C-19980720 W3C-20150513 w3m Watcom-1.0 Widget-Workshop Wsuipa WTFPL wwl wxWindows X11 \
    X11-distribute-modifications-variant X11-swapped Xdebug-1.03 Xerox Xfig XFree86-1.1 xinetd \
    xkeyboard-config-Zinoviev xlock Xnet xpp XSkat xzoom YPL-1.0 YPL-1.1 Zed Zeeff Zend-2.0 \
    Zimbra-1.3 Zimbra-1.4 Zlib zlib-acknowledgement ZPL-1.1 ZPL-2.0 ZPL-2.1";

const SPDX_EXCEPTIONS: &str = "\
    389-exception Asterisk-exception Asterisk-linking-protocols-exception Autoconf-exception-2.0 \
    Autoconf-exception-3.0 Autoconf-exception-generic Autoconf-exception-generic-3.0 \
    Autoconf-exception-macro Bison-exception-1.24 Bison-exception-2.2 Bootloader-exception \
    CGAL-linking-exception Classpath-exception-2.0 CLISP-exception-2.0 \
    cryptsetup-OpenSSL-exception Digia-Qt-LGPL-exception-1.1 DigiRule-FOSS-exception \
    eCos-exception-2.0 erlang-otp-linking-exception Fawkes-Runtime-exception FLTK-exception \
    fmt-exception Font-exception-2.0 freertos-exception-2.0 GCC-exception-2.0 \
    GCC-exception-2.0-note GCC-exception-3.1 Gmsh-exception GNAT-exception \
    GNOME-examples-exception GNU-compiler-exception gnu-javamail-exception \
    GPL-3.0-389-ds-base-exception GPL-3.0-interface-exception GPL-3.0-linking-exception \
    GPL-3.0-linking-source-exception GPL-CC-1.0 GStreamer-exception-2005 \
    GStreamer-exception-2008 harbour-exception i2p-gpl-java-exception \
    Independent-modules-exception KiCad-libraries-exception LGPL-3.0-linking-exception \
    libpri-OpenH323-exception Libtool-exception Linux-syscall-note LLGPL LLVM-exception \
    LZMA-exception mif-exception MPL-2.0-no-copyleft-exception mxml-exception \
    Nokia-Qt-exception-1.1 OCaml-LGPL-linking-exception OCCT-exception-1.0 \
    OpenJDK-assembly-exception-1.0 openvpn-openssl-exception PCRE2-exception polyparse-exception \
    PS-or-PDF-font-exception-20170817 QPL-1.0-INRIA-2004-exception Qt-GPL-exception-1.0 \
    Qt-LGPL-exception-1.1 Qwt-exception-1.0 romic-exception RRDtool-FLOSS-exception-2.0 \
    SANE-exception SHL-2.0 SHL-2.1 stunnel-exception SWI-exception Swift-exception \
    Texinfo-exception u-boot-exception-2.0 UBDL-exception Universal-FOSS-exception-1.0 \
    vsftpd-openssl-exception WxWindows-exception-3.1 x11vnc-openssl-exception";

#[cfg(test)]
mod tests {
    use super::*;

    fn hello<'a>(files: &'a [SbomFile], sources: &'a [SourceRef]) -> SbomInput<'a> {
        SbomInput {
            name: "hello",
            version: "2.12-r0",
            arch: crate::Arch::X86_64,
            license: "GPL-3.0-or-later",
            license_texts: &[],
            copyright: "",
            description: "say hello",
            url: "https://www.gnu.org/software/hello/",
            origin: "hello",
            namespace: "wolfi",
            created: 1_700_000_000,
            files,
            sources,
        }
    }

    fn hello_files() -> Vec<SbomFile> {
        vec![SbomFile {
            path: "usr/bin/hello".into(),
            sha1: [0x11; 20],
            sha256: [0x22; 32],
        }]
    }

    fn hello_sources() -> Vec<SourceRef> {
        vec![SourceRef::Archive {
            uri: "https://ftp.gnu.org/gnu/hello/hello-2.12.tar.gz".into(),
            name: String::new(),
            version: String::new(),
            sha256: Some("cf04af86dc085268c5f4470fbae49b18afbc221b78096aab842d934a76bad0ab".into()),
            sha512: None,
        }]
    }

    // Validated with `pyspdxtools -i` (spdx-tools 0.8.5) when it was recorded.
    const GOLDEN: &str = r#"{
  "spdxVersion": "SPDX-2.3",
  "dataLicense": "CC0-1.0",
  "SPDXID": "SPDXRef-DOCUMENT",
  "name": "apk-hello-2.12-r0",
  "documentNamespace": "https://spdx.org/spdxdocs/pkgr/hello-2.12-r0-x86_64-190026627135f84a1230a37d7a5f5c8a",
  "creationInfo": {
    "created": "2023-11-14T22:13:20Z",
    "creators": [
      "Tool: pkgr-{VERSION}"
    ],
    "licenseListVersion": "3.27"
  },
  "packages": [
    {
      "SPDXID": "SPDXRef-Package-hello-2.12-r0",
      "name": "hello",
      "versionInfo": "2.12-r0",
      "supplier": "Organization: wolfi",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": true,
      "packageVerificationCode": {
        "packageVerificationCodeValue": "0a05a9e69e5757ac71c75a50418622624f042c97"
      },
      "homepage": "https://www.gnu.org/software/hello/",
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "GPL-3.0-or-later",
      "copyrightText": "NOASSERTION",
      "description": "say hello",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:apk/wolfi/hello@2.12-r0?arch=x86_64&distro=wolfi"
        }
      ]
    },
    {
      "SPDXID": "SPDXRef-Source-0-hello-2.12",
      "name": "hello",
      "versionInfo": "2.12",
      "downloadLocation": "https://ftp.gnu.org/gnu/hello/hello-2.12.tar.gz",
      "filesAnalyzed": false,
      "checksums": [
        {
          "algorithm": "SHA256",
          "checksumValue": "cf04af86dc085268c5f4470fbae49b18afbc221b78096aab842d934a76bad0ab"
        }
      ],
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "NOASSERTION",
      "copyrightText": "NOASSERTION",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:generic/hello@2.12?checksum=sha256%3Acf04af86dc085268c5f4470fbae49b18afbc221b78096aab842d934a76bad0ab&download_url=https%3A%2F%2Fftp.gnu.org%2Fgnu%2Fhello%2Fhello-2.12.tar.gz"
        }
      ],
      "primaryPackagePurpose": "SOURCE"
    }
  ],
  "files": [
    {
      "SPDXID": "SPDXRef-File-211f36e51f2bbc74",
      "fileName": "./usr/bin/hello",
      "checksums": [
        {
          "algorithm": "SHA1",
          "checksumValue": "1111111111111111111111111111111111111111"
        },
        {
          "algorithm": "SHA256",
          "checksumValue": "2222222222222222222222222222222222222222222222222222222222222222"
        }
      ],
      "licenseConcluded": "NOASSERTION",
      "copyrightText": "NOASSERTION"
    }
  ],
  "relationships": [
    {
      "spdxElementId": "SPDXRef-DOCUMENT",
      "relationshipType": "DESCRIBES",
      "relatedSpdxElement": "SPDXRef-Package-hello-2.12-r0"
    },
    {
      "spdxElementId": "SPDXRef-Package-hello-2.12-r0",
      "relationshipType": "GENERATED_FROM",
      "relatedSpdxElement": "SPDXRef-Source-0-hello-2.12"
    },
    {
      "spdxElementId": "SPDXRef-Package-hello-2.12-r0",
      "relationshipType": "CONTAINS",
      "relatedSpdxElement": "SPDXRef-File-211f36e51f2bbc74"
    }
  ]
}
"#;

    #[test]
    fn golden_document() {
        let (files, sources) = (hello_files(), hello_sources());
        let expected = GOLDEN.replace("{VERSION}", env!("CARGO_PKG_VERSION"));
        assert_eq!(spdx_json(&hello(&files, &sources)), expected);
    }

    #[test]
    fn same_input_gives_same_bytes_whatever_the_file_order() {
        let sources = hello_sources();
        let mut files = vec![
            SbomFile {
                path: "usr/bin/b".into(),
                sha1: [2; 20],
                sha256: [2; 32],
            },
            SbomFile {
                path: "/usr/bin/a".into(),
                sha1: [1; 20],
                sha256: [1; 32],
            },
            SbomFile {
                path: "./usr/lib/c".into(),
                sha1: [3; 20],
                sha256: [3; 32],
            },
        ];
        let first = spdx_json(&hello(&files, &sources));
        assert_eq!(first, spdx_json(&hello(&files, &sources)));
        files.reverse();
        assert_eq!(first, spdx_json(&hello(&files, &sources)));
        assert!(first.ends_with("}\n"));
        assert!(first.contains(r#""fileName": "./usr/bin/a""#));
    }

    #[test]
    fn namespace_changes_with_content() {
        let (files, sources) = (hello_files(), hello_sources());
        let ns = |input: &SbomInput| {
            let doc: serde_json::Value = serde_json::from_str(&spdx_json(input)).unwrap();
            doc["documentNamespace"].as_str().unwrap().to_string()
        };
        let a = ns(&hello(&files, &sources));
        let b = ns(&hello(&[], &sources));
        let c = ns(&SbomInput {
            created: 0,
            ..hello(&files, &sources)
        });
        assert!(a.starts_with("https://spdx.org/spdxdocs/pkgr/hello-2.12-r0-x86_64-"));
        assert!(a != b && a != c && b != c);
    }

    #[test]
    fn verification_code_follows_spdx_7_9() {
        // sha1("0101..01" + "0202..02"), the hex sorted, computed with Python's hashlib.
        let files: Vec<SbomFile> = [2u8, 1]
            .iter()
            .map(|&i| SbomFile {
                path: format!("f{i}"),
                sha1: [i; 20],
                sha256: [i; 32],
            })
            .collect();
        let listed = super::files(&files);
        assert_eq!(
            verification_code(&listed),
            "b8309e51bc04b6a3c596607104a8ea40696fd768"
        );
    }

    #[test]
    fn sbom_path_is_melanges() {
        assert_eq!(
            sbom_path("hello", "2.12-r0"),
            "var/lib/db/sbom/hello-2.12-r0.spdx.json"
        );
    }

    #[test]
    fn rfc3339_dates() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(secs), text, "{secs}");
        }
    }

    fn licensing(text: &str) -> (String, Vec<(String, String)>) {
        let texts = [(
            "LicenseRef-mine".to_string(),
            "You may do anything.".to_string(),
        )];
        let l = Licensing::of(text, &texts);
        let refs = l
            .extracted
            .into_iter()
            .map(|e| (e.license_id, e.name))
            .collect();
        (l.expression, refs)
    }

    #[test]
    fn listed_licenses_are_kept_in_canonical_case() {
        for (text, expected) in [
            ("", "NOASSERTION"),
            ("  ", "NOASSERTION"),
            ("NOASSERTION", "NOASSERTION"),
            ("NONE", "NONE"),
            ("mit", "MIT"),
            ("GPL-2.0-or-later", "GPL-2.0-or-later"),
            ("GPL-2.0+", "GPL-2.0+"),
            ("LGPL-2.1", "LGPL-2.1"),
            ("mit and apache-2.0", "MIT AND Apache-2.0"),
            (
                "GPL-2.0-only WITH classpath-exception-2.0 OR (MIT AND BSD-3-Clause)",
                "GPL-2.0-only WITH Classpath-exception-2.0 OR (MIT AND BSD-3-Clause)",
            ),
            ("( 0BSD )", "(0BSD)"),
        ] {
            assert_eq!(licensing(text), (expected.to_string(), vec![]), "{text:?}");
        }
    }

    #[test]
    fn unlisted_licenses_become_declared_license_refs() {
        let r = |id: &str, name: &str| (id.to_string(), name.to_string());
        assert_eq!(
            licensing("GPL v2 or later"),
            (
                "LicenseRef-GPL-v2-or-later".into(),
                vec![r("LicenseRef-GPL-v2-or-later", "GPL v2 or later")]
            )
        );
        assert_eq!(
            licensing("MIT AND Foo-1.0 AND MIT+ AND Foo-1.0"),
            (
                "MIT AND LicenseRef-Foo-1.0 AND LicenseRef-MITplus AND LicenseRef-Foo-1.0".into(),
                vec![
                    r("LicenseRef-Foo-1.0", "Foo-1.0"),
                    r("LicenseRef-MITplus", "MIT+")
                ]
            )
        );
        // SPDX 2.3 has no custom exceptions: the whole pair is one license.
        assert_eq!(
            licensing("GPL-2.0-only WITH Odd-exception"),
            (
                "LicenseRef-GPL-2.0-only-WITH-Odd-exception".into(),
                vec![r(
                    "LicenseRef-GPL-2.0-only-WITH-Odd-exception",
                    "GPL-2.0-only WITH Odd-exception"
                )]
            )
        );
        // A recipe's own LicenseRef keeps its id; a generated one steers clear of it.
        assert_eq!(
            licensing("foo+ OR LicenseRef-fooplus"),
            (
                "LicenseRef-fooplus-2 OR LicenseRef-fooplus".into(),
                vec![
                    r("LicenseRef-fooplus-2", "foo+"),
                    r("LicenseRef-fooplus", "LicenseRef-fooplus")
                ]
            )
        );
        // Unbalanced parentheses: not an expression.
        assert_eq!(licensing("((MIT)").0, "LicenseRef-MIT");
        assert_eq!(licensing("!!!").0, "LicenseRef-unknown");
    }

    #[test]
    fn license_texts_fill_extracted_text() {
        let texts = [
            (
                "LicenseRef-mine".to_string(),
                "You may do anything.".to_string(),
            ),
            (
                "Public Domain".to_string(),
                "No rights reserved.".to_string(),
            ),
        ];
        let l = Licensing::of("LicenseRef-mine AND Public Domain", &texts);
        // "AND Public Domain" does not parse: the whole string is one custom license.
        assert_eq!(l.expression, "LicenseRef-LicenseRef-mine-AND-Public-Domain");
        let l = Licensing::of("LicenseRef-mine OR (Unlisted)", &texts);
        assert_eq!(l.expression, "LicenseRef-mine OR (LicenseRef-Unlisted)");
        assert_eq!(l.extracted[0].extracted_text, "You may do anything.");
        assert!(l.extracted[1].extracted_text.contains("\"Unlisted\""));
        let l = Licensing::of("Public Domain", &texts);
        assert_eq!(l.extracted[0].extracted_text, "No rights reserved.");
    }

    #[test]
    fn purls_follow_melange() {
        let input = ApkMeta {
            name: "libstdc++",
            version: "2.12-r0",
            arch: "x86_64",
            origin: "gcc",
            description: "",
            url: "",
        };
        assert_eq!(
            apk_purl(&input, "wolfi"),
            "pkg:apk/wolfi/libstdc%2B%2B@2.12-r0?arch=x86_64&distro=wolfi"
        );
        assert_eq!(
            apk_purl(&input, "unknown"),
            "pkg:apk/unknown/libstdc%2B%2B@2.12-r0?arch=x86_64"
        );
    }

    #[test]
    fn git_sources() {
        let input = hello(&[], &[]);
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let git = |repository: &str, tag: Option<&str>| SourceRef::Git {
            repository: repository.into(),
            tag: tag.map(str::to_string),
            commit: Some(commit.into()),
        };
        let p = source_package(
            0,
            &git("https://github.com/owner/repo.git", Some("v1")),
            &input,
        );
        assert_eq!(
            p.external_refs[0].reference_locator,
            "pkg:github/owner/repo@v1"
        );
        assert_eq!(
            p.external_refs[1].reference_locator,
            format!("gitoid:commit:sha1:{commit}")
        );
        assert_eq!(
            p.download_location,
            format!("git+https://github.com/owner/repo.git@{commit}")
        );
        let p = source_package(1, &git("git@example.org:team/repo.git", None), &input);
        assert_eq!(p.name, "repo");
        assert_eq!(p.version_info.as_deref(), Some(commit));
        assert_eq!(
            p.download_location,
            format!("git+git@example.org:team/repo.git@{commit}")
        );
        assert!(p.external_refs[0]
            .reference_locator
            .starts_with("pkg:generic/repo@0123"));
    }

    #[test]
    fn url_plausibility_matches_the_validator() {
        for url in [
            "https://www.gnu.org/software/hello/",
            "http://example.com",
            "https://example.com:8443/x?y#z",
            "ftp://ftp.example.org/pub/x.tar.gz",
        ] {
            assert!(is_plausible_url(url), "{url}");
        }
        for url in [
            "",
            "not a url",
            "file:///srv/x",
            "https://localhost/x",
            "https://10.0.0.1/x",
            "example.com",
            "https://exa mple.com",
        ] {
            assert!(!is_plausible_url(url), "{url}");
        }
    }

    fn wolfi() -> OperatingSystem {
        OperatingSystem::from_os_release(Some(
            "ID=wolfi\nNAME=\"Wolfi\"\nPRETTY_NAME=\"Wolfi\"\nVERSION_ID=\"20230201\"\n",
        ))
    }

    fn image_packages() -> Vec<ImagePackage<'static>> {
        let p =
            |name, version, arch, license, origin, depends: &[&'static str], c: u8| ImagePackage {
                name,
                version,
                arch,
                license,
                origin,
                description: "",
                url: "",
                checksum: ApkChecksum::Sha1([c; 20]),
                depends: depends.to_vec(),
            };
        vec![
            p(
                "libstdc++",
                "13.2.0-r0",
                "x86_64",
                "GPL-3.0-or-later WITH GCC-exception-3.1",
                "gcc",
                &["glibc", "not-installed"],
                3,
            ),
            p(
                "glibc",
                "2.38-r0",
                "x86_64",
                "LGPL-2.1-or-later",
                "glibc",
                &["wolfi-baselayout"],
                2,
            ),
            p("odd", "1.0-r0", "x86_64", "Custom License", "", &["odd"], 4),
            p(
                "wolfi-baselayout",
                "20230201-r0",
                "noarch",
                "MIT",
                "",
                &[],
                1,
            ),
        ]
    }

    fn image<'a>(os: &'a OperatingSystem, packages: &'a [ImagePackage<'a>]) -> ImageSbomInput<'a> {
        ImageSbomInput {
            name: "static",
            tag: "latest",
            arch: crate::Arch::X86_64,
            created: 1_700_000_000,
            os,
            namespace: &os.id,
            packages,
        }
    }

    // Validated with `pyspdxtools -i` (spdx-tools 0.8.5) and the SPDX 2.3 JSON schema when
    // it was recorded.
    const IMAGE_GOLDEN: &str = r#"{
  "spdxVersion": "SPDX-2.3",
  "dataLicense": "CC0-1.0",
  "SPDXID": "SPDXRef-DOCUMENT",
  "name": "image-static-latest-x86_64",
  "documentNamespace": "https://spdx.org/spdxdocs/compose/static-latest-x86_64-fc04a4f20dc8f4c6b62280711d57896d",
  "creationInfo": {
    "created": "2023-11-14T22:13:20Z",
    "creators": [
      "Tool: compose-{VERSION}"
    ],
    "licenseListVersion": "3.27"
  },
  "packages": [
    {
      "SPDXID": "SPDXRef-OperatingSystem",
      "name": "Wolfi",
      "versionInfo": "20230201",
      "supplier": "Organization: Wolfi",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "NOASSERTION",
      "copyrightText": "NOASSERTION",
      "description": "The operating system of the image static:latest for x86_64",
      "primaryPackagePurpose": "OPERATING_SYSTEM"
    },
    {
      "SPDXID": "SPDXRef-Package-glibc-2.38-r0",
      "name": "glibc",
      "versionInfo": "2.38-r0",
      "supplier": "Organization: wolfi",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "checksums": [
        {
          "algorithm": "SHA1",
          "checksumValue": "0202020202020202020202020202020202020202"
        }
      ],
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "LGPL-2.1-or-later",
      "copyrightText": "NOASSERTION",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:apk/wolfi/glibc@2.38-r0?arch=x86_64&distro=wolfi"
        }
      ]
    },
    {
      "SPDXID": "SPDXRef-Package-libstdcC43C43-13.2.0-r0",
      "name": "libstdc++",
      "versionInfo": "13.2.0-r0",
      "supplier": "Organization: wolfi",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "sourceInfo": "built from the recipe of gcc",
      "checksums": [
        {
          "algorithm": "SHA1",
          "checksumValue": "0303030303030303030303030303030303030303"
        }
      ],
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "GPL-3.0-or-later WITH GCC-exception-3.1",
      "copyrightText": "NOASSERTION",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:apk/wolfi/libstdc%2B%2B@13.2.0-r0?arch=x86_64&distro=wolfi"
        }
      ]
    },
    {
      "SPDXID": "SPDXRef-Package-odd-1.0-r0",
      "name": "odd",
      "versionInfo": "1.0-r0",
      "supplier": "Organization: wolfi",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "checksums": [
        {
          "algorithm": "SHA1",
          "checksumValue": "0404040404040404040404040404040404040404"
        }
      ],
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "LicenseRef-Custom-License",
      "copyrightText": "NOASSERTION",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:apk/wolfi/odd@1.0-r0?arch=x86_64&distro=wolfi"
        }
      ]
    },
    {
      "SPDXID": "SPDXRef-Package-wolfi-baselayout-20230201-r0",
      "name": "wolfi-baselayout",
      "versionInfo": "20230201-r0",
      "supplier": "Organization: wolfi",
      "downloadLocation": "NOASSERTION",
      "filesAnalyzed": false,
      "checksums": [
        {
          "algorithm": "SHA1",
          "checksumValue": "0101010101010101010101010101010101010101"
        }
      ],
      "licenseConcluded": "NOASSERTION",
      "licenseDeclared": "MIT",
      "copyrightText": "NOASSERTION",
      "externalRefs": [
        {
          "referenceCategory": "PACKAGE-MANAGER",
          "referenceType": "purl",
          "referenceLocator": "pkg:apk/wolfi/wolfi-baselayout@20230201-r0?arch=noarch&distro=wolfi"
        }
      ]
    }
  ],
  "hasExtractedLicensingInfos": [
    {
      "licenseId": "LicenseRef-Custom-License",
      "extractedText": "The package declares the license \"Custom License\", which is not on the SPDX License List; its text was not supplied.",
      "name": "Custom License"
    }
  ],
  "relationships": [
    {
      "spdxElementId": "SPDXRef-DOCUMENT",
      "relationshipType": "DESCRIBES",
      "relatedSpdxElement": "SPDXRef-OperatingSystem"
    },
    {
      "spdxElementId": "SPDXRef-OperatingSystem",
      "relationshipType": "CONTAINS",
      "relatedSpdxElement": "SPDXRef-Package-glibc-2.38-r0"
    },
    {
      "spdxElementId": "SPDXRef-OperatingSystem",
      "relationshipType": "CONTAINS",
      "relatedSpdxElement": "SPDXRef-Package-libstdcC43C43-13.2.0-r0"
    },
    {
      "spdxElementId": "SPDXRef-OperatingSystem",
      "relationshipType": "CONTAINS",
      "relatedSpdxElement": "SPDXRef-Package-odd-1.0-r0"
    },
    {
      "spdxElementId": "SPDXRef-OperatingSystem",
      "relationshipType": "CONTAINS",
      "relatedSpdxElement": "SPDXRef-Package-wolfi-baselayout-20230201-r0"
    },
    {
      "spdxElementId": "SPDXRef-Package-glibc-2.38-r0",
      "relationshipType": "DEPENDS_ON",
      "relatedSpdxElement": "SPDXRef-Package-wolfi-baselayout-20230201-r0"
    },
    {
      "spdxElementId": "SPDXRef-Package-libstdcC43C43-13.2.0-r0",
      "relationshipType": "DEPENDS_ON",
      "relatedSpdxElement": "SPDXRef-Package-glibc-2.38-r0"
    }
  ]
}
"#;

    #[test]
    fn image_golden_document() {
        let (os, packages) = (wolfi(), image_packages());
        let expected = IMAGE_GOLDEN.replace("{VERSION}", env!("CARGO_PKG_VERSION"));
        assert_eq!(image_spdx_json(&image(&os, &packages)), expected);
    }

    #[test]
    fn image_document_does_not_depend_on_package_order() {
        let (os, mut packages) = (wolfi(), image_packages());
        let first = image_spdx_json(&image(&os, &packages));
        packages.reverse();
        assert_eq!(first, image_spdx_json(&image(&os, &packages)));
        let other = image_spdx_json(&ImageSbomInput {
            arch: crate::Arch::Aarch64,
            ..image(&os, &packages)
        });
        let ns = |doc: &str| {
            let v: serde_json::Value = serde_json::from_str(doc).unwrap();
            v["documentNamespace"].as_str().unwrap().to_string()
        };
        assert!(ns(&other).starts_with("https://spdx.org/spdxdocs/compose/static-latest-aarch64-"));
        assert_ne!(ns(&first), ns(&other));
    }

    #[test]
    fn image_without_os_release_or_namespace() {
        let os = OperatingSystem::from_os_release(None);
        assert_eq!(os.name, OperatingSystem::DEFAULT_NAME);
        assert_eq!((os.id.as_str(), os.version.as_str()), ("", ""));
        let packages = image_packages();
        let doc: serde_json::Value =
            serde_json::from_str(&image_spdx_json(&image(&os, &packages))).unwrap();
        let os_package = &doc["packages"][0];
        assert_eq!(os_package["name"], OperatingSystem::DEFAULT_NAME);
        assert_eq!(os_package["supplier"], "NOASSERTION");
        assert!(os_package.get("versionInfo").is_none());
        assert_eq!(
            doc["packages"][1]["externalRefs"][0]["referenceLocator"],
            "pkg:apk/unknown/glibc@2.38-r0?arch=x86_64"
        );
    }

    #[test]
    fn image_license_refs_are_shared_and_kept_apart() {
        // One package writes LicenseRef-fooplus itself; another's "foo+" must not take it.
        let mut packages = image_packages();
        packages[0].license = "foo+";
        packages[1].license = "LicenseRef-fooplus";
        packages[2].license = "foo+";
        let os = wolfi();
        let doc: serde_json::Value =
            serde_json::from_str(&image_spdx_json(&image(&os, &packages))).unwrap();
        let declared: Vec<&str> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["licenseDeclared"].as_str().unwrap())
            .collect();
        assert_eq!(
            declared,
            [
                "NOASSERTION",
                "LicenseRef-fooplus",
                "LicenseRef-fooplus-2",
                "LicenseRef-fooplus-2",
                "MIT"
            ]
        );
        let ids: Vec<&str> = doc["hasExtractedLicensingInfos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["licenseId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["LicenseRef-fooplus", "LicenseRef-fooplus-2"]);
    }

    #[test]
    fn os_release_values_are_unquoted() {
        let os = OperatingSystem::from_os_release(Some(
            "# comment\nNAME='Alpine Linux'\nID=alpine\nVERSION_ID=\"3.\\\"20\\\"\"\nBROKEN\n",
        ));
        assert_eq!(
            os,
            OperatingSystem {
                id: "alpine".into(),
                name: "Alpine Linux".into(),
                version: "3.\"20\"".into(),
            }
        );
    }

    #[test]
    fn image_packages_depend_on_what_meets_their_dependencies() {
        let entry = |name: &str, depends: &str, provides: &str| {
            let mut info = crate::PackageInfo::new(name, "1.0-r0".parse().unwrap(), "x86_64");
            info.depends = crate::dependency::parse_list(depends).unwrap();
            info.provides = crate::dependency::parse_list(provides).unwrap();
            IndexEntry {
                checksum: ApkChecksum::sha1_of(name.as_bytes()),
                size: 0,
                info,
            }
        };
        let entries = [
            entry("app", "so:libc.so.6 cmd:sh>=2 !busybox libcrypto", ""),
            entry("glibc", "", "so:libc.so.6=6"),
            // An unversioned provide does not meet a versioned dependency.
            entry("toybox", "", "cmd:sh"),
            entry("bash", "", "cmd:sh=5.2"),
            entry("busybox", "", ""),
            entry("libcrypto3", "libcrypto3", "libcrypto"),
        ];
        let packages = ImagePackage::from_entries(&entries);
        let depends: Vec<(&str, Vec<&str>)> = packages
            .iter()
            .map(|p| (p.name, p.depends.clone()))
            .collect();
        assert_eq!(
            depends,
            [
                ("app", vec!["bash", "glibc", "libcrypto3"]),
                ("glibc", vec![]),
                ("toybox", vec![]),
                ("bash", vec![]),
                ("busybox", vec![]),
                ("libcrypto3", vec![]),
            ]
        );
        assert_eq!(packages[1].checksum, ApkChecksum::sha1_of(b"glibc"));
        assert_eq!(packages[0].version, "1.0-r0");
    }
}

//! Docker archives: the tarball `docker save` writes and `docker load` and skopeo's
//! `docker-archive:` transport read, made from a written OCI layout.
//!
//! Format: the tar holds the layout [`crate::oci::write_layout`] wrote, file for file
//! (`oci-layout`, `index.json`, `blobs/sha256/*`, the SBOMs), plus Docker's `manifest.json`:
//! one item per architecture, `{"Config": "blobs/sha256/<hex>", "Layers":
//! ["blobs/sha256/<hex>"], "RepoTags": [...]}`. This is the shape `docker save` itself
//! writes since Docker 25: `manifest.json` may name any path in the tar, and `docker load`
//! (like skopeo) detects a gzip layer. So the digests are those of `--out`, nothing is
//! stored twice, and `oci-archive:FILE:TAG` reads the same tar. `index.json` differs from
//! the layout's only by `io.containerd.image.name` annotations, as `docker save` writes
//! them. The legacy `repositories` file (Docker < 1.10) is not written.
//!
//! Architectures follow apko (`pkg/build/oci.BuildIndex`): one tar holds every
//! architecture's image, each tagged `<name>:<tag>-<arch>`. apko's `<arch>` is the OCI
//! architecture without its variant, so `arm/v6` and `arm/v7` would collide; we use the
//! apk name, as the layout's ref names do (`latest-x86_64`). A single-arch tar also
//! carries `<name>:<tag>`. `manifest.json` has no index, so a classic `docker load` loads
//! every image under its own tag, and skopeo needs `docker-archive:FILE:<name>:<tag>-<arch>`
//! (or `:@N`) when there are several.
//!
//! The tar is deterministic: entries sorted by path, owner root, files 0644, directories
//! 0755, every mtime the image's `created` time (`SOURCE_DATE_EPOCH`). It is written to a
//! temporary file beside the target and renamed into place.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use apk::tarball::{Entry, Kind, Magic, Owner, TarWriter};
use apk::Arch;
use serde_json::{json, Value};

use crate::image::{self, ComposeOptions, ImageFile};
use crate::oci::{self, canonical_json, WrittenLayout};

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CREATED: &str = "org.opencontainers.image.created";
/// Docker's own file; a layout never has one.
const DOCKER_MANIFEST: &str = "manifest.json";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Debug, thiserror::Error)]
pub enum DockerArchiveError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {what}", path.display())]
    BadLayout { path: PathBuf, what: String },
    #[error("{}: no image index named {tag:?} in index.json", layout.display())]
    NoSuchTag { layout: PathBuf, tag: String },
    #[error("{}: platform {platform} is not one of ours", path.display())]
    UnknownPlatform { path: PathBuf, platform: String },
    #[error(
        "{name:?} is not a valid image name: use lowercase letters and digits, separated by \
         single `.`, `_`, `-` or `/` (e.g. `my-image` or `example.com/team/app`); give --name"
    )]
    BadName { name: String },
    #[error(transparent)]
    Write(#[from] apk::Error),
}

type Result<T, E = DockerArchiveError> = std::result::Result<T, E>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DockerArchiveError + '_ {
    move |source| DockerArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One image of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveImage {
    pub arch: Arch,
    /// `name:tag-<apk arch>`, preceded by `name:tag` in a single-arch archive.
    pub repo_tags: Vec<String>,
    /// The manifest's digest, as in the layout.
    pub manifest: String,
    /// The config's digest: the image ID `docker load` reports.
    pub config: String,
}

/// A repository name as Docker's reference grammar accepts it (path components of
/// lowercase alphanumerics joined by `.`, `_`, `__` or dashes), without a tag or digest.
pub fn check_name(name: &str) -> Result<()> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
            && !c.contains("..")
            && !c.contains("._")
            && !c.contains("_.")
            && !c.contains("___")
    };
    if name.len() <= 255 && name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(DockerArchiveError::BadName {
            name: name.to_string(),
        })
    }
}

/// The name an image file gives its archive by default: its file name without the
/// extension, lowercased (`images/My-App.yaml` -> `my-app`).
pub fn default_name(image_file: &Path) -> Result<String> {
    let name = image_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    check_name(&name)?;
    Ok(name)
}

/// Parse the `YYYY-MM-DDTHH:MM:SSZ` that [`oci::rfc3339`] writes back into seconds.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's `days_from_civil`, for years from 1970.
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = fs::read(path).map_err(io_at(path))?;
    serde_json::from_slice(&bytes).map_err(|source| DockerArchiveError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// `blobs/sha256/<hex>` for a descriptor's digest, checked to be one.
fn blob_rel(desc: &Value, at: &Path) -> Result<String> {
    let digest = desc["digest"].as_str().unwrap_or_default();
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("blobs/sha256/{hex}"))
        }
        _ => Err(DockerArchiveError::BadLayout {
            path: at.to_path_buf(),
            what: format!("descriptor without a sha256 digest: {desc}"),
        }),
    }
}

fn arch_of(platform: &Value, at: &Path) -> Result<Arch> {
    let architecture = platform["architecture"].as_str().unwrap_or_default();
    let variant = platform["variant"].as_str();
    Arch::ALL
        .into_iter()
        .find(|a| a.oci() == (architecture, variant))
        .ok_or_else(|| DockerArchiveError::UnknownPlatform {
            path: at.to_path_buf(),
            platform: match variant {
                Some(v) => format!("{architecture}/{v}"),
                None => architecture.to_string(),
            },
        })
}

/// The images of `tag` in the layout and the time they were created.
fn images_of(layout: &Path, tag: &str, name: &str) -> Result<(Vec<(ArchiveImage, Value)>, u64)> {
    let top_path = layout.join("index.json");
    let top = read_json(&top_path)?;
    let index_desc = top["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["mediaType"] == INDEX_MEDIA_TYPE && d["annotations"][REF_NAME] == tag)
        .ok_or_else(|| DockerArchiveError::NoSuchTag {
            layout: layout.to_path_buf(),
            tag: tag.to_string(),
        })?;
    let index_path = layout.join(blob_rel(index_desc, &top_path)?);
    let index = read_json(&index_path)?;
    let created = index["annotations"][CREATED]
        .as_str()
        .and_then(parse_rfc3339)
        .ok_or_else(|| DockerArchiveError::BadLayout {
            path: index_path.clone(),
            what: format!("no {CREATED} annotation in YYYY-MM-DDTHH:MM:SSZ form"),
        })?;
    let descs = index["manifests"].as_array().cloned().unwrap_or_default();
    if descs.is_empty() {
        return Err(DockerArchiveError::BadLayout {
            path: index_path,
            what: "the image index lists no manifests".into(),
        });
    }
    let single = descs.len() == 1;
    let mut images = Vec::new();
    for desc in &descs {
        let arch = arch_of(&desc["platform"], &index_path)?;
        let manifest_rel = blob_rel(desc, &index_path)?;
        let manifest_path = layout.join(&manifest_rel);
        let manifest = read_json(&manifest_path)?;
        let config = blob_rel(&manifest["config"], &manifest_path)?;
        let layers = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| blob_rel(l, &manifest_path))
            .collect::<Result<Vec<_>>>()?;
        let mut repo_tags = Vec::new();
        if single {
            repo_tags.push(format!("{name}:{tag}"));
        }
        repo_tags.push(format!("{name}:{tag}-{}", arch.apk()));
        let item = json!({"Config": config, "Layers": layers, "RepoTags": repo_tags});
        images.push((
            ArchiveImage {
                arch,
                repo_tags,
                manifest: desc["digest"].as_str().unwrap_or_default().to_string(),
                config: manifest["config"]["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            },
            item,
        ));
    }
    // Docker lists images in the order given; keep the layout's architecture order.
    images.sort_by_key(|(i, _)| i.arch);
    Ok((images, created))
}

/// Where a tar entry's content comes from.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Dir,
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// What goes in the tar: every file and directory of the layout, by relative path.
fn walk(root: &Path, rel: &str, out: &mut Vec<(String, Source)>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
        let entry = entry.map_err(io_at(&dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type().map_err(io_at(&path))?;
        if kind.is_dir() {
            out.push((format!("{child}/"), Source::Dir));
            walk(root, &child, out)?;
        } else if kind.is_file() {
            if child == DOCKER_MANIFEST {
                return Err(DockerArchiveError::BadLayout {
                    path,
                    what: "a layout to convert must not have Docker's manifest.json".into(),
                });
            }
            out.push((child, Source::File(path)));
        } else {
            return Err(DockerArchiveError::BadLayout {
                path,
                what: "neither a file nor a directory".into(),
            });
        }
    }
    Ok(())
}

/// `name` as Docker normalises it (`image` -> `docker.io/library/image`).
fn full_name(name: &str) -> String {
    match name.split_once('/') {
        Some((domain, _)) if domain.contains(['.', ':']) || domain == "localhost" => {
            name.to_string()
        }
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

/// The layout's `index.json` with each named descriptor also carrying
/// `io.containerd.image.name` = `<full name>:<ref name>`, as `docker save` writes it:
/// Docker's containerd image store names what it loads from that annotation and would
/// otherwise take a bare `latest` for a repository.
fn annotated_index(layout: &Path, name: &str) -> Result<Vec<u8>> {
    let path = layout.join("index.json");
    let mut index = read_json(&path)?;
    for desc in index["manifests"].as_array_mut().into_iter().flatten() {
        let Some(annotations) = desc["annotations"].as_object_mut() else {
            continue;
        };
        if let Some(tag) = annotations.get(REF_NAME).and_then(Value::as_str) {
            let image_name = format!("{}:{tag}", full_name(name));
            annotations.insert(CONTAINERD_NAME.to_string(), Value::String(image_name));
        }
    }
    canonical_json(&index).map_err(|e| DockerArchiveError::BadLayout {
        path,
        what: e.to_string(),
    })
}

/// Write the images the layout at `layout` names `tag` as a docker archive at `out`
/// (replaced atomically), tagged under `name`. Returns the images in archive order.
pub fn write_docker_archive(
    layout: &Path,
    tag: &str,
    name: &str,
    out: &Path,
) -> Result<Vec<ArchiveImage>> {
    check_name(name)?;
    let (images, mtime) = images_of(layout, tag, name)?;
    let items: Vec<&Value> = images.iter().map(|(_, item)| item).collect();
    let docker_manifest = canonical_json(&items).map_err(|e| DockerArchiveError::BadLayout {
        path: layout.to_path_buf(),
        what: e.to_string(),
    })?;
    let mut entries = Vec::new();
    walk(layout, "", &mut entries)?;
    for (path, source) in &mut entries {
        if path == "index.json" {
            *source = Source::Bytes(annotated_index(layout, name)?);
        }
    }
    entries.push((DOCKER_MANIFEST.to_string(), Source::Bytes(docker_manifest)));
    // Byte order of paths: `blobs/` before `blobs/sha256/` before its blobs.
    entries.sort();

    let owner = Owner::root();
    apk::fsutil::write_atomic_with(out, 0o644, |file| {
        let mut tar = TarWriter::new(BufWriter::new(file), Magic::Ustar);
        for (path, source) in &entries {
            let entry = |kind, mode| Entry {
                path,
                kind,
                mode,
                owner: &owner,
                mtime,
                sha1: None,
            };
            match source {
                Source::Dir => tar.append(&entry(Kind::Dir, 0o755), io::empty())?,
                Source::File(p) => {
                    let f = fs::File::open(p)?;
                    let size = f.metadata()?.len();
                    tar.append(&entry(Kind::File { size }, 0o644), f)?;
                }
                Source::Bytes(b) => {
                    let size = b.len() as u64;
                    tar.append(&entry(Kind::File { size }, 0o644), &b[..])?;
                }
            }
        }
        tar.finish()?.flush()
    })?;
    Ok(images.into_iter().map(|(i, _)| i).collect())
}

/// Compose the image into a docker archive at `out`: the layout is written to a
/// temporary directory beside `out`, converted, and removed.
pub fn compose_docker_archive(
    image: &ImageFile,
    out: &Path,
    tag: &str,
    name: &str,
    opts: &ComposeOptions,
) -> anyhow::Result<(WrittenLayout, Vec<ArchiveImage>)> {
    check_name(name)?;
    let dir = oci::staging_dir(out);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".compose-tar-")
        .tempdir_in(&dir)
        .with_context(|| format!("creating a temporary directory in {}", dir.display()))?;
    let layout = work.path().join("layout");
    let written = image::compose(image, &layout, tag, opts)?;
    let images = write_docker_archive(&layout, tag, name, out)?;
    Ok((written, images))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_time_round_trips() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&oci::rfc3339(secs)), Some(secs), "{secs}");
        }
        for bad in [
            "",
            "1970-01-01 00:00:00Z",
            "1970-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_follow_dockers_reference_grammar() {
        for good in [
            "image",
            "my-app",
            "a.b_c",
            "a__b",
            "example.com/team/app",
            "x1",
        ] {
            check_name(good).unwrap();
        }
        for bad in ["", "Image", "-a", "a-", "a//b", "a:b", "a..b", "a b", "/a"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            default_name(Path::new("dir/My-App.yaml")).unwrap(),
            "my-app"
        );
    }

    #[test]
    fn platforms_map_to_our_architectures() {
        let p = |v: Value| arch_of(&v, Path::new("x"));
        assert_eq!(
            p(json!({"architecture": "arm", "variant": "v7"})).unwrap(),
            Arch::Armv7
        );
        assert_eq!(p(json!({"architecture": "amd64"})).unwrap(), Arch::X86_64);
        assert!(p(json!({"architecture": "arm", "variant": "v6"})).is_err());
    }

    #[test]
    fn names_are_normalised_as_docker_does() {
        assert_eq!(full_name("image"), "docker.io/library/image");
        assert_eq!(full_name("team/app"), "docker.io/team/app");
        assert_eq!(full_name("example.com/app"), "example.com/app");
        assert_eq!(full_name("localhost/app"), "localhost/app");
    }
}

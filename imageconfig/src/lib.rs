//! apko's image configuration: the typed model of an image file (`compose build
//! image.yaml`), which is also a melange recipe's `environment:`.
//!
//! [`ImageConfiguration::load`] reads a file the way apko does (unknown keys are errors,
//! scalars keep their text) and reports YAML and schema errors as
//! `FILE:LINE:COLUMN: cause`. [`ImageConfiguration::validate`] then finds what the schema
//! cannot, naming each problem's field path. [`from_yaml`] is the same loader for any
//! other type built with the helpers in [`de`] (packager reads recipes with it).

pub mod de;
mod model;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use model::*;
pub use validate::{check_arch, Problem};

/// A YAML file that could not be read or does not fit the schema.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{}: {source}", .file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad YAML, an unknown key, a value of the wrong type, or an alias bomb.
    #[error("{}{}: {message}", .file.display(), location_suffix(.location))]
    Yaml {
        file: PathBuf,
        /// 1-based line and column, when known.
        location: Option<(usize, usize)>,
        /// The cause, with the field path where known (`package: unknown field ...`).
        message: String,
    },
}

fn location_suffix(location: &Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!(":{line}:{column}"),
        None => String::new(),
    }
}

impl YamlError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            YamlError::Io { file, .. } | YamlError::Yaml { file, .. } => file,
        }
    }

    /// 1-based line and column of the error in the file, when known.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            YamlError::Yaml { location, .. } => *location,
            YamlError::Io { .. } => None,
        }
    }

    fn yaml(file: &Path, err: serde_norway::Error) -> Self {
        let location = err.location().map(|l| (l.line(), l.column()));
        let mut message = err.to_string();
        // serde_norway appends the location to its message; it goes up front instead.
        if let Some((line, column)) = location {
            let suffix = format!(" at line {line} column {column}");
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        if message.contains("repetition limit exceeded") {
            message = format!(
                "{message}: YAML aliases expand too far; refusing a possible alias bomb \
                 (\"billion laughs\")"
            );
        }
        YamlError::Yaml {
            file: file.to_owned(),
            location,
            message,
        }
    }
}

/// Reads one YAML document into `T`, after checking that its aliases do not expand it
/// beyond reason; `file` names it in errors.
/// Like melange and apko, only the first document is read, and YAML merge keys
/// (`<<: *anchor`) are applied; errors in a document that had merge keys carry no
/// position.
pub fn from_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, YamlError> {
    de::check_expansion(text).map_err(|e| YamlError::yaml(file, e))?;
    if let Some(merged) = de::apply_merge_keys(text).map_err(|e| YamlError::yaml(file, e))? {
        return de::first_document(&merged).map_err(|e| {
            let mut err = YamlError::yaml(file, e);
            if let YamlError::Yaml { location, .. } = &mut err {
                *location = None;
            }
            err
        });
    }
    de::first_document(text).map_err(|e| YamlError::yaml(file, e))
}

/// Reads the file at `path` as text; the error names the file.
pub fn read(path: &Path) -> Result<String, YamlError> {
    std::fs::read_to_string(path).map_err(|source| YamlError::Io {
        file: path.to_owned(),
        source,
    })
}

impl ImageConfiguration {
    /// Parses image configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<ImageConfiguration, YamlError> {
        from_yaml(text, file)
    }

    /// Reads and parses the image configuration at `path`, with its `include` (a file
    /// relative to this one) merged underneath, as apko merges it: the including file's
    /// values win, lists are appended, maps are merged key by key.
    pub fn load(path: impl AsRef<Path>) -> Result<ImageConfiguration, YamlError> {
        Self::load_including(path.as_ref(), &mut Vec::new())
    }

    fn load_including(
        path: &Path,
        chain: &mut Vec<PathBuf>,
    ) -> Result<ImageConfiguration, YamlError> {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if chain.contains(&canonical) || chain.len() >= MAX_INCLUDE_DEPTH {
            let names: Vec<String> = chain
                .iter()
                .chain([&canonical])
                .map(|p| p.display().to_string())
                .collect();
            return Err(YamlError::Yaml {
                file: path.to_path_buf(),
                location: None,
                message: format!(
                    "include: a cycle or more than {MAX_INCLUDE_DEPTH} levels: {}",
                    names.join(" -> ")
                ),
            });
        }
        let mut config = ImageConfiguration::parse(&read(path)?, path)?;
        if let Some(include) = config.include.take() {
            chain.push(canonical);
            let dir = path.parent().unwrap_or(Path::new("."));
            let base = Self::load_including(&dir.join(include), chain)?;
            chain.pop();
            config.merge_base(base);
        }
        Ok(config)
    }

    /// Fill what this configuration leaves unset from `base`, append `base`'s lists.
    fn merge_base(&mut self, base: ImageConfiguration) {
        fn append<T>(own: &mut Vec<T>, base: Vec<T>) {
            own.extend(base);
        }
        fn or<T>(own: &mut Option<T>, base: Option<T>) {
            if own.is_none() {
                *own = base;
            }
        }
        fn under<K: Ord, V>(own: &mut BTreeMap<K, V>, base: BTreeMap<K, V>) {
            for (k, v) in base {
                own.entry(k).or_insert(v);
            }
        }
        let c = &mut self.contents;
        append(&mut c.repositories, base.contents.repositories);
        append(&mut c.build_repositories, base.contents.build_repositories);
        append(
            &mut c.runtime_repositories,
            base.contents.runtime_repositories,
        );
        append(&mut c.keyring, base.contents.keyring);
        append(&mut c.packages, base.contents.packages);
        or(&mut c.baseimage, base.contents.baseimage);
        if self.entrypoint == Entrypoint::default() {
            self.entrypoint = base.entrypoint;
        }
        or(&mut self.cmd, base.cmd);
        or(&mut self.stop_signal, base.stop_signal);
        or(&mut self.work_dir, base.work_dir);
        or(&mut self.accounts.run_as, base.accounts.run_as);
        append(&mut self.accounts.users, base.accounts.users);
        append(&mut self.accounts.groups, base.accounts.groups);
        if self.archs.is_empty() {
            self.archs = base.archs;
        }
        under(&mut self.environment, base.environment);
        append(&mut self.paths, base.paths);
        or(&mut self.os_release, base.os_release);
        or(&mut self.vcs_url, base.vcs_url);
        under(&mut self.annotations, base.annotations);
        append(&mut self.volumes, base.volumes);
        or(&mut self.layering, base.layering);
        or(&mut self.certificates, base.certificates);
    }
}

/// How deep `include` may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    /// A realistic apko image file, with every part compose reads.
    const IMAGE: &str = r#"# A static base with a shell for debugging.
contents:
  repositories:
    - https://packages.example.org/distroless
    - '@local ./packages'
  keyring:
    - https://packages.example.org/distroless/signing.rsa.pub
    - ./keys/local.rsa.pub
  packages:
    - ca-certificates-bundle
    - busybox>1.36
    - tzdata@local
    - '!apk-tools'

accounts:
  groups:
    - groupname: nonroot
      gid: 65532
      members: [nonroot]
  users:
    - username: nonroot
      uid: 65532
      gid: 65532
      shell: /bin/sh
      homedir: /home/nonroot
  run-as: nonroot

entrypoint:
  command: /usr/bin/app --listen :8080
cmd: --help

environment:
  TZ: UTC
  DEBUG: false
  WORKERS: 4

paths:
  - path: /data
    type: directory
    uid: 65532
    gid: 65532
    permissions: 0o755
    recursive: true
  - path: /usr/bin/sh
    type: symlink
    source: /bin/busybox
  - path: /etc/app.conf
    type: permissions
    uid: 0
    gid: 65532
    permissions: 0640

archs: [amd64, arm64, arm/v7, s390x, ppc64le]

annotations:
  org.opencontainers.image.source: https://git.example.org/images
  org.opencontainers.image.version: 1.10

volumes: [/data]
work-dir: /home/nonroot
stop-signal: SIGTERM
"#;

    fn parse(text: &str) -> Result<ImageConfiguration, YamlError> {
        ImageConfiguration::parse(text, Path::new("image.yaml"))
    }

    #[test]
    fn apko_image_file_reads_every_field() {
        let image = parse(IMAGE).unwrap();
        let c = &image.contents;
        assert_eq!(
            c.repositories,
            [
                "https://packages.example.org/distroless",
                "@local ./packages"
            ]
        );
        assert_eq!(
            c.keyring,
            [
                "https://packages.example.org/distroless/signing.rsa.pub",
                "./keys/local.rsa.pub"
            ]
        );
        assert_eq!(
            c.packages,
            [
                "ca-certificates-bundle",
                "busybox>1.36",
                "tzdata@local",
                "!apk-tools"
            ]
        );
        assert!(c.build_repositories.is_empty() && c.baseimage.is_none());

        let a = &image.accounts;
        assert_eq!(a.run_as.as_deref(), Some("nonroot"));
        assert_eq!(
            a.groups,
            [Group {
                groupname: "nonroot".into(),
                gid: 65532,
                members: vec!["nonroot".into()],
            }]
        );
        assert_eq!(
            a.users,
            [User {
                username: "nonroot".into(),
                uid: 65532,
                gid: Some(65532),
                shell: Some("/bin/sh".into()),
                homedir: Some("/home/nonroot".into()),
            }]
        );

        assert_eq!(
            image.entrypoint.command.as_deref(),
            Some("/usr/bin/app --listen :8080")
        );
        assert_eq!(image.entrypoint.kind, None);
        assert_eq!(image.cmd.as_deref(), Some("--help"));

        // Scalars keep their text: no `false` -> bool, `4` -> int on the way.
        let env: Vec<_> = image
            .environment
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("DEBUG", "false"), ("TZ", "UTC"), ("WORKERS", "4")]);

        assert_eq!(
            image.paths,
            [
                PathMutation {
                    path: "/data".into(),
                    kind: "directory".into(),
                    uid: 65532,
                    gid: 65532,
                    permissions: Some(0o755),
                    source: None,
                    recursive: true,
                },
                PathMutation {
                    path: "/usr/bin/sh".into(),
                    kind: "symlink".into(),
                    source: Some("/bin/busybox".into()),
                    ..PathMutation::default()
                },
                PathMutation {
                    path: "/etc/app.conf".into(),
                    kind: "permissions".into(),
                    uid: 0,
                    gid: 65532,
                    // Go reads a leading 0 as octal.
                    permissions: Some(0o640),
                    ..PathMutation::default()
                },
            ]
        );

        assert_eq!(
            image.archs,
            ["amd64", "arm64", "arm/v7", "s390x", "ppc64le"]
        );
        assert_eq!(
            image.annotations["org.opencontainers.image.source"],
            "https://git.example.org/images"
        );
        assert_eq!(
            image.annotations["org.opencontainers.image.version"],
            "1.10"
        );
        assert_eq!(image.volumes, ["/data"]);
        assert_eq!(image.work_dir.as_deref(), Some("/home/nonroot"));
        assert_eq!(image.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(image.validate(), []);
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let err =
            parse("contents:\n  packages: [busybox]\nentrypoint:\n  comand: sh\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("image.yaml:4:3: entrypoint: unknown field `comand`"),
            "{msg}"
        );
        assert_eq!(err.location(), Some((4, 3)));
        assert_eq!(err.file(), Path::new("image.yaml"));

        let msg = parse("contents: {}\nwork_dir: /\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("image.yaml:2:1: unknown field `work_dir`, expected one of"),
            "{msg}"
        );
    }

    #[test]
    fn load_names_the_file_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.yaml");
        std::fs::write(&path, IMAGE).unwrap();
        let image = ImageConfiguration::load(&path).unwrap();
        assert_eq!(image, parse(IMAGE).unwrap());

        let missing = dir.path().join("missing.yaml");
        let err = ImageConfiguration::load(&missing).unwrap_err();
        assert!(matches!(err, YamlError::Io { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&missing.display().to_string()));
    }

    #[test]
    fn merge_keys_and_null_sections_read_like_apko() {
        let image = parse("x-users: &nonroot {username: nonroot, uid: 65532}\n");
        // A key apko does not know is an error even when it only holds an anchor.
        assert!(image.is_err());
        let image = parse(
            "contents:\naccounts:\n  users:\n    - &u {username: a, uid: 1}\n    \
             - {<<: *u, username: b}\n",
        )
        .unwrap();
        assert_eq!(image.contents, Contents::default());
        assert_eq!(image.accounts.users[1].username, "b");
        assert_eq!(image.accounts.users[1].uid, 1);
    }
}

#[cfg(test)]
mod include_tests {
    use super::*;

    #[test]
    fn include_merges_the_base_underneath() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            "contents:\n  repositories: [base-repo]\n  packages: [base-files]\nwork-dir: /base\nenvironment:\n  A: base\n  B: base\narchs: [x86_64]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("image.yaml"),
            "include: base.yaml\ncontents:\n  packages: [hello]\nenvironment:\n  A: image\n",
        )
        .unwrap();
        let c = ImageConfiguration::load(dir.path().join("image.yaml")).unwrap();
        assert_eq!(c.contents.packages, ["hello", "base-files"]);
        assert_eq!(c.contents.repositories, ["base-repo"]);
        assert_eq!(c.work_dir.as_deref(), Some("/base"));
        assert_eq!(c.environment["A"], "image");
        assert_eq!(c.environment["B"], "base");
        assert_eq!(c.archs, ["x86_64"]);
        assert_eq!(c.include, None);
    }

    #[test]
    fn include_cycles_are_an_error_naming_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "include: b.yaml\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "include: a.yaml\n").unwrap();
        let err = ImageConfiguration::load(dir.path().join("a.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cycle") && err.contains("a.yaml") && err.contains("b.yaml"),
            "{err}"
        );
    }
}

//! apko's image configuration schema (`pkg/build/types`), field for field, with the same
//! YAML keys.
//!
//! Every struct denies unknown fields, as apko's decoder does with `KnownFields(true)`.
//! Scalars are read the way yaml.v3 reads them into Go strings (see [`crate::de`]):
//! `cmd: 1.10` is the text `1.10`, and a null leaves a field at its default.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::de;

/// A whole apko image file (`pkg/build/types.ImageConfiguration`). melange embeds the
/// same type as a recipe's `environment:`, of which a build uses `contents`, `accounts`
/// and `environment`; the rest is accepted there as apko accepts it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageConfiguration {
    #[serde(default, deserialize_with = "de::nullable")]
    pub contents: Contents,
    #[serde(default, deserialize_with = "de::nullable")]
    pub entrypoint: Entrypoint,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub cmd: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub stop_signal: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub work_dir: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub accounts: Accounts,
    /// apko architectures (apk or OCI names).
    #[serde(default, deserialize_with = "de::text_list")]
    pub archs: Vec<String>,
    /// Environment variables of the image (or of a melange build); scalar values are
    /// kept as text.
    #[serde(default, deserialize_with = "de::text_map")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub paths: Vec<PathMutation>,
    /// Older apko only.
    #[serde(default, deserialize_with = "de::nullable")]
    pub os_release: Option<OsRelease>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub vcs_url: Option<String>,
    #[serde(default, deserialize_with = "de::text_map")]
    pub annotations: BTreeMap<String, String>,
    /// Deprecated in apko: a file to deep-merge in.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub include: Option<String>,
    #[serde(default, deserialize_with = "de::text_list")]
    pub volumes: Vec<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub layering: Option<Layering>,
    /// Extra CA certificates (newer apko).
    #[serde(default, deserialize_with = "de::nullable")]
    pub certificates: Option<Certificates>,
}

/// `certificates:` (newer apko).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Certificates {
    /// PEM certificates to add, each with a file name.
    #[serde(default, deserialize_with = "de::nullable")]
    pub additional: Vec<AdditionalCertificate>,
    #[serde(default, deserialize_with = "de::text_list")]
    pub providers: Vec<String>,
}

/// One `certificates.additional:` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdditionalCertificate {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub name: Option<String>,
    /// The PEM text.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub content: Option<String>,
}

/// `contents:`. Note apko's underscores in the `*_repositories` keys.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Contents {
    /// Repositories used to install packages and also written into the result.
    #[serde(default, deserialize_with = "de::text_list")]
    pub repositories: Vec<String>,
    /// Repositories used to install packages only (`build_repositories`).
    #[serde(
        default,
        rename = "build_repositories",
        deserialize_with = "de::text_list"
    )]
    pub build_repositories: Vec<String>,
    /// Repositories written into the result only (`runtime_repositories`).
    #[serde(
        default,
        rename = "runtime_repositories",
        deserialize_with = "de::text_list"
    )]
    pub runtime_repositories: Vec<String>,
    /// Public keys (paths or URLs) that sign the repositories.
    #[serde(default, deserialize_with = "de::text_list")]
    pub keyring: Vec<String>,
    /// apk dependency atoms to install (`go>1.21`, `foo=~4.5`).
    #[serde(default, deserialize_with = "de::text_list")]
    pub packages: Vec<String>,
    /// Experimental in apko.
    #[serde(default, deserialize_with = "de::nullable")]
    pub baseimage: Option<BaseImage>,
}

/// `contents.baseimage:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BaseImage {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub image: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub apkindex: Option<String>,
}

/// `entrypoint:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Entrypoint {
    /// `type:`; apko knows only `service-bundle`.
    #[serde(default, rename = "type", deserialize_with = "de::opt_text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub command: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub shell_fragment: Option<String>,
    #[serde(default, deserialize_with = "de::text_map")]
    pub services: BTreeMap<String, String>,
}

/// `accounts:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Accounts {
    /// A user name or uid.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub run_as: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub users: Vec<User>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub groups: Vec<Group>,
}

/// One account in `accounts.users:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct User {
    #[serde(default, deserialize_with = "de::text")]
    pub username: String,
    #[serde(default, deserialize_with = "de::nullable")]
    pub uid: u32,
    /// The primary group; apko defaults it to the uid.
    #[serde(default, deserialize_with = "de::nullable")]
    pub gid: Option<u32>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub shell: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub homedir: Option<String>,
}

/// One group in `accounts.groups:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Group {
    #[serde(default, deserialize_with = "de::text")]
    pub groupname: String,
    #[serde(default, deserialize_with = "de::nullable")]
    pub gid: u32,
    #[serde(default, deserialize_with = "de::text_list")]
    pub members: Vec<String>,
}

/// One `paths:` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PathMutation {
    #[serde(default, deserialize_with = "de::text")]
    pub path: String,
    /// `type:` `directory`, `empty-file`, `hardlink`, `symlink` or `permissions`.
    #[serde(default, rename = "type", deserialize_with = "de::text")]
    pub kind: String,
    #[serde(default, deserialize_with = "de::nullable")]
    pub uid: u32,
    #[serde(default, deserialize_with = "de::nullable")]
    pub gid: u32,
    /// Mode bits; `0755` is octal, as in Go.
    #[serde(default, deserialize_with = "de::mode")]
    pub permissions: Option<u32>,
    /// The link target, for `hardlink` and `symlink`.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub recursive: bool,
}

/// `os-release:` (older apko).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OsRelease {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub version_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub pretty_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub home_url: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub bug_report_url: Option<String>,
}

/// `layering:` (newer apko).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layering {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strategy: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub budget: i64,
}

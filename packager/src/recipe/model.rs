//! The recipe schema: melange's `pkg/config` types, field for field, with the same YAML
//! keys. `environment` is apko's `ImageConfiguration`, which lives in the `imageconfig`
//! crate (compose reads image files with it) and is re-exported here.
//!
//! Every struct denies unknown fields, as melange's decoder does with `KnownFields(true)`.
//! Scalars are read the way yaml.v3 reads them into Go strings (see [`imageconfig::de`]):
//! `version: 1.10` is the text `1.10`, and a null leaves a field at its default.

use std::collections::BTreeMap;

use serde::Deserialize;

use imageconfig::de;
pub use imageconfig::{
    Accounts, AdditionalCertificate, BaseImage, Certificates, Contents, Entrypoint, Group,
    ImageConfiguration, Layering, OsRelease, PathMutation, User,
};

/// A whole recipe: one melange build file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Recipe {
    /// The main package's metadata.
    pub package: Package,
    /// The build environment (an apko image configuration). The build user and group
    /// and some variables (`HOME=/home/build`, ...) are added at build time.
    #[serde(default, deserialize_with = "de::nullable")]
    pub environment: Environment,
    /// Linux capabilities to add to or drop from the build runner.
    #[serde(default, deserialize_with = "de::nullable")]
    pub capabilities: Capabilities,
    /// The steps that build the main package, run in order.
    #[serde(default, deserialize_with = "de::nullable")]
    pub pipeline: Vec<Step>,
    /// More packages built from the same workspace after the main pipeline.
    #[serde(default, deserialize_with = "de::nullable")]
    pub subpackages: Vec<Subpackage>,
    /// Named key/value tables that subpackages iterate over with `range`.
    #[serde(default, deserialize_with = "de::nullable")]
    pub data: Vec<RangeData>,
    /// How bots keep the package up to date. No effect on the build.
    #[serde(default, deserialize_with = "de::nullable")]
    pub update: Option<Update>,
    /// User variables, substituted as `${{vars.NAME}}`.
    #[serde(default, deserialize_with = "de::text_map")]
    pub vars: BTreeMap<String, String>,
    /// Variables derived from others by a regex replacement.
    #[serde(default, deserialize_with = "de::nullable")]
    pub var_transforms: Vec<VarTransform>,
    /// Build options, enabled by name with `--build-option`.
    #[serde(default, deserialize_with = "de::nullable_values")]
    pub options: BTreeMap<String, BuildOption>,
    /// Tests of the main package (`melange test`).
    #[serde(default, deserialize_with = "de::nullable")]
    pub test: Option<Test>,
    /// At most this many `parallel: true` subpackages build at once (newer melange);
    /// unset or 0 leaves it to melange.
    #[serde(default, deserialize_with = "de::nullable")]
    pub max_parallel_subpackages: u64,
    /// Older melange (early 2023): fixed CVEs by the `VERSION-rEPOCH` that fixed them,
    /// for the security database. No effect on the build.
    #[serde(default, deserialize_with = "de::nullable_values")]
    pub secfixes: BTreeMap<String, Vec<String>>,
    /// Older melange (early 2023): VEX statements by vulnerability id, oldest first.
    /// No effect on the build.
    #[serde(default, deserialize_with = "de::nullable_values")]
    pub advisories: BTreeMap<String, Vec<Advisory>>,
}

/// One statement in the old top-level `advisories:` (melange's `AdvisoryContent`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Advisory {
    /// When the statement was known to be true (an RFC 3339 timestamp).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub timestamp: Option<String>,
    /// A VEX status: `not_affected`, `affected`, `fixed` or `under_investigation`.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub status: Option<String>,
    /// Why the package is `not_affected`.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub justification: Option<String>,
    /// `impact:`: why the vulnerability cannot be exploited.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub impact: Option<String>,
    /// `action:`: what to do about an `affected` package.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub action: Option<String>,
    /// The `VERSION-rEPOCH` that fixed it, for `fixed`.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub fixed_version: Option<String>,
}

/// `package:`, melange's `Package`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Package {
    #[serde(default, deserialize_with = "de::text")]
    pub name: String,
    /// The upstream version, without the `-rN` release: that is [`Package::epoch`].
    /// Kept as written: an unquoted `1.10` stays `1.10`.
    #[serde(default, deserialize_with = "de::text")]
    pub version: String,
    /// The apk release number: the package is `<version>-r<epoch>`.
    #[serde(default, deserialize_with = "de::nullable")]
    pub epoch: u64,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de::text_map")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub url: Option<String>,
    /// The git commit of the recipe; melange defaults it to the recipe repository's HEAD.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub commit: Option<String>,
    /// The only architectures to build for (apk or OCI names); empty means all.
    /// `all` is accepted but deprecated.
    #[serde(default, deserialize_with = "de::text_list")]
    pub target_architecture: Vec<String>,
    /// One `license =` line each.
    #[serde(default, deserialize_with = "de::nullable")]
    pub copyright: Vec<Copyright>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub dependencies: Dependencies,
    #[serde(default, deserialize_with = "de::nullable")]
    pub options: Option<PackageOptions>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub scriptlets: Option<Scriptlets>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub checks: Checks,
    /// CPE fields for matching NVD records; not written into the package.
    #[serde(default, deserialize_with = "de::nullable")]
    pub cpe: Cpe,
    /// File capabilities to set (as the `security.capability` xattr) after the build.
    #[serde(default, deserialize_with = "de::nullable")]
    pub setcap: Vec<Capability>,
    /// Build time limit as a Go duration (`30m`, `1h30m`) or integer nanoseconds.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub timeout: Option<String>,
    /// Resources for the build runner.
    #[serde(default, deserialize_with = "de::nullable")]
    pub resources: Option<Resources>,
    /// Resources for the test runner; [`Package::resources`] when unset.
    #[serde(default, deserialize_with = "de::nullable")]
    pub test_resources: Option<Resources>,
}

/// One `copyright:` entry: a simple `license`, or a group of `licenses` joined by
/// `operator` (newer melange).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Copyright {
    /// An SPDX identifier; anything else is written as `LicenseRef-*`.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub license: Option<String>,
    /// Paths the license covers, typically `*`.
    #[serde(default, deserialize_with = "de::text_list")]
    pub paths: Vec<String>,
    /// The copyright statement.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub attestation: Option<String>,
    /// Path, in the workspace, to the text of a custom license.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub license_path: Option<String>,
    /// Overrides license detection for the license check.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub detection_override: Option<String>,
    /// `AND` or `OR`, joining [`Copyright::licenses`].
    #[serde(default, deserialize_with = "de::opt_text")]
    pub operator: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub licenses: Vec<Copyright>,
}

/// `dependencies:` of a package or subpackage. All entries may use `${{...}}`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dependencies {
    /// apk dependency atoms, written as `depend =` (merged with the automatic ones).
    #[serde(default, deserialize_with = "de::text_list")]
    pub runtime: Vec<String>,
    /// `name[=version]` provides, written as `provides =`.
    #[serde(default, deserialize_with = "de::text_list")]
    pub provides: Vec<String>,
    /// Packages whose files this one may overwrite.
    #[serde(default, deserialize_with = "de::text_list")]
    pub replaces: Vec<String>,
    /// An integer, as text: breaks ties between providers of one name.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub provider_priority: Option<String>,
    /// An integer, as text: breaks ties between packages that replace each other.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub replaces_priority: Option<String>,
}

/// `options:` of a package: filters on the automatically found dependencies.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageOptions {
    /// A virtual package: provides nothing automatically.
    #[serde(default, deserialize_with = "de::nullable")]
    pub no_provides: bool,
    /// Self-contained: depends on nothing automatically.
    #[serde(default, deserialize_with = "de::nullable")]
    pub no_depends: bool,
    /// Provides no `cmd:` names.
    #[serde(default, deserialize_with = "de::nullable")]
    pub no_commands: bool,
    /// No `so-ver:` dependencies on shared libraries.
    #[serde(default, deserialize_with = "de::nullable")]
    pub no_versioned_shlib_deps: bool,
}

/// `scriptlets:` written into the control archive (`.pre-install`, ...). Each script
/// needs its own shebang line.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scriptlets {
    #[serde(default, deserialize_with = "de::nullable")]
    pub trigger: Option<Trigger>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub pre_install: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub post_install: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub pre_deinstall: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub post_deinstall: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub pre_upgrade: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub post_upgrade: Option<String>,
}

/// An apk trigger: `script` runs when something changes under one of `paths`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Trigger {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub script: Option<String>,
    /// Directory globs, written as `triggers =` in `.PKGINFO`.
    #[serde(default, deserialize_with = "de::text_list")]
    pub paths: Vec<String>,
}

/// `checks:`: the post-build linters.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Checks {
    /// Linters to turn off for this package.
    #[serde(default, deserialize_with = "de::text_list")]
    pub disabled: Vec<String>,
}

/// `cpe:`. Note the underscores in some keys: they are melange's.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Cpe {
    /// Only `a` (application) is allowed.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub part: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub vendor: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub product: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub edition: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub language: Option<String>,
    #[serde(default, rename = "sw_edition", deserialize_with = "de::opt_text")]
    pub sw_edition: Option<String>,
    #[serde(default, rename = "target_sw", deserialize_with = "de::opt_text")]
    pub target_sw: Option<String>,
    #[serde(default, rename = "target_hw", deserialize_with = "de::opt_text")]
    pub target_hw: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub other: Option<String>,
}

/// One `setcap:` entry: file capabilities for `path`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capability {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub path: Option<String>,
    /// Comma-separated capability names -> flags (`e`, `p`, `i`), e.g.
    /// `cap_net_bind_service: "+ep"`.
    #[serde(default, deserialize_with = "de::text_map")]
    pub add: BTreeMap<String, String>,
    /// Why the capability is needed; required.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub reason: Option<String>,
}

/// Runner resources (`resources:`, `test-resources:`), as text (`4`, `16Gi`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Resources {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub cpu: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub cpumodel: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub memory: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub disk: Option<String>,
}

/// One pipeline step (melange's `Pipeline`). A named pipeline file (`uses: NAME` finds
/// `NAME.yaml`) has this same shape; see [`PipelineDefinition`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Step {
    /// A label for logs.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub name: Option<String>,
    /// Run the named pipeline (`fetch`, `autoconf/make`, ...) with [`Step::with`].
    #[serde(default, deserialize_with = "de::opt_text")]
    pub uses: Option<String>,
    /// Inputs of the `uses` pipeline. YAML booleans and numbers are kept as text.
    #[serde(default, deserialize_with = "de::text_map")]
    pub with: BTreeMap<String, String>,
    /// A shell script, run with `/bin/sh -c` in [`Step::working_directory`].
    #[serde(default, deserialize_with = "de::opt_text")]
    pub runs: Option<String>,
    /// Child steps. They inherit `working-directory`, `environment` and resolved `with`.
    #[serde(default, deserialize_with = "de::nullable")]
    pub pipeline: Vec<Step>,
    /// Declared inputs (in pipeline definitions), read as `${{inputs.NAME}}`.
    #[serde(default, deserialize_with = "de::nullable_values")]
    pub inputs: BTreeMap<String, Input>,
    /// Packages the step needs in the build environment (added at compile time).
    #[serde(default, deserialize_with = "de::nullable")]
    pub needs: Option<Needs>,
    /// A label to stop or continue a build at (`--breakpoint-label`).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub label: Option<String>,
    /// `if:`: run only when this condition holds, e.g.
    /// `${{build.arch}} == 'x86_64' && ${{vars.x}} != ''`.
    #[serde(default, rename = "if", deserialize_with = "de::opt_text")]
    pub if_condition: Option<String>,
    /// `if-arch:` (newer melange): run only when building for this architecture (apk or
    /// OCI name). An unknown name simply never matches.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub if_arch: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub assertions: Option<Assertions>,
    /// Where the step runs; relative paths are under `/home/build` (the default).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub working_directory: Option<String>,
    /// Extra environment variables for this step and its children.
    #[serde(default, deserialize_with = "de::text_map")]
    pub environment: BTreeMap<String, String>,
    /// Run the step again when it fails (newer melange).
    #[serde(default, deserialize_with = "de::nullable")]
    pub retry: Option<Retry>,
}

/// `retry:` of a step: how often, and how long to wait in between.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retry {
    /// Runs in all, at least 1; unset or 0 means 1.
    #[serde(default, deserialize_with = "de::nullable")]
    pub attempts: i64,
    /// `constant`, `linear` or `exponential` (the default).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub backoff: Option<String>,
    /// A Go duration (`1s`, the default).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub initial_delay: Option<String>,
    /// A Go duration (`60s`, the default).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub max_delay: Option<String>,
}

/// A named pipeline file, as found in `--pipeline-dir` or melange's built-ins
/// (`name`, `needs`, `inputs`, then `pipeline` or `runs`): the same shape as a step.
pub type PipelineDefinition = Step;

/// One declared input of a named pipeline.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Input {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub description: Option<String>,
    /// The value when the caller gives none; may itself use `${{...}}` of the caller.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub default: Option<String>,
    /// The caller must give a value.
    #[serde(default, deserialize_with = "de::nullable")]
    pub required: bool,
}

/// `needs:` of a step.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Needs {
    /// apk dependency atoms added to the build (or test) environment.
    #[serde(default, deserialize_with = "de::text_list")]
    pub packages: Vec<String>,
    /// Environment variables the step hands up to the pipeline that runs it (newer
    /// melange).
    #[serde(default, deserialize_with = "de::text_map")]
    pub environment: BTreeMap<String, String>,
}

/// `assertions:` of a step.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Assertions {
    /// How many child steps must succeed.
    #[serde(default, deserialize_with = "de::nullable")]
    pub required_steps: i64,
}

/// One `subpackages:` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Subpackage {
    /// The package name; with `range`, usually uses `${{range.key}}`.
    #[serde(default, deserialize_with = "de::text")]
    pub name: String,
    /// Build this subpackage only when the condition holds.
    #[serde(default, rename = "if", deserialize_with = "de::opt_text")]
    pub if_condition: Option<String>,
    /// The name of a `data:` entry: one subpackage per item, in sorted key order, with
    /// `${{range.key}}` and `${{range.value}}` substituted.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub range: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub url: Option<String>,
    /// Defaults to the main package's commit.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub commit: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub dependencies: Dependencies,
    #[serde(default, deserialize_with = "de::nullable")]
    pub options: Option<PackageOptions>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub scriptlets: Option<Scriptlets>,
    /// Steps that move files into `${{targets.contextdir}}`; they run after the main
    /// pipeline, in the same workspace.
    #[serde(default, deserialize_with = "de::nullable")]
    pub pipeline: Vec<Step>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub checks: Checks,
    #[serde(default, deserialize_with = "de::nullable")]
    pub test: Option<Test>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub setcap: Vec<Capability>,
    #[serde(default, deserialize_with = "de::text_map")]
    pub annotations: BTreeMap<String, String>,
    /// Licenses of this subpackage when they differ from the main package's.
    #[serde(default, deserialize_with = "de::nullable")]
    pub copyright: Vec<Copyright>,
    /// May build at the same time as the other `parallel` subpackages next to it
    /// (newer melange).
    #[serde(default, deserialize_with = "de::nullable")]
    pub parallel: bool,
}

/// `test:` of a package or subpackage.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Test {
    /// Extra environment; the package under test and its runtime dependencies and the
    /// steps' `needs` are added automatically.
    #[serde(default, deserialize_with = "de::nullable")]
    pub environment: Environment,
    #[serde(default, deserialize_with = "de::nullable")]
    pub pipeline: Vec<Step>,
}

/// One `data:` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RangeData {
    #[serde(default, deserialize_with = "de::text")]
    pub name: String,
    #[serde(default, deserialize_with = "de::text_map")]
    pub items: BTreeMap<String, String>,
}

/// One `var-transforms:` entry: `vars.<to>` = `from` with every match of `match`
/// replaced by `replace`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VarTransform {
    /// The input text, usually a substitution such as `${{package.version}}`.
    #[serde(default, deserialize_with = "de::text")]
    pub from: String,
    /// `match:`, a Go (RE2) regular expression.
    #[serde(default, rename = "match", deserialize_with = "de::text")]
    pub pattern: String,
    /// The replacement, with `$1` / `${1}` group references.
    #[serde(default, deserialize_with = "de::text")]
    pub replace: String,
    /// The name of the new variable (without `vars.`).
    #[serde(default, deserialize_with = "de::text")]
    pub to: String,
}

/// One build option (`options: NAME: ...`), enabled with `--build-option NAME`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildOption {
    /// Overrides of `vars`.
    #[serde(default, deserialize_with = "de::text_map")]
    pub vars: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub environment: EnvironmentOption,
}

/// `environment:` of a build option.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvironmentOption {
    #[serde(default, deserialize_with = "de::nullable")]
    pub contents: ContentsOption,
}

/// `environment.contents:` of a build option.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContentsOption {
    #[serde(default, deserialize_with = "de::nullable")]
    pub packages: ListOption,
}

/// Additions to and removals from a list.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListOption {
    #[serde(default, deserialize_with = "de::text_list")]
    pub add: Vec<String>,
    #[serde(default, deserialize_with = "de::text_list")]
    pub remove: Vec<String>,
}

/// Top-level `capabilities:`: Linux capabilities of the build runner.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    #[serde(default, deserialize_with = "de::text_list")]
    pub add: Vec<String>,
    #[serde(default, deserialize_with = "de::text_list")]
    pub drop: Vec<String>,
}

/// `environment:` (and `test.environment:`): apko's image configuration, as melange
/// embeds it.
pub type Environment = ImageConfiguration;

/// `update:`: read by update bots only; it has no effect on the build.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Update {
    #[serde(default, deserialize_with = "de::nullable")]
    pub enabled: bool,
    /// Updates need a person (special version numbers).
    #[serde(default, deserialize_with = "de::nullable")]
    pub manual: bool,
    /// Merge automated pull requests in order instead of superseding them.
    #[serde(default, deserialize_with = "de::nullable")]
    pub require_sequential: bool,
    /// An update needs an epoch bump of the packages that depend on this one.
    #[serde(default, deserialize_with = "de::nullable")]
    pub shared: bool,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub version_separator: Option<String>,
    /// Upstream versions to ignore.
    #[serde(default, deserialize_with = "de::text_list")]
    pub ignore_regex_patterns: Vec<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub release_monitor: Option<ReleaseMonitor>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub github: Option<GitHubMonitor>,
    /// Tags of the first `git-checkout` repository.
    #[serde(default, deserialize_with = "de::nullable")]
    pub git: Option<GitMonitor>,
    /// Tags of an OCI image (newer melange calls this `crane`).
    #[serde(default, deserialize_with = "de::nullable")]
    pub crane: Option<TagMonitor>,
    /// Tags of an OCI image.
    #[serde(default, deserialize_with = "de::nullable")]
    pub oci: Option<TagMonitor>,
    /// Upstream-to-apk version rewrites.
    #[serde(default, deserialize_with = "de::nullable")]
    pub version_transform: Vec<VersionTransform>,
    /// Required when `enabled` is false: why.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub exclude_reason: Option<String>,
    #[serde(default, deserialize_with = "de::nullable")]
    pub schedule: Option<Schedule>,
    /// Keep pre-release tags instead of filtering them out.
    #[serde(default, deserialize_with = "de::nullable")]
    pub enable_prerelease_tags: bool,
    /// Bot data whose shape melange does not fix; kept as raw YAML.
    #[serde(default, rename = "version_data")]
    pub version_data: Option<serde_norway::Value>,
}

/// `update.release-monitor:` (release-monitoring.org).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReleaseMonitor {
    /// The project's numeric id.
    #[serde(default, deserialize_with = "de::nullable")]
    pub identifier: u64,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_prefix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_suffix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub version_filter_contains: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub version_filter_prefix: Option<String>,
}

/// `update.github:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GitHubMonitor {
    /// `org/repo`.
    #[serde(default, deserialize_with = "de::text")]
    pub identifier: String,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_prefix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_suffix: Option<String>,
    /// Deprecated: [`GitHubMonitor::tag_filter_prefix`].
    #[serde(default, deserialize_with = "de::opt_text")]
    pub tag_filter: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub tag_filter_prefix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub tag_filter_contains: Option<String>,
    /// Use tags rather than GitHub releases.
    #[serde(default, deserialize_with = "de::nullable")]
    pub use_tag: bool,
}

/// `update.git:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GitMonitor {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_prefix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_suffix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub tag_filter_prefix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub tag_filter_contains: Option<String>,
}

/// `update.crane:` / `update.oci:`: tags of an image.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TagMonitor {
    /// The image reference, e.g. `cgr.dev/chainguard/node`.
    #[serde(default, deserialize_with = "de::text")]
    pub identifier: String,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_prefix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub strip_suffix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub tag_filter_prefix: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub tag_filter_contains: Option<String>,
}

/// One `update.version-transform:` rewrite.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VersionTransform {
    /// `match:`, a regular expression.
    #[serde(default, rename = "match", deserialize_with = "de::text")]
    pub pattern: String,
    #[serde(default, deserialize_with = "de::text")]
    pub replace: String,
}

/// `update.schedule:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Schedule {
    /// `daily`, `weekly` or `monthly`.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub period: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub reason: Option<String>,
}

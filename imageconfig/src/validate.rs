//! Checks of a parsed image configuration that the schema alone cannot make: what apko
//! rejects after parsing, or what would certainly break the solve. Each problem names
//! the field path where it is.

use std::fmt;

use crate::ImageConfiguration;

/// One thing wrong with a configuration (or a recipe): where (`contents.packages[2]`)
/// and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field path, e.g. `contents.packages[0]` or `archs[1]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl ImageConfiguration {
    /// Every problem found, in field order; empty when the configuration is fine.
    pub fn validate(&self) -> Vec<Problem> {
        self.validate_with(|_| false)
    }

    /// [`ImageConfiguration::validate`], skipping the values for which `deferred` holds:
    /// values known only later, such as those that still hold one of melange's
    /// `${{...}}` substitutions in a recipe's `environment:`.
    pub fn validate_with(&self, deferred: impl Fn(&str) -> bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, atom) in self.contents.packages.iter().enumerate() {
            if deferred(atom) {
                continue;
            }
            if let Err(e) = atom.parse::<apk::Dependency>() {
                problems.push(Problem {
                    field: format!("contents.packages[{i}]"),
                    message: e.to_string(),
                });
            }
        }
        for (i, arch) in self.archs.iter().enumerate() {
            if deferred(arch) {
                continue;
            }
            if let Err(message) = check_arch(arch) {
                problems.push(Problem {
                    field: format!("archs[{i}]"),
                    message,
                });
            }
        }
        problems
    }
}

/// Architecture names apko's `ParseArchitecture` knows besides ours (`apk::Arch`):
/// apko, and melange, skip an architecture that matches none, so anything else is a typo.
const OTHER_APKO_ARCHS: &[&str] = &[
    "x86",
    "386",
    "armhf",
    "arm/v6",
    "loong64",
    "loongarch64",
    "riscv64",
];

/// Checks an architecture name (apk or OCI spelling, or `all`) as apko reads it; the
/// error is the message for a [`Problem`].
pub fn check_arch(name: &str) -> Result<(), String> {
    if name == "all" || name.parse::<apk::Arch>().is_ok() || OTHER_APKO_ARCHS.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "unknown architecture {name:?}: expected all, or x86_64, aarch64, armv7, s390x, \
         ppc64le, x86, armhf, riscv64, loongarch64 (or their OCI names)"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        ImageConfiguration::parse(yaml, Path::new("image.yaml"))
            .unwrap()
            .validate()
            .iter()
            .map(Problem::to_string)
            .collect()
    }

    #[test]
    fn package_atoms_must_parse() {
        let p = problems("contents:\n  packages: [busybox, 'foo>=', '!bar', 'baz@edge']\n");
        assert_eq!(
            p,
            ["contents.packages[1]: invalid dependency \"foo>=\": missing version after operator \">=\""]
        );
    }

    #[test]
    fn archs_are_apk_or_oci_names() {
        let p = problems("archs: [x86_64, arm64, arm/v7, 386, all, sparc]\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("archs[5]: unknown architecture \"sparc\": expected all"),
            "{p:?}"
        );
    }

    #[test]
    fn deferred_values_are_skipped() {
        let image = ImageConfiguration::parse(
            "contents:\n  packages: ['${{vars.x}} ${{vars.y}}', 'a b']\narchs: ['${{vars.a}}']\n",
            Path::new("image.yaml"),
        )
        .unwrap();
        assert_eq!(image.validate().len(), 3);
        let p = image.validate_with(|v| v.contains("${{"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "contents.packages[1]");
    }
}

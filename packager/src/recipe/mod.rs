//! Recipes: melange-format YAML build files, read into a typed model and checked.
//!
//! [`Recipe::load`] reads a file the way melange does (unknown keys are errors, scalars
//! keep their text) and reports YAML and schema errors as `FILE:LINE:COLUMN: cause`.
//! [`Recipe::validate`] then finds what melange would reject later, or what would
//! certainly break the build, naming each problem's field path.

mod de;
mod lint;
mod model;
mod validate;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use lint::{lint_file, lint_paths, LintOutcome, LintReport};
pub use model::*;
pub use validate::Problem;

/// A recipe or pipeline file that could not be read or does not fit the schema.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
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

impl RecipeError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            RecipeError::Io { file, .. } | RecipeError::Yaml { file, .. } => file,
        }
    }

    /// 1-based line and column of the error in the file, when known.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            RecipeError::Yaml { location, .. } => *location,
            RecipeError::Io { .. } => None,
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
        RecipeError::Yaml {
            file: file.to_owned(),
            location,
            message,
        }
    }
}

/// Reads one YAML document into `T`, after checking that its aliases do not expand it
/// beyond reason.
/// Like melange, only the first document is read, and YAML merge keys (`<<: *anchor`)
/// are applied; errors in a document that had merge keys carry no position.
fn from_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, RecipeError> {
    de::check_expansion(text).map_err(|e| RecipeError::yaml(file, e))?;
    if let Some(merged) = de::apply_merge_keys(text).map_err(|e| RecipeError::yaml(file, e))? {
        return de::first_document(&merged).map_err(|e| {
            let mut err = RecipeError::yaml(file, e);
            if let RecipeError::Yaml { location, .. } = &mut err {
                *location = None;
            }
            err
        });
    }
    de::first_document(text).map_err(|e| RecipeError::yaml(file, e))
}

fn read(path: &Path) -> Result<String, RecipeError> {
    std::fs::read_to_string(path).map_err(|source| RecipeError::Io {
        file: path.to_owned(),
        source,
    })
}

impl Recipe {
    /// Parses recipe text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Recipe, RecipeError> {
        from_yaml(text, file)
    }

    /// Reads and parses the recipe at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Recipe, RecipeError> {
        let path = path.as_ref();
        Recipe::parse(&read(path)?, path)
    }
}

impl Step {
    /// Parses a named pipeline file (`<pipeline-dir>/autoconf/make.yaml`); `file` names
    /// it in errors.
    pub fn parse_definition(text: &str, file: &Path) -> Result<PipelineDefinition, RecipeError> {
        from_yaml(text, file)
    }

    /// Reads and parses the named pipeline file at `path`.
    pub fn load_definition(path: impl AsRef<Path>) -> Result<PipelineDefinition, RecipeError> {
        let path = path.as_ref();
        Step::parse_definition(&read(path)?, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(text, Path::new("r.yaml"))
    }

    #[test]
    fn unquoted_versions_keep_their_text() {
        let r = parse("package:\n  name: a\n  version: 1.10\n").unwrap();
        assert_eq!(r.package.version, "1.10");
        let r = parse("package:\n  name: a\n  version: 2\n").unwrap();
        assert_eq!(r.package.version, "2");
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let err = parse("package:\n  name: a\n  version: 1\npipelin: []\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("r.yaml:4:1: unknown field `pipelin`"),
            "{msg}"
        );
        assert_eq!(err.location(), Some((4, 1)));
    }

    #[test]
    fn nested_unknown_key_names_its_path() {
        let err = parse("package:\n  name: a\n  version: 1\npipeline:\n  - run: make\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("r.yaml:5:5: pipeline[0]: unknown field `run`"),
            "{err}"
        );
    }

    #[test]
    fn step_fields_read_like_melange() {
        let r = parse(
            "package: {name: a, version: 1}\n\
             pipeline:\n\
             - uses: fetch\n  \
               if: ${{build.arch}} == 'x86_64'\n  \
               with: {strip-components: 2, extract: false, opts: }\n",
        )
        .unwrap();
        let step = &r.pipeline[0];
        assert_eq!(step.uses.as_deref(), Some("fetch"));
        assert_eq!(
            step.if_condition.as_deref(),
            Some("${{build.arch}} == 'x86_64'")
        );
        assert_eq!(step.with["strip-components"], "2");
        assert_eq!(step.with["extract"], "false");
        assert_eq!(step.with["opts"], "");
    }

    #[test]
    fn pipeline_definitions_parse() {
        let def = Step::parse_definition(
            "name: Run make\ninputs:\n  dir:\n    description: where\n    default: .\n  \
             jobs:\n    default: 4\n  opts:\nneeds:\n  packages: [make]\npipeline:\n  \
             - runs: make -C ${{inputs.dir}}\n",
            Path::new("make.yaml"),
        )
        .unwrap();
        assert_eq!(def.inputs["dir"].default.as_deref(), Some("."));
        assert_eq!(def.inputs["jobs"].default.as_deref(), Some("4"));
        assert_eq!(def.inputs["opts"], Input::default());
        assert_eq!(def.needs.unwrap().packages, ["make"]);
    }
}

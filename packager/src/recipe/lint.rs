//! `pkgr lint`: parse and validate recipes, one report per file.

use std::path::{Path, PathBuf};

use super::{Problem, Recipe, RecipeError};

/// The lint result for one recipe file.
#[derive(Debug)]
pub struct LintReport {
    pub file: PathBuf,
    pub outcome: LintOutcome,
}

#[derive(Debug)]
pub enum LintOutcome {
    /// Parsed and found no problems.
    Ok,
    /// Parsed, but [`Recipe::validate`] found problems.
    Problems(Vec<Problem>),
    /// Could not be read or parsed.
    Failed(RecipeError),
}

impl LintReport {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, LintOutcome::Ok)
    }

    /// The report as lines for a person: `FILE: OK`, one `FILE: FIELD: CAUSE` per
    /// problem, or the error (`FILE:LINE:COLUMN: CAUSE`).
    pub fn lines(&self) -> Vec<String> {
        let file = self.file.display();
        match &self.outcome {
            LintOutcome::Ok => vec![format!("{file}: OK")],
            LintOutcome::Problems(problems) => {
                problems.iter().map(|p| format!("{file}: {p}")).collect()
            }
            LintOutcome::Failed(e) => vec![e.to_string()],
        }
    }
}

/// Lints one recipe file.
pub fn lint_file(path: &Path) -> LintReport {
    let outcome = match Recipe::load(path) {
        Err(e) => LintOutcome::Failed(e),
        Ok(recipe) => match recipe.validate() {
            problems if problems.is_empty() => LintOutcome::Ok,
            problems => LintOutcome::Problems(problems),
        },
    };
    LintReport {
        file: path.to_owned(),
        outcome,
    }
}

/// Lints each path in order; a directory stands for its `*.yaml` files, sorted by name.
pub fn lint_paths(paths: &[impl AsRef<Path>]) -> Vec<LintReport> {
    let mut reports = Vec::new();
    for path in paths {
        let path = path.as_ref();
        if !path.is_dir() {
            reports.push(lint_file(path));
            continue;
        }
        match yaml_files(path) {
            Ok(files) => reports.extend(files.iter().map(|f| lint_file(f))),
            Err(source) => reports.push(LintReport {
                file: path.to_owned(),
                outcome: LintOutcome::Failed(RecipeError::Io {
                    file: path.to_owned(),
                    source,
                }),
            }),
        }
    }
    reports
}

/// The `*.yaml` files directly in `dir`, sorted; an error if there are none.
fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no *.yaml recipes in this directory",
        ));
    }
    files.sort();
    Ok(files)
}

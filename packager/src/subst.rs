//! `${{...}}` substitution, the `if:` condition language and `var-transforms`, as melange
//! has them (`pkg/cond`, `pkg/util/map_subst.go`, `pkg/config/vars.go`,
//! `NewSubstitutionMap` in `pkg/build/pipeline.go`).
//!
//! Substitution is a single pass, as in melange's `cond.Subst`: an inserted value is never
//! scanned again, so a `${{` inside a value (an input, a range item) stays literal text.
//! Values must therefore be resolved before they go into a [`Scope`]. Melange gets the same
//! effect for `vars` by substituting the whole recipe twice (once at parse time with the
//! package and vars, once at compile time with everything); here [`resolve_vars`] does it
//! once, deterministically. A recipe's scope is built in this order:
//!
//! ```text
//! let pre = base_scope(&ctx, &BTreeMap::new(), &options);
//! resolve_vars(&mut vars, &pre)?;                     // vars may use package.*, other vars
//! apply_var_transforms(&mut vars, &transforms, &pre)?;
//! let mut scope = base_scope(&ctx, &vars, &options);
//! add_subpackage_targets(&mut scope, ctx.workspace, subpackage_names);
//! ```
//!
//! A `uses:` step gets `scope.child()` with each `inputs.<name>` set to its value
//! substituted in the caller's scope; a subpackage gets [`subpackage_scope`].

use std::collections::{BTreeMap, BTreeSet};

use apk::arch::Libc;
use apk::Arch;
use regex::{Captures, Regex};

/// An error from substitution, a condition or a var-transform. The caller adds which
/// recipe field it came from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    #[error("variable `{name}` is not defined")]
    Undefined { name: String },
    #[error("`${{{{` at column {column} is not closed by `}}}}`")]
    Unterminated { column: usize },
    #[error(
        "`${{{{ {name} }}}}` at column {column} is not a variable reference: \
         names are letters, digits, `.`, `-` and `_`"
    )]
    BadName { name: String, column: usize },
    #[error("variables refer to each other in a loop: {chain}")]
    Cycle { chain: String },
    #[error("in condition `{expr}` at column {column}: {message}")]
    Condition {
        expr: String,
        column: usize,
        message: String,
    },
    #[error("`{pattern}` is not a valid regular expression: {message}")]
    BadRegex { pattern: String, message: String },
    #[error("var-transform to `{to}`: {source}")]
    VarTransform {
        to: String,
        #[source]
        source: Box<SubstError>,
    },
}

/// The variables visible at one point of a build: names such as `package.name`,
/// `vars.foo`, `inputs.dir` or `range.key` (without `${{ }}`) and their values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    values: BTreeMap<String, String>,
}

impl Scope {
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines or overrides a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    /// Builder form of [`Scope::set`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A copy to override in (a step's inputs, a subpackage's targets, a range item); the
    /// parent is left as it was.
    pub fn child(&self) -> Scope {
        self.clone()
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn lookup(&self, name: &str) -> Result<String, SubstError> {
        self.get(name)
            .map(str::to_string)
            .ok_or_else(|| SubstError::Undefined {
                name: name.to_string(),
            })
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Scope {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.set(k, v);
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Scope {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut scope = Scope::new();
        scope.extend(iter);
        scope
    }
}

/// Replaces every `${{ name }}` in `text` with its value in `scope`.
///
/// Whitespace inside the braces is allowed; names are letters, digits, `.`, `-` and `_`
/// (melange's `cond.Subst`). An undefined name is an error, as with melange's
/// `MutateStringFromMap`. A `$` that does not start `${{` is plain text. One pass: values
/// are inserted as they are, never substituted again.
pub fn substitute(text: &str, scope: &Scope) -> Result<String, SubstError> {
    substitute_with(text, |name| scope.lookup(name))
}

/// Like [`substitute`], but each value is inserted as a double-quoted condition literal, as
/// melange's `MutateAndQuoteStringFromMap` does for `if:`. The result is the resolved
/// condition that [`eval_condition`] reads back to the same answer; use it to record a
/// compiled `if:`.
pub fn substitute_quoted(text: &str, scope: &Scope) -> Result<String, SubstError> {
    substitute_with(text, |name| scope.lookup(name).map(|v| quote(&v)))
}

fn substitute_with(
    text: &str,
    mut lookup: impl FnMut(&str) -> Result<String, SubstError>,
) -> Result<String, SubstError> {
    if !text.contains("${{") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = text[rest..].find("${{") {
        let start = rest + found;
        out.push_str(&text[rest..start]);
        let (name, end) = parse_reference(text, start).map_err(|e| e.into_error(text))?;
        out.push_str(&lookup(name)?);
        rest = end;
    }
    out.push_str(&text[rest..]);
    Ok(out)
}

/// Why a `${{` at some byte offset is not a reference.
struct RefError {
    at: usize,
    kind: RefErrorKind,
}

enum RefErrorKind {
    Unterminated,
    BadName(String),
}

impl RefError {
    fn into_error(self, text: &str) -> SubstError {
        let column = column(text, self.at);
        match self.kind {
            RefErrorKind::Unterminated => SubstError::Unterminated { column },
            RefErrorKind::BadName(name) => SubstError::BadName { name, column },
        }
    }

    fn message(&self) -> String {
        match &self.kind {
            RefErrorKind::Unterminated => "`${{` is not closed by `}}`".to_string(),
            RefErrorKind::BadName(name) => format!(
                "`{name}` is not a variable name: names are letters, digits, `.`, `-` and `_`"
            ),
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_space(text: &str, mut at: usize) -> usize {
    while at < text.len() && is_space(text.as_bytes()[at]) {
        at += 1;
    }
    at
}

/// Parses the `${{ name }}` that starts at byte `start`; returns the name and the offset
/// just past `}}`.
fn parse_reference(text: &str, start: usize) -> Result<(&str, usize), RefError> {
    let bytes = text.as_bytes();
    let name_start = skip_space(text, start + 3);
    let mut at = name_start;
    while at < bytes.len() && is_name_byte(bytes[at]) {
        at += 1;
    }
    let name = &text[name_start..at];
    let after = skip_space(text, at);
    if text[after..].starts_with("}}") && !name.is_empty() {
        return Ok((name, after + 2));
    }
    // Not closed right here: it never closes (or the next `${{` comes first), or something
    // that is not a name sits inside the braces.
    let tail = &text[name_start..];
    let close = tail.find("}}");
    let reopen = tail.find("${{");
    let kind = match (close, reopen) {
        (Some(c), Some(r)) if r < c => RefErrorKind::Unterminated,
        (Some(c), _) => RefErrorKind::BadName(tail[..c].trim_end().to_string()),
        (None, _) => RefErrorKind::Unterminated,
    };
    Err(RefError { at: start, kind })
}

/// 1-based column (in characters) of byte offset `at`.
fn column(text: &str, at: usize) -> usize {
    text[..at].chars().count() + 1
}

/// A double-quoted condition literal holding `value` exactly.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Evaluates an `if:` condition (melange `pkg/cond/parser.go`):
///
/// ```text
/// expr       := atom (('&&' | '||') atom)*
/// atom       := '(' expr ')' | comparison
/// comparison := value ('==' | '!=') value
/// value      := '…' | "…" | ${{ name }}
/// ```
///
/// As in melange, `&&` and `||` have **equal precedence** and group left to right:
/// `a || b && c` is `(a || b) && c`. Use parentheses to say otherwise.
///
/// String literals take the escapes `\\`, `\'`, `\"`, `\n` and `\t`; any other backslash
/// stays as written. A `${{ name }}` operand is the variable's value, exactly as if
/// melange had inserted it quoted (`MutateAndQuoteStringFromMap`) before parsing. One
/// difference: a `${{ name }}` inside a literal is replaced by the bare value, where
/// melange would insert a quoted string into the literal.
pub fn eval_condition(expr: &str, scope: &Scope) -> Result<bool, SubstError> {
    let mut parser = CondParser {
        expr,
        pos: 0,
        depth: 0,
        scope,
    };
    let result = parser.expr()?;
    parser.skip_space();
    if parser.pos < expr.len() {
        return Err(parser.error(parser.pos, "unexpected text after the condition".into()));
    }
    Ok(result)
}

/// Parentheses deeper than this are an error, not a stack overflow.
const MAX_DEPTH: usize = 64;

struct CondParser<'a> {
    expr: &'a str,
    pos: usize,
    depth: usize,
    scope: &'a Scope,
}

impl<'a> CondParser<'a> {
    fn error(&self, at: usize, message: String) -> SubstError {
        SubstError::Condition {
            expr: self.expr.to_string(),
            column: column(self.expr, at),
            message,
        }
    }

    fn skip_space(&mut self) {
        self.pos = skip_space(self.expr, self.pos);
    }

    fn rest(&self) -> &'a str {
        &self.expr[self.pos..]
    }

    /// Consumes `token` (after whitespace) if it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// What is at the current position, for messages.
    fn found(&self) -> String {
        match self.rest().chars().next() {
            None => "the end of the condition".to_string(),
            Some(c) => format!("`{c}`"),
        }
    }

    fn expr(&mut self) -> Result<bool, SubstError> {
        let mut result = self.atom()?;
        loop {
            // Both sides are always evaluated, so an undefined variable anywhere is an error.
            if self.eat("&&") {
                let rhs = self.atom()?;
                result = result && rhs;
            } else if self.eat("||") {
                let rhs = self.atom()?;
                result = result || rhs;
            } else {
                return Ok(result);
            }
        }
    }

    fn atom(&mut self) -> Result<bool, SubstError> {
        self.skip_space();
        let open = self.pos;
        if !self.eat("(") {
            return self.comparison();
        }
        if self.depth == MAX_DEPTH {
            return Err(self.error(open, "parentheses are nested too deeply".into()));
        }
        self.depth += 1;
        let result = self.expr()?;
        self.depth -= 1;
        if !self.eat(")") {
            let message = format!(
                "expected `)` to close the `(` at column {}, found {}",
                column(self.expr, open),
                self.found()
            );
            return Err(self.error(self.pos, message));
        }
        Ok(result)
    }

    fn comparison(&mut self) -> Result<bool, SubstError> {
        let lhs = self.value()?;
        if self.eat("==") {
            Ok(lhs == self.value()?)
        } else if self.eat("!=") {
            Ok(lhs != self.value()?)
        } else {
            let message = format!("expected `==` or `!=`, found {}", self.found());
            Err(self.error(self.pos, message))
        }
    }

    fn value(&mut self) -> Result<String, SubstError> {
        self.skip_space();
        let start = self.pos;
        let next = self.rest().chars().next();
        match next {
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                self.literal(quote, start)
            }
            Some('$') if self.rest().starts_with("${{") => self.variable(),
            _ => {
                let message = format!(
                    "expected a quoted string or `${{{{ variable }}}}`, found {}",
                    self.found()
                );
                Err(self.error(start, message))
            }
        }
    }

    /// A `${{ name }}` at the current position.
    fn variable(&mut self) -> Result<String, SubstError> {
        let start = self.pos;
        let (name, end) = parse_reference(self.expr, start).map_err(|e| {
            let message = e.message();
            self.error(e.at, message)
        })?;
        let value = self
            .scope
            .get(name)
            .ok_or_else(|| self.error(start, format!("variable `{name}` is not defined")))?;
        self.pos = end;
        Ok(value.to_string())
    }

    /// The rest of a literal opened by `quote` at byte `open`.
    fn literal(&mut self, quote: char, open: usize) -> Result<String, SubstError> {
        let mut out = String::new();
        loop {
            let Some(c) = self.rest().chars().next() else {
                let message = format!("the string opened by {quote} is not closed");
                return Err(self.error(open, message));
            };
            if c == quote {
                self.pos += 1;
                return Ok(out);
            }
            if c == '$' && self.rest().starts_with("${{") {
                out.push_str(&self.variable()?);
                continue;
            }
            self.pos += c.len_utf8();
            if c != '\\' {
                out.push(c);
                continue;
            }
            // Escapes as melange's parser reads them; a backslash at the very end stays.
            match self.rest().chars().next() {
                Some(e @ ('\\' | '\'' | '"')) => out.push(e),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => {
                    out.push('\\');
                    continue;
                }
            }
            self.pos += self.rest().chars().next().map_or(0, char::len_utf8);
        }
    }
}

/// Resolves `${{...}}` in the values of a recipe's `vars`, in place. A value may use the
/// variables of `scope` (`package.*`, `targets.*`, …) and other vars, in any order; a loop
/// is an error. Melange reaches the same values through its two substitution passes.
pub fn resolve_vars(vars: &mut BTreeMap<String, String>, scope: &Scope) -> Result<(), SubstError> {
    let mut done = BTreeMap::new();
    let names: Vec<String> = vars.keys().cloned().collect();
    for name in &names {
        let mut stack = Vec::new();
        resolve_var(name, vars, scope, &mut done, &mut stack)?;
    }
    *vars = done;
    Ok(())
}

fn resolve_var(
    name: &str,
    raw: &BTreeMap<String, String>,
    scope: &Scope,
    done: &mut BTreeMap<String, String>,
    stack: &mut Vec<String>,
) -> Result<String, SubstError> {
    if let Some(value) = done.get(name) {
        return Ok(value.clone());
    }
    if stack.iter().any(|s| s == name) {
        stack.push(name.to_string());
        let chain = stack
            .iter()
            .skip_while(|s| *s != name)
            .map(|s| format!("vars.{s}"))
            .collect::<Vec<_>>()
            .join(" -> ");
        return Err(SubstError::Cycle { chain });
    }
    stack.push(name.to_string());
    let value = substitute_with(&raw[name], |reference| {
        match reference.strip_prefix("vars.") {
            Some(other) if raw.contains_key(other) => resolve_var(other, raw, scope, done, stack),
            _ => scope.lookup(reference),
        }
    })?;
    stack.pop();
    done.insert(name.to_string(), value.clone());
    Ok(value)
}

/// Applies melange `var-transforms` (`PerformVarSubstitutions` in `pkg/config/vars.go`), in
/// order. Each transform is `(from, match, replace, to)`: `from` is substituted in `scope`
/// (where `vars.*` are read from `vars`, including earlier transforms' results), every match
/// of the regular expression `match` is replaced by `replace` with Go's `ReplaceAllString`
/// rules, and the result is stored as `vars[to]`.
///
/// `match` is Go RE2 syntax, which the `regex` crate shares, except that `\d`, `\w`, `\s`
/// and `\b` also match non-ASCII letters and digits here. In `replace`, `$1`, `${1}`,
/// `$name` and `${name}` are groups and `$$` is `$`; a name is the longest run of letters,
/// digits and `_`, so `$1x` is the (missing, hence empty) group `1x`: write `${1}x`.
pub fn apply_var_transforms(
    vars: &mut BTreeMap<String, String>,
    transforms: &[(String, String, String, String)],
    scope: &Scope,
) -> Result<(), SubstError> {
    for (from, pattern, replace, to) in transforms {
        let wrap = |source| SubstError::VarTransform {
            to: to.clone(),
            source: Box::new(source),
        };
        let input = substitute_with(from, |name| match name.strip_prefix("vars.") {
            Some(var) if vars.contains_key(var) => Ok(vars[var].clone()),
            _ => scope.lookup(name),
        })
        .map_err(wrap)?;
        let re = Regex::new(pattern).map_err(|e| {
            wrap(SubstError::BadRegex {
                pattern: pattern.clone(),
                message: e.to_string(),
            })
        })?;
        let output = replace_all(&re, &input, replace);
        vars.insert(to.clone(), output);
    }
    Ok(())
}

/// Go's `Regexp.ReplaceAllString`: every match is replaced by `template` expanded with
/// that match's groups. Empty matches right after a match are skipped by the iterator, as
/// in Go.
fn replace_all(re: &Regex, text: &str, template: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let whole = caps.get(0).expect("group 0 always matches");
        out.push_str(&text[last..whole.start()]);
        expand(&caps, template, &mut out);
        last = whole.end();
    }
    out.push_str(&text[last..]);
    out
}

/// Go's `Regexp.expand`: `$$`, `$name`, `${name}`; anything else after `$` is literal.
fn expand(caps: &Captures, template: &str, out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = group_reference(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(n) => caps.get(n),
            None => caps.name(name),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
}

/// The group name after a `$` (Go's `extract`) and the text after it.
fn group_reference(text: &str) -> Option<(&str, &str)> {
    let (braced, body) = match text.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let len = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        Some((name, after.strip_prefix('}')?))
    } else {
        Some((name, after))
    }
}

/// A group number as Go reads one: ASCII digits without a leading zero. Anything else is
/// a group name (so `$01` is the group named `01`, where the `regex` crate would read 1).
fn group_number(name: &str) -> Option<usize> {
    let digits = name.bytes().all(|b| b.is_ascii_digit());
    if !digits || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse().ok()
}

/// What a build is: the inputs of [`base_scope`].
#[derive(Clone, Copy, Debug)]
pub struct BuildContext<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub epoch: u64,
    pub description: &'a str,
    /// The architecture the package is built for.
    pub arch: Arch,
    /// The workspace as steps see it: `/home/build` in the sandbox.
    pub workspace: &'a str,
    /// Set while running a subpackage's pipeline.
    pub subpackage: Option<&'a str>,
}

/// Where packages are staged, under the workspace (melange's `targets.outdir`).
const OUT_DIR: &str = "melange-out";

/// The C library of the toolchains that build: pkgr compiles with the build host's glibc
/// toolchains (Debian cross compilers), where melange probes the guest for `libc.so.6`.
const HOST_LIBC: Libc = Libc::Glibc;

/// The workspace without trailing slashes (`/` stays `/`).
fn normalize(workspace: &str) -> &str {
    match workspace.trim_end_matches('/') {
        "" if workspace.starts_with('/') => "/",
        trimmed => trimmed,
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn out_dir(workspace: &str) -> String {
    join(normalize(workspace), OUT_DIR)
}

fn package_dir(workspace: &str, package: &str) -> String {
    join(&out_dir(workspace), package)
}

/// The variables melange defines for a build (`NewSubstitutionMap`), plus `vars.<k>` (taken
/// as they are: resolve them first with [`resolve_vars`] and [`apply_var_transforms`]) and
/// `options.<name>.enabled` (`"true"`/`"false"`).
///
/// Architecture variables follow melange, where the build runs on the target: `build.arch`
/// is the apk name, and `host.triplet.*` and `cross.triplet.*` all name the **target**
/// (`host` in the GNU sense: the machine the package runs on); `host.triplet.*` uses
/// glibc. Two spellings differ from melange, on purpose: GNU triplets are the Debian cross
/// compilers' names (`aarch64-linux-gnu`, `arm-linux-gnueabihf`, where apko says
/// `aarch64-unknown-linux-gnu`, `armv7l-unknown-linux-gnueabihf`) so that
/// `--host=${{host.triplet.gnu}}` finds `aarch64-linux-gnu-gcc`; and `build.goarch` is a
/// valid `GOARCH` (`arm`, where melange gives `arm/v7`). Rust triplets match melange.
///
/// `targets.subpkgdir` and `subpkg.name` exist only inside a subpackage, as in melange.
pub fn base_scope(
    ctx: &BuildContext,
    vars: &BTreeMap<String, String>,
    option_flags: &BTreeMap<String, bool>,
) -> Scope {
    let ws = normalize(ctx.workspace);
    let arch = ctx.arch;
    let mut scope = Scope::new();
    scope.extend([
        ("package.name", ctx.name.to_string()),
        ("package.version", ctx.version.to_string()),
        ("package.epoch", ctx.epoch.to_string()),
        (
            "package.full-version",
            format!("{}-r{}", ctx.version, ctx.epoch),
        ),
        ("package.description", ctx.description.to_string()),
        ("package.srcdir", ws.to_string()),
        ("targets.outdir", out_dir(ws)),
        ("targets.destdir", package_dir(ws, ctx.name)),
        ("targets.contextdir", package_dir(ws, ctx.name)),
        ("context.name", ctx.name.to_string()),
        ("build.arch", arch.apk().to_string()),
        ("build.goarch", arch.goarch().to_string()),
        ("host.triplet.gnu", arch.gnu_triplet(HOST_LIBC)),
        ("host.triplet.rust", arch.rust_triplet(HOST_LIBC)),
        ("cross.triplet.gnu.glibc", arch.gnu_triplet(Libc::Glibc)),
        ("cross.triplet.gnu.musl", arch.gnu_triplet(Libc::Musl)),
        ("cross.triplet.rust.glibc", arch.rust_triplet(Libc::Glibc)),
        ("cross.triplet.rust.musl", arch.rust_triplet(Libc::Musl)),
    ]);
    add_subpackage_targets(&mut scope, ws, [ctx.name]);
    scope.extend(vars.iter().map(|(k, v)| (format!("vars.{k}"), v.as_str())));
    scope.extend(
        option_flags
            .iter()
            .map(|(k, on)| (format!("options.{k}.enabled"), on.to_string())),
    );
    match ctx.subpackage {
        Some(sub) => subpackage_scope(&scope, ws, sub),
        None => scope,
    }
}

/// Adds `targets.package.<name>` (`<ws>/melange-out/<name>`) for each package name.
pub fn add_subpackage_targets<I>(scope: &mut Scope, workspace: &str, names: I)
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    for name in names {
        let name = name.as_ref();
        scope.set(
            format!("targets.package.{name}"),
            package_dir(workspace, name),
        );
    }
}

/// The scope of a subpackage's pipeline (melange's `SubstitutionMap.Subpackage`):
/// `subpkg.name` and `context.name` are the subpackage, and `targets.subpkgdir` and
/// `targets.contextdir` its directory. `targets.destdir` stays the main package's.
pub fn subpackage_scope(base: &Scope, workspace: &str, name: &str) -> Scope {
    let dir = package_dir(workspace, name);
    base.child()
        .with("subpkg.name", name)
        .with("context.name", name)
        .with("targets.subpkgdir", dir.clone())
        .with("targets.contextdir", dir)
}

/// Names of every variable in `text`, in order of appearance, without duplicates. For
/// checks such as "does this step use `inputs.foo`?". Malformed references are skipped.
pub fn referenced_names(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut names = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("${{") {
        let start = rest + found;
        match parse_reference(text, start) {
            Ok((name, end)) => {
                if seen.insert(name) {
                    names.push(name.to_string());
                }
                rest = end;
            }
            Err(_) => rest = start + 3,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(pairs: &[(&str, &str)]) -> Scope {
        pairs.iter().copied().collect()
    }

    fn cond(expr: &str) -> bool {
        let s = scope(&[
            ("build.arch", "aarch64"),
            ("vars.empty", ""),
            ("vars.spaced", "a b  c"),
            ("vars.quoted", r#"it's "x" \ y"#),
            ("options.fips.enabled", "true"),
        ]);
        eval_condition(expr, &s).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn cond_err(expr: &str) -> String {
        let s = scope(&[("build.arch", "x86_64")]);
        eval_condition(expr, &s).unwrap_err().to_string()
    }

    // --- substitution -----------------------------------------------------------------

    #[test]
    fn substitutes_with_and_without_whitespace_in_braces() {
        let s = scope(&[("package.name", "zlib"), ("package.version", "1.3.1")]);
        for text in [
            "${{package.name}}",
            "${{ package.name }}",
            "${{  package.name}}",
            "${{\tpackage.name\n}}",
        ] {
            assert_eq!(substitute(text, &s).unwrap(), "zlib", "{text:?}");
        }
    }

    #[test]
    fn substitutes_several_references_in_one_string() {
        let s = scope(&[("package.name", "zlib"), ("package.version", "1.3.1")]);
        let text = "https://zlib.net/${{package.name}}-${{ package.version }}.tar.gz \
                    # ${{package.name}}";
        assert_eq!(
            substitute(text, &s).unwrap(),
            "https://zlib.net/zlib-1.3.1.tar.gz # zlib"
        );
    }

    #[test]
    fn text_without_references_is_unchanged() {
        let s = Scope::new();
        for text in ["", "plain", "echo $HOME ${HOME} $((1+1)) ${ {x}} $"] {
            assert_eq!(substitute(text, &s).unwrap(), text);
        }
    }

    #[test]
    fn dollar_that_does_not_start_a_reference_is_literal() {
        let s = scope(&[("vars.x", "X")]);
        assert_eq!(
            substitute("$HOME/${x}/$${{vars.x}}/${ {vars.x}}", &s).unwrap(),
            "$HOME/${x}/$X/${ {vars.x}}"
        );
    }

    #[test]
    fn undefined_variable_is_an_error_naming_it() {
        let s = scope(&[("package.name", "zlib")]);
        let err = substitute("make DESTDIR=${{ targets.destdir }}", &s).unwrap_err();
        assert_eq!(
            err,
            SubstError::Undefined {
                name: "targets.destdir".into()
            }
        );
        assert_eq!(err.to_string(), "variable `targets.destdir` is not defined");
    }

    #[test]
    fn unterminated_reference_is_an_error() {
        let s = scope(&[("a", "1"), ("b", "2")]);
        for (text, col) in [
            ("x ${{a", 3),
            ("${{ a }", 1),
            ("${{a} ${{b}}", 1),
            ("${{", 1),
        ] {
            let err = substitute(text, &s).unwrap_err();
            assert_eq!(err, SubstError::Unterminated { column: col }, "{text:?}");
        }
        assert_eq!(
            substitute("ab ${{a", &s).unwrap_err().to_string(),
            "`${{` at column 4 is not closed by `}}`"
        );
    }

    #[test]
    fn bad_names_are_errors() {
        let s = scope(&[("a", "1")]);
        let err = substitute("é ${{ vars.a b }}", &s).unwrap_err();
        assert_eq!(
            err,
            SubstError::BadName {
                name: "vars.a b".into(),
                column: 3
            }
        );
        assert!(
            err.to_string().contains("`${{ vars.a b }}` at column 3"),
            "{err}"
        );
        assert!(matches!(
            substitute("${{ }}", &s),
            Err(SubstError::BadName { name, .. }) if name.is_empty()
        ));
        assert!(matches!(
            substitute("${{{a}}}", &s),
            Err(SubstError::BadName { .. })
        ));
    }

    #[test]
    fn substitution_is_a_single_pass() {
        // melange's cond.Subst does not rescan inserted values.
        let s = scope(&[("inputs.a", "${{inputs.b}}"), ("inputs.b", "B")]);
        assert_eq!(
            substitute("<${{inputs.a}}>", &s).unwrap(),
            "<${{inputs.b}}>"
        );
        // Not even a half reference in a value joins with the text after it.
        let s = scope(&[("x", "${{")]);
        assert_eq!(substitute("${{x}}y}}", &s).unwrap(), "${{y}}");
    }

    #[test]
    fn names_may_use_dashes_underscores_and_digits() {
        let s = scope(&[
            ("vars.mangled-package-version", "1_2"),
            ("inputs.go_package", "go-1.23"),
            ("targets.package.py3.12-foo", "/p"),
        ]);
        assert_eq!(
            substitute(
                "${{vars.mangled-package-version}} ${{inputs.go_package}} \
                 ${{targets.package.py3.12-foo}}",
                &s
            )
            .unwrap(),
            "1_2 go-1.23 /p"
        );
    }

    #[test]
    fn scope_set_get_extend_and_child() {
        let mut parent = Scope::new();
        parent.set("package.name", "zlib");
        parent.extend([("vars.a", "1"), ("vars.b", "2")]);
        assert_eq!(parent.get("vars.b"), Some("2"));
        assert_eq!(parent.get("vars.c"), None);
        assert_eq!(parent.len(), 3);

        let mut child = parent.child();
        child.set("vars.a", "override");
        child.set("inputs.dir", "src");
        assert_eq!(child.get("vars.a"), Some("override"));
        assert_eq!(child.get("package.name"), Some("zlib"));
        assert_eq!(parent.get("vars.a"), Some("1"));
        assert!(!parent.contains("inputs.dir"));
        let names: Vec<_> = parent.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["package.name", "vars.a", "vars.b"]);
    }

    #[test]
    fn referenced_names_lists_each_once() {
        assert_eq!(
            referenced_names("${{a}} ${{ b.c }} ${{a}} ${{bad name}} ${{d-e}}"),
            ["a", "b.c", "d-e"]
        );
    }

    // --- conditions ---------------------------------------------------------------------

    #[test]
    fn condition_equality_and_inequality() {
        assert!(cond("'foo' == 'foo'"));
        assert!(!cond("'foo' != 'foo'"));
        assert!(cond(r#""foo" == 'foo'"#));
        assert!(cond("${{build.arch}} == 'aarch64'"));
        assert!(cond("'aarch64' == ${{ build.arch }}"));
        assert!(cond("${{build.arch}} != 'x86_64'"));
        assert!(cond("${{vars.empty}} == ''"));
        assert!(cond("${{ options.fips.enabled }} == 'true'"));
        assert!(cond("${{build.arch}}=='aarch64'"));
    }

    #[test]
    fn condition_and_or_parentheses() {
        assert!(cond("'a' == 'a' && 'b' == 'b' && 'a' != 'b'"));
        assert!(!cond("'a' == 'a' && 'b' == 'c'"));
        assert!(cond("'a' == 'b' || 'c' == 'c'"));
        assert!(!cond("'a' == 'b' || 'c' == 'd'"));
        assert!(cond("('a' == 'a' && 'b' != 'b') || 'l' == 'l'"));
        assert!(cond(
            "${{build.arch}} == 'x86_64' || (${{build.arch}} == 'aarch64' && 'x' == 'x')"
        ));
        assert!(cond("((('a' == 'a')))"));
        assert!(cond(" \t( 'a'=='a' )\n"));
    }

    #[test]
    fn condition_operators_group_left_to_right_with_equal_precedence() {
        // melange's parseExpr: `T || T && F` is `(T || T) && F`, not `T || (T && F)`.
        assert!(!cond("'a' == 'a' || 'a' == 'a' && 'a' == 'b'"));
        assert!(cond("'a' == 'a' || ('a' == 'a' && 'a' == 'b')"));
        // `F && F || T` is `(F && F) || T` either way.
        assert!(cond("'a' == 'b' && 'a' == 'b' || 'a' == 'a'"));
    }

    #[test]
    fn condition_values_with_spaces_and_quotes() {
        assert!(cond("${{vars.spaced}} == 'a b  c'"));
        assert!(cond("${{vars.spaced}} != 'a b c'"));
        // A value is compared as it is, whatever quotes or backslashes it holds.
        assert!(cond(r#"${{vars.quoted}} == 'it\'s "x" \\ y'"#));
        assert!(cond(r#"${{vars.quoted}} == "it's \"x\" \\ y""#));
        assert!(cond(
            r#"'a\nb' == "a
b""#
        ));
        assert!(cond(r"'\q' == '\\q'"));
        assert!(cond("'${{build.arch}}-x' == 'aarch64-x'"));
    }

    #[test]
    fn quoted_substitution_round_trips_through_the_parser() {
        let s = scope(&[
            ("vars.quoted", "it's \"x\" \\ y\n\tz"),
            ("build.arch", "aarch64"),
        ]);
        let expr = "${{vars.quoted}} != '' && ${{ build.arch }} == 'aarch64'";
        let resolved = substitute_quoted(expr, &s).unwrap();
        assert_eq!(
            resolved,
            r#""it's \"x\" \\ y\n\tz" != '' && "aarch64" == 'aarch64'"#
        );
        assert!(eval_condition(&resolved, &Scope::new()).unwrap());
        let eq = format!(
            "{} == {}",
            quote("it's \"x\" \\ y\n\tz"),
            "${{vars.quoted}}"
        );
        assert!(eval_condition(&eq, &s).unwrap());
    }

    #[test]
    fn condition_errors_name_the_expression_and_column() {
        assert_eq!(
            cond_err("${{build.arch}} = 'x86_64'"),
            "in condition `${{build.arch}} = 'x86_64'` at column 17: \
             expected `==` or `!=`, found `=`"
        );
        assert_eq!(
            cond_err("${{ vars.nope }} == 'x'"),
            "in condition `${{ vars.nope }} == 'x'` at column 1: \
             variable `vars.nope` is not defined"
        );
        assert!(cond_err("'a' == 'a' ||").contains("at column 14: expected a quoted string"));
        assert!(cond_err("('a' == 'a'").contains("expected `)` to close the `(` at column 1"));
        assert!(cond_err("'a' == 'a')").contains("column 11: unexpected text after"));
        assert!(cond_err("'a' == 'b").contains("column 8: the string opened by ' is not"));
        assert!(cond_err("x86_64 == 'a'").contains("column 1: expected a quoted string"));
        assert!(cond_err("'a' == 'a' 'b'").contains("unexpected text"));
        assert!(cond_err("").contains("found the end of the condition"));
        assert!(cond_err("${{build.arch} == 'a'").contains("is not closed by `}}`"));
        assert!(cond_err("'a' == 'a' & 'b' == 'b'").contains("column 12: unexpected text"));
        // An undefined variable is an error even where `||` already decided.
        assert!(cond_err("'a' == 'a' || ${{nope}} == 'x'").contains("`nope` is not defined"));
    }

    #[test]
    fn deep_parentheses_are_an_error_not_a_crash() {
        let expr = format!("{}'a' == 'a'{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(cond_err(&expr).contains("nested too deeply"));
    }

    #[test]
    fn columns_count_characters() {
        let s = scope(&[("v", "é")]);
        let err = eval_condition("'éé' ~ 'x'", &s).unwrap_err();
        assert!(
            matches!(err, SubstError::Condition { column: 6, .. }),
            "{err}"
        );
    }

    // --- vars and var-transforms ----------------------------------------------------------

    fn transform(
        from: &str,
        pattern: &str,
        replace: &str,
        to: &str,
    ) -> (String, String, String, String) {
        (from.into(), pattern.into(), replace.into(), to.into())
    }

    fn version_scope() -> Scope {
        scope(&[("package.version", "1.21.3"), ("package.name", "go")])
    }

    #[test]
    fn var_transforms_from_melange_docs() {
        let mut vars = BTreeMap::new();
        let transforms = [
            transform(
                "${{package.version}}",
                r"\.",
                "_",
                "mangled-package-version",
            ),
            transform(
                "${{package.version}}",
                r"^(\d+)\.(\d+)\.\d+$",
                "$1.$2",
                "major-minor-version",
            ),
            // Later transforms read earlier results.
            transform("${{vars.major-minor-version}}", r"\.", "", "short"),
        ];
        apply_var_transforms(&mut vars, &transforms, &version_scope()).unwrap();
        assert_eq!(vars["mangled-package-version"], "1_21_3");
        assert_eq!(vars["major-minor-version"], "1.21");
        assert_eq!(vars["short"], "121");
    }

    #[test]
    fn replace_templates_follow_go() {
        let cases = [
            // `$1x` is the group named `1x`, which does not exist (Go and Rust agree).
            (r"^(\d+)\.(\d+)", "$1x", ".3"),
            (r"^(\d+)\.(\d+)", "${1}x", "1x.3"),
            (r"^(?P<maj>\d+)\.(\d+)", "$maj-${2}", "1-21.3"),
            (r"^(\d+)", "$$1", "$1.21.3"),
            (r"^(\d+)", "cost: $", "cost: $.21.3"),
            (r"^(\d+)", "$-", "$-.21.3"),
            (r"^(\d+)", "${1", "${1.21.3"),
            // Go rejects leading zeros in group numbers: `$01` is a (missing) named group.
            (r"^(\d+)", "[$01]", "[].21.3"),
            (r"^(\d+)", "$9", ".21.3"),
            // Empty matches right after a match are not replaced again.
            (r"\d*", "X", "X.X.X"),
            (r"x*", "X", "X1X.X2X1X.X3X"),
        ];
        for (pattern, replace, want) in cases {
            let mut vars = BTreeMap::new();
            let t = [transform("${{package.version}}", pattern, replace, "out")];
            apply_var_transforms(&mut vars, &t, &version_scope()).unwrap();
            assert_eq!(vars["out"], want, "{pattern} -> {replace}");
        }
    }

    #[test]
    fn go_expansion_agrees_with_the_regex_crate_except_leading_zeros() {
        let re = Regex::new(r"^(\d+)\.(\d+)").unwrap();
        for template in ["$1x", "${1}x", "$1.$2", "$$1", "${1", "$-", "$9"] {
            assert_eq!(
                replace_all(&re, "1.21.3", template),
                re.replace_all("1.21.3", template),
                "{template}"
            );
        }
        // The regex crate reads `$01` as group 1; Go (and we) as the missing group `01`.
        assert_eq!(re.replace_all("1.21.3", "$01"), "1.3");
        assert_eq!(replace_all(&re, "1.21.3", "$01"), ".3");
    }

    #[test]
    fn var_transform_errors_say_which_transform() {
        let mut vars = BTreeMap::new();
        let err = apply_var_transforms(
            &mut vars,
            &[transform("${{package.version}}", "(", "", "broken")],
            &version_scope(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("var-transform to `broken`: `(` is not a valid regular expression"),
            "{text}"
        );
        let err = apply_var_transforms(
            &mut vars,
            &[transform("${{vars.missing}}", ".", "", "x")],
            &version_scope(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "var-transform to `x`: variable `vars.missing` is not defined"
        );
    }

    #[test]
    fn vars_resolve_against_the_scope_and_each_other() {
        let mut vars: BTreeMap<String, String> = [
            ("a", "${{vars.b}}/x"),
            ("b", "${{ vars.c }}-${{package.name}}"),
            ("c", "${{package.version}}"),
            ("plain", "$HOME"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        resolve_vars(&mut vars, &version_scope()).unwrap();
        assert_eq!(vars["a"], "1.21.3-go/x");
        assert_eq!(vars["b"], "1.21.3-go");
        assert_eq!(vars["plain"], "$HOME");

        let mut looped: BTreeMap<String, String> = [("a", "${{vars.b}}"), ("b", "x${{vars.a}}")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let err = resolve_vars(&mut looped, &version_scope()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "variables refer to each other in a loop: vars.a -> vars.b -> vars.a"
        );
    }

    // --- base scope -------------------------------------------------------------------------

    fn ctx(arch: Arch, subpackage: Option<&'static str>) -> BuildContext<'static> {
        BuildContext {
            name: "zlib",
            version: "1.3.1",
            epoch: 2,
            description: "a compression library",
            arch,
            workspace: "/home/build",
            subpackage,
        }
    }

    fn options() -> BTreeMap<String, bool> {
        [("fips".to_string(), true), ("debug".to_string(), false)].into()
    }

    #[test]
    fn base_scope_aarch64() {
        let vars = [("prefix".to_string(), "/usr".to_string())].into();
        let mut s = base_scope(&ctx(Arch::Aarch64, None), &vars, &options());
        add_subpackage_targets(&mut s, "/home/build", ["zlib-dev", "minizip"]);
        let want = [
            ("package.name", "zlib"),
            ("package.version", "1.3.1"),
            ("package.epoch", "2"),
            ("package.full-version", "1.3.1-r2"),
            ("package.description", "a compression library"),
            ("package.srcdir", "/home/build"),
            ("targets.outdir", "/home/build/melange-out"),
            ("targets.destdir", "/home/build/melange-out/zlib"),
            ("targets.contextdir", "/home/build/melange-out/zlib"),
            ("targets.package.zlib", "/home/build/melange-out/zlib"),
            (
                "targets.package.zlib-dev",
                "/home/build/melange-out/zlib-dev",
            ),
            ("targets.package.minizip", "/home/build/melange-out/minizip"),
            ("context.name", "zlib"),
            ("build.arch", "aarch64"),
            ("build.goarch", "arm64"),
            ("host.triplet.gnu", "aarch64-linux-gnu"),
            ("host.triplet.rust", "aarch64-unknown-linux-gnu"),
            ("cross.triplet.gnu.glibc", "aarch64-linux-gnu"),
            ("cross.triplet.gnu.musl", "aarch64-linux-musl"),
            ("cross.triplet.rust.glibc", "aarch64-unknown-linux-gnu"),
            ("cross.triplet.rust.musl", "aarch64-unknown-linux-musl"),
            ("vars.prefix", "/usr"),
            ("options.fips.enabled", "true"),
            ("options.debug.enabled", "false"),
        ];
        for (name, value) in want {
            assert_eq!(s.get(name), Some(value), "{name}");
        }
        assert_eq!(s.len(), want.len());
        // Only a subpackage has these, as in melange.
        assert!(!s.contains("subpkg.name"));
        assert!(!s.contains("targets.subpkgdir"));
    }

    #[test]
    fn base_scope_armv7() {
        let s = base_scope(&ctx(Arch::Armv7, None), &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(s.get("build.arch"), Some("armv7"));
        assert_eq!(s.get("build.goarch"), Some("arm"));
        assert_eq!(s.get("host.triplet.gnu"), Some("arm-linux-gnueabihf"));
        assert_eq!(
            s.get("host.triplet.rust"),
            Some("armv7-unknown-linux-gnueabihf")
        );
        assert_eq!(
            s.get("cross.triplet.gnu.musl"),
            Some("arm-linux-musleabihf")
        );
        assert_eq!(
            s.get("cross.triplet.rust.musl"),
            Some("armv7-unknown-linux-musleabihf")
        );
    }

    #[test]
    fn base_scope_inside_a_subpackage() {
        let s = base_scope(
            &ctx(Arch::X86_64, Some("zlib-dev")),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(s.get("subpkg.name"), Some("zlib-dev"));
        assert_eq!(s.get("context.name"), Some("zlib-dev"));
        assert_eq!(
            s.get("targets.subpkgdir"),
            Some("/home/build/melange-out/zlib-dev")
        );
        assert_eq!(
            s.get("targets.contextdir"),
            Some("/home/build/melange-out/zlib-dev")
        );
        assert_eq!(
            s.get("targets.destdir"),
            Some("/home/build/melange-out/zlib")
        );
        assert_eq!(s.get("package.name"), Some("zlib"));
        assert_eq!(
            substitute(
                "mv ${{targets.destdir}}/usr/include ${{targets.subpkgdir}}/usr/",
                &s
            )
            .unwrap(),
            "mv /home/build/melange-out/zlib/usr/include /home/build/melange-out/zlib-dev/usr/"
        );
    }

    #[test]
    fn workspace_with_trailing_slash_joins_cleanly() {
        let mut c = ctx(Arch::S390x, None);
        c.workspace = "/tmp/ws/";
        let s = base_scope(&c, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(s.get("targets.destdir"), Some("/tmp/ws/melange-out/zlib"));
        assert_eq!(s.get("package.srcdir"), Some("/tmp/ws"));
        assert_eq!(s.get("host.triplet.gnu"), Some("s390x-linux-gnu"));
    }

    #[test]
    fn recipe_scope_in_documented_order() {
        let c = ctx(Arch::Aarch64, None);
        let opts = BTreeMap::new();
        let mut vars: BTreeMap<String, String> = [(
            "tarball".to_string(),
            "${{package.name}}-${{package.version}}.tar.gz".to_string(),
        )]
        .into();
        let pre = base_scope(&c, &BTreeMap::new(), &opts);
        resolve_vars(&mut vars, &pre).unwrap();
        apply_var_transforms(
            &mut vars,
            &[transform("${{vars.tarball}}", r"\.tar\.gz$", "", "stem")],
            &pre,
        )
        .unwrap();
        let s = base_scope(&c, &vars, &opts);
        assert_eq!(
            substitute("${{vars.tarball}} ${{vars.stem}}", &s).unwrap(),
            "zlib-1.3.1.tar.gz zlib-1.3.1"
        );
    }
}

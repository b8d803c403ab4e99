//! apk dependency atoms `[!]name[@tag][OP version]`, as apk-tools 2.14 `apk_blob_pull_dep`
//! reads them from `.PKGINFO`, APKINDEX `D:`/`p:`/`i:` lines and `/etc/apk/world`.
//!
//! Parsing keeps everything needed to print the atom back exactly as written.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::version::{self, Version};

/// What a dependency asks of the version: the operator and its operand.
///
/// apk builds a mask from the operator's characters (`<` less, `>` greater, `=` equal,
/// `~` fuzzy-equal) and a version matches when its comparison result is in the mask.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Constraint {
    /// No operator: any version (and an unversioned provide) will do.
    Any,
    /// `=`
    Eq(Version),
    /// `<`
    Lt(Version),
    /// `<=`
    Le(Version),
    /// `>`
    Gt(Version),
    /// `>=`
    Ge(Version),
    /// `~`: fuzzy, see [`version::fuzzy_match`] (`~1.2` matches `1.2.3`, `1.2_rc1`).
    Fuzzy(Version),
    /// `=~`: matches exactly like `~` (apk sets the same mask); kept apart only so the
    /// atom prints back as written.
    FuzzyEq(Version),
    /// `>~`: greater than, or fuzzy-equal to, the version.
    FuzzyGe(Version),
    /// `<~`: less than, or fuzzy-equal to, the version.
    FuzzyLe(Version),
    /// `><`: the package whose identity checksum is this text (e.g. `Q1…=`, as world
    /// records a package added from a file). Not a version, and never validated as one.
    Checksum(String),
}

impl Constraint {
    /// The operator as written (`""` for [`Constraint::Any`]).
    pub fn op(&self) -> &'static str {
        match self {
            Constraint::Any => "",
            Constraint::Eq(_) => "=",
            Constraint::Lt(_) => "<",
            Constraint::Le(_) => "<=",
            Constraint::Gt(_) => ">",
            Constraint::Ge(_) => ">=",
            Constraint::Fuzzy(_) => "~",
            Constraint::FuzzyEq(_) => "=~",
            Constraint::FuzzyGe(_) => ">~",
            Constraint::FuzzyLe(_) => "<~",
            Constraint::Checksum(_) => "><",
        }
    }

    /// The version operand, if the operator takes one (not for `Any` or `Checksum`).
    pub fn version(&self) -> Option<&Version> {
        match self {
            Constraint::Eq(v)
            | Constraint::Lt(v)
            | Constraint::Le(v)
            | Constraint::Gt(v)
            | Constraint::Ge(v)
            | Constraint::Fuzzy(v)
            | Constraint::FuzzyEq(v)
            | Constraint::FuzzyGe(v)
            | Constraint::FuzzyLe(v) => Some(v),
            Constraint::Any | Constraint::Checksum(_) => None,
        }
    }

    /// Whether a package (or versioned provide) of version `v` satisfies this constraint,
    /// as apk's `apk_dep_is_provided`: compare `v` against the operand (fuzzily for `~`
    /// operators) and test the result against the operator's mask. A checksum constraint
    /// never matches a version: use [`Constraint::matches_checksum`].
    pub fn matches(&self, v: &Version) -> bool {
        let Some(operand) = self.version() else {
            return matches!(self, Constraint::Any);
        };
        let fuzzy = matches!(
            self,
            Constraint::Fuzzy(_)
                | Constraint::FuzzyEq(_)
                | Constraint::FuzzyGe(_)
                | Constraint::FuzzyLe(_)
        );
        let op = self.op();
        match version::compare_with(v.as_str(), operand.as_str(), fuzzy) {
            std::cmp::Ordering::Less => op.contains('<'),
            std::cmp::Ordering::Equal => op.contains('=') || fuzzy,
            std::cmp::Ordering::Greater => op.contains('>'),
        }
    }

    /// Whether this is a `><` constraint naming exactly `checksum` (e.g. `Q1…=`).
    pub fn matches_checksum(&self, checksum: &str) -> bool {
        matches!(self, Constraint::Checksum(c) if c == checksum)
    }

    /// The constraint for operator `op` (a non-empty run of `<>=~`) and operand `operand`.
    fn parse(op: &str, operand: &str) -> std::result::Result<Self, String> {
        if operand.is_empty() {
            return Err(format!("missing version after operator {op:?}"));
        }
        if op == "><" {
            return Ok(Constraint::Checksum(operand.to_owned()));
        }
        let make: fn(Version) -> Constraint = match op {
            "=" => Constraint::Eq,
            "<" => Constraint::Lt,
            "<=" => Constraint::Le,
            ">" => Constraint::Gt,
            ">=" => Constraint::Ge,
            "~" => Constraint::Fuzzy,
            // apk folds the operator's characters into one mask, so `~=` is `=~`; it
            // prints back as `=~` (e.g. `az~=2.84.0` in a recipe's runtime dependencies).
            "=~" | "~=" => Constraint::FuzzyEq,
            ">~" => Constraint::FuzzyGe,
            "<~" => Constraint::FuzzyLe,
            // apk would fold any run of these characters into a mask; other spellings
            // (`=>`, `==`, `<>`) are never written by apk-tools and could not print back.
            _ => return Err(format!("unknown operator {op:?}")),
        };
        match operand.parse() {
            Ok(v) => Ok(make(v)),
            Err(Error::BadVersion { reason, .. }) => {
                Err(format!("bad version {operand:?}: {reason}"))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op())?;
        match self {
            Constraint::Any => Ok(()),
            Constraint::Checksum(c) => f.write_str(c),
            other => write!(f, "{}", other.version().expect("versioned constraint")),
        }
    }
}

/// One dependency atom, e.g. `so:libc.musl-x86_64.so.1`, `busybox>=1.36`,
/// `hello@local`, `!vlan`, `name><Q1…=`.
///
/// Names are opaque (`cmd:ls`, `pc:zlib`, `/bin/sh` are names like any other). A name or
/// tag containing `<>=~`, `@` (in the name) or whitespace cannot print back as itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dependency {
    pub name: String,
    /// The repository tag after `@`, without the `@`.
    pub tag: Option<String>,
    pub constraint: Constraint,
    /// `!name`: the named package must not be installed (in the constrained range).
    pub conflict: bool,
}

impl Dependency {
    /// An unversioned, untagged dependency on `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tag: None,
            constraint: Constraint::Any,
            conflict: false,
        }
    }

    /// Whether a package (or provide) `name` at `version` is what this atom names.
    ///
    /// Ignores `conflict` (for `!name<2` this tells whether the forbidden package is
    /// meant) and `tag` (pinning is the solver's business).
    pub fn matches(&self, name: &str, version: &Version) -> bool {
        self.name == name && self.constraint.matches(version)
    }
}

/// Byte classes for the one-pass atom scan: the characters that end an atom or its parts.
const SPACE: u8 = 1;
const OPERATOR: u8 = 2;
const AT: u8 = 3;
static CLASSES: [u8; 256] = {
    let mut classes = [0; 256];
    let mut c = 0;
    while c < 256 {
        classes[c] = match c as u8 {
            // What `u8::is_ascii_whitespace` accepts.
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => SPACE,
            b'<' | b'>' | b'=' | b'~' => OPERATOR,
            b'@' => AT,
            _ => 0,
        };
        c += 1;
    }
    classes
};

fn class(c: u8) -> u8 {
    CLASSES[usize::from(c)]
}

/// Where the atom at the start of some bytes ends (at whitespace or the end) and where its
/// parts begin, found in one pass: indexes hold hundreds of thousands of atoms. Every
/// character that delimits a part is ASCII, so the positions are char boundaries.
struct Scan {
    end: usize,
    /// The first operator character: the name (and tag) run up to it.
    operator: Option<usize>,
    /// The first '@' before the operator.
    at: Option<usize>,
}

impl Scan {
    fn of(bytes: &[u8]) -> Self {
        let mut scan = Scan {
            end: bytes.len(),
            operator: None,
            at: None,
        };
        let mut i = 0;
        loop {
            // Most bytes are plain: skip them in a tight loop.
            while i < bytes.len() && class(bytes[i]) == 0 {
                i += 1;
            }
            let Some(&c) = bytes.get(i) else {
                return scan;
            };
            match class(c) {
                SPACE => {
                    scan.end = i;
                    return scan;
                }
                OPERATOR if scan.operator.is_none() => scan.operator = Some(i),
                AT if scan.at.is_none() && scan.operator.is_none() => scan.at = Some(i),
                _ => {}
            }
            i += 1;
        }
    }
}

impl Dependency {
    /// The atom `text` (without whitespace), of which `scan` found the parts.
    fn from_scan(text: &str, scan: &Scan) -> Result<Self> {
        let bad = |reason: String| Error::BadDependency {
            text: text.to_owned(),
            reason,
        };
        let conflict = text.starts_with('!');
        let name_start = usize::from(conflict);
        // As apk: the name runs up to the first operator character, the operator is the
        // whole run of them, and the tag is split off the name at its first '@'.
        let name_end = scan.operator.unwrap_or(text.len());
        let constraint = match scan.operator {
            None => Constraint::Any,
            Some(at) => {
                let rest = &text[at..];
                let op_len = rest
                    .bytes()
                    .position(|c| class(c) != OPERATOR)
                    .unwrap_or(rest.len());
                let (op, operand) = rest.split_at(op_len);
                Constraint::parse(op, operand).map_err(bad)?
            }
        };
        let (name, tag) = match scan.at {
            Some(at) if at + 1 == name_end => return Err(bad("empty tag after '@'".to_owned())),
            Some(at) => (
                &text[name_start..at],
                Some(text[at + 1..name_end].to_owned()),
            ),
            None => (&text[name_start..name_end], None),
        };
        if name.is_empty() {
            return Err(bad("empty name".to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            tag,
            constraint,
            conflict,
        })
    }
}

impl FromStr for Dependency {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let scan = Scan::of(text.as_bytes());
        // The scan stops at whitespace; apk would split the atom there.
        if scan.end < text.len() {
            return Err(Error::BadDependency {
                text: text.to_owned(),
                reason: "contains whitespace".to_owned(),
            });
        }
        Dependency::from_scan(text, &scan)
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("!")?;
        }
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, "@{tag}")?;
        }
        write!(f, "{}", self.constraint)
    }
}

/// Parses a whitespace-separated list of atoms, as in APKINDEX `D:` lines or world.
///
/// apk itself splits on spaces and newlines only; tabs and CRs are separators here too.
pub fn parse_list(s: &str) -> Result<Vec<Dependency>> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    // Lists are single-spaced, so this sizes the list in one allocation (an index has
    // tens of thousands of lists); a tab or newline separator only means it grows.
    let spaces = memchr::memchr_iter(b' ', bytes).count();
    let mut list = Vec::with_capacity(spaces + 1);
    let mut start = 0;
    while start < bytes.len() {
        if class(bytes[start]) == SPACE {
            start += 1;
            continue;
        }
        let scan = Scan::of(&bytes[start..]);
        let end = start + scan.end;
        list.push(Dependency::from_scan(&s[start..end], &scan)?);
        start = end;
    }
    Ok(list)
}

/// Prints atoms space-separated, as apk writes `D:` lines.
pub fn format_list(deps: &[Dependency]) -> String {
    deps.iter()
        .map(Dependency::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(s: &str) -> Dependency {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip() {
        for s in [
            "busybox",
            "so:libc.musl-x86_64.so.1",
            "cmd:ls",
            "pc:zlib",
            "pc:zlib>=1.2",
            "py3.10:foo",
            "/bin/sh",
            "name@tag",
            "name@tag>=1.2",
            "hello-apk@local",
            "!name",
            "!name<2",
            "!vlan",
            "name=1.0-r0",
            "name<1.0",
            "name<=1.0",
            "name>1.0",
            "name>=1.0",
            "name~1.2",
            "name=~1.2",
            "name>~1.2",
            "name<~1.2",
            "name><Q1abcdefghijklmnopqrstuvwxyz01234=",
            "so:libz.so.1=1.2.13",
            "busybox=1.33.1-r3",
            "!name@edge~2.0_rc1",
            "a@b@c",
        ] {
            let d = dep(s);
            assert_eq!(d.to_string(), s);
            assert_eq!(dep(&d.to_string()), d);
        }
    }

    #[test]
    fn parsed_fields() {
        assert_eq!(
            dep("!name@edge>=1.2"),
            Dependency {
                name: "name".into(),
                tag: Some("edge".into()),
                constraint: Constraint::Ge(v("1.2")),
                conflict: true,
            }
        );
        assert_eq!(
            dep("so:libc.musl-x86_64.so.1"),
            Dependency::new("so:libc.musl-x86_64.so.1")
        );
        assert_eq!(
            dep("name><Q1xyz=").constraint,
            Constraint::Checksum("Q1xyz=".into())
        );
        assert_eq!(dep("name~1.2").constraint, Constraint::Fuzzy(v("1.2")));
        assert_eq!(dep("name=~1.2").constraint, Constraint::FuzzyEq(v("1.2")));
        assert_eq!(dep("name~=1.2"), dep("name=~1.2"));
        assert_eq!(dep("name~=1.2").to_string(), "name=~1.2");
        assert_eq!(dep("name>~1.2").constraint, Constraint::FuzzyGe(v("1.2")));
        assert_eq!(dep("name<~1.2").constraint, Constraint::FuzzyLe(v("1.2")));
        assert_eq!(dep("name<=1.2").constraint.version(), Some(&v("1.2")));
    }

    #[test]
    fn matching() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("x", &["0", "1.0", "99"], &[]),
            (
                "x=1.2",
                &["1.2", "01.2"],
                &["1.2-r0", "1.2-r", "1.2.0", "1.2_rc1"],
            ),
            (
                "x<1.2",
                &["1.1", "1.2_rc1", "1.1.99"],
                &["1.2", "1.2-r0", "1.3"],
            ),
            ("x<=1.2", &["1.1", "1.2"], &["1.2-r0", "1.2.1"]),
            (
                "x>1.2",
                &["1.2-r0", "1.2.1", "1.2_p1", "2"],
                &["1.2", "1.2_rc1", "1.1"],
            ),
            ("x>=1.2", &["1.2", "1.2.1", "2"], &["1.2_rc1", "1.1"]),
            // Fuzzy: equal up to the end of the shorter token list.
            (
                "x~1.2",
                &["1.2", "1.2.3", "1.2_rc1", "1.2-r4", "1.2a", "1"],
                &["1.20", "1.3", "1.1"],
            ),
            ("x=~1.2", &["1.2", "1.2.3", "1.2_rc1"], &["1.20", "1.3"]),
            (
                "x>~1.2",
                &["1.2_rc1", "1.2", "1.2.3", "1.3"],
                &["1.1", "1.1.9"],
            ),
            ("x<~1.2", &["1.1", "1.2_rc1", "1.2.3"], &["1.3", "1.20"]),
            ("x><Q1abc=", &[], &["1.0"]),
        ];
        for (atom, yes, no) in cases {
            let d = dep(atom);
            for ver in *yes {
                assert!(
                    d.matches("x", &Version::new_unchecked(*ver)),
                    "{atom} should match {ver}"
                );
            }
            for ver in *no {
                assert!(
                    !d.matches("x", &Version::new_unchecked(*ver)),
                    "{atom} should not match {ver}"
                );
            }
            assert!(!d.matches("y", &v("1.2")), "{atom} names x only");
        }
        // The conflict flag does not change what the atom names.
        assert!(dep("!x<2").matches("x", &v("1.0")));
        assert!(!dep("!x<2").matches("x", &v("2.0")));
        let checksum = dep("x><Q1abc=").constraint;
        assert!(checksum.matches_checksum("Q1abc="));
        assert!(!checksum.matches_checksum("Q1abd="));
        assert!(!Constraint::Ge(v("1")).matches_checksum("Q1abc="));
    }

    #[test]
    fn errors() {
        for (text, reason) in [
            ("", "empty name"),
            ("!", "empty name"),
            (">=1.0", "empty name"),
            ("@tag", "empty name"),
            ("!@tag>1", "empty name"),
            ("name@", "empty tag"),
            ("name@>1", "empty tag"),
            ("name>=", "missing version"),
            ("name><", "missing version"),
            ("name>=1.0bc", "bad version"),
            ("name=1.0_foo", "bad version"),
            ("name>=1.0@edge", "bad version"),
            ("name=>1.0", "unknown operator"),
            ("name==1.0", "unknown operator"),
            ("name<>1.0", "unknown operator"),
            ("name<=>1.0", "unknown operator"),
            ("a b", "whitespace"),
        ] {
            match text.parse::<Dependency>() {
                Err(Error::BadDependency { text: t, reason: r }) => {
                    assert_eq!(t, text);
                    assert!(
                        r.contains(reason),
                        "{text:?}: {r:?} should mention {reason:?}"
                    );
                }
                other => panic!("{text:?} should fail: {other:?}"),
            }
        }
    }

    #[test]
    fn lists() {
        let deps =
            parse_list("so:libc.musl-x86_64.so.1  busybox>=1.36\n!vlan pc:zlib>=1.2\n").unwrap();
        assert_eq!(deps.len(), 4);
        assert_eq!(
            deps[2],
            Dependency {
                conflict: true,
                ..Dependency::new("vlan")
            }
        );
        assert_eq!(
            format_list(&deps),
            "so:libc.musl-x86_64.so.1 busybox>=1.36 !vlan pc:zlib>=1.2"
        );
        assert!(parse_list(" \n").unwrap().is_empty());
        assert_eq!(format_list(&[]), "");
        assert!(matches!(
            parse_list("ok bad>=1.0bc"),
            Err(Error::BadDependency { text, .. }) if text == "bad>=1.0bc"
        ));
    }

    // Every dependency-shaped line of a real Alpine index parses and prints back as is.
    #[test]
    fn alpine_index_lines_round_trip() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/alpine-v3.16/APKINDEX.tar.gz"
        );
        let bytes = std::fs::read(path).unwrap();
        let members = crate::gzip::split_members(&bytes, u64::MAX).unwrap();
        let index_tar = crate::tarball::parse(&members[1].unpacked).unwrap();
        let entry = index_tar
            .entries
            .iter()
            .find(|e| e.path == "APKINDEX")
            .unwrap();
        let index = std::str::from_utf8(entry.data).unwrap();
        let (mut lines, mut versions) = (0, 0);
        for line in index.lines() {
            if let Some(list) = ["D:", "p:", "i:"].iter().find_map(|p| line.strip_prefix(p)) {
                let deps = parse_list(list).unwrap_or_else(|e| panic!("{line}: {e}"));
                assert_eq!(format_list(&deps), list);
                lines += 1;
            } else if let Some(ver) = line.strip_prefix("V:") {
                assert!(version::is_valid(ver), "{ver}");
                versions += 1;
            }
        }
        assert_eq!(versions, 4929);
        assert_eq!(lines, 6815);
    }
}

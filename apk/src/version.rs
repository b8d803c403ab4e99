//! apk version strings, ordered and matched exactly as apk-tools 2.14 `src/version.c` does.
//!
//! Grammar (Gentoo style): `digits{.digits}[letter]{_suffix[N]}[-rN]`, e.g. `1.2.3b_rc1_p2-r4`.
//! Comparison walks both strings token by token and never fails: strings outside the grammar
//! are still ordered, token-wise, the way apk orders them (`1.0 < 1.0bc`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{Error, Result};

/// A package version, keeping the text it was made from.
///
/// Equality, ordering and hashing follow apk's comparison, not the text: `1-r0 == 1-r`
/// and `01 == 1`, while [`Display`](fmt::Display) prints the original text unchanged.
/// For strings outside the grammar (only possible via [`Version::new_unchecked`]) apk's
/// ordering is not guaranteed to be transitive.
#[derive(Clone, Debug)]
pub struct Version(String);

impl Version {
    /// Wraps `s` without validating it, for versions read from data apk itself tolerates.
    pub fn new_unchecked(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this version follows the apk grammar (see [`is_valid`]).
    pub fn is_valid(&self) -> bool {
        is_valid(&self.0)
    }

    /// apk's `~` match: see [`fuzzy_match`].
    pub fn fuzzy_matches(&self, other: &Version) -> bool {
        fuzzy_match(&self.0, &other.0)
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::BadVersion {
                version: s.to_owned(),
                reason: "empty version".to_owned(),
            });
        }
        if !is_valid(s) {
            return Err(Error::BadVersion {
                version: s.to_owned(),
                reason: "does not follow the apk grammar digits{.digits}[a-z]{_suffix[N]}[-rN]"
                    .to_owned(),
            });
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Version {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        compare(&self.0, &other.0) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

impl Hash for Version {
    // compare() says Equal exactly when both strings yield the same (value, next kind) token
    // sequence up to the same terminal kind, so hashing that sequence agrees with Eq.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut tokens = Tokens::new(&self.0);
        loop {
            tokens.read().hash(state);
            tokens.kind.hash(state);
            if tokens.kind.is_terminal() {
                break;
            }
        }
    }
}

/// Whether `s` is a non-empty string that apk-tools' `apk_version_validate` accepts.
///
/// apk's validator is a tokenizer, so it also accepts some odd strings (`1-r`, `1.`, `a`);
/// the empty string, which apk's validator lets through, is rejected here.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty() && (is_plain(s.as_bytes()) || tokenizes(s))
}

/// Whether `s` is `digits{.digits}[-r[digits]]`, the shape of nearly every version, which
/// the tokenizer always accepts: a cheap first test, since an index has one version per
/// package and per versioned dependency.
fn is_plain(s: &[u8]) -> bool {
    let (release, revision) = match s.iter().position(|&c| c == b'-') {
        Some(at) => match s[at + 1..].strip_prefix(b"r") {
            Some(revision) => (&s[..at], revision),
            None => return false,
        },
        None => (s, &[][..]),
    };
    revision.iter().all(u8::is_ascii_digit)
        && release
            .split(|&c| c == b'.')
            .all(|part| !part.is_empty() && part.iter().all(u8::is_ascii_digit))
}

/// apk's validator proper: the tokenizer reads to the end without an invalid token.
fn tokenizes(s: &str) -> bool {
    let mut tokens = Tokens::new(s);
    while !tokens.kind.is_terminal() {
        tokens.read();
    }
    tokens.kind == Kind::End
}

/// Orders two version strings the way apk-tools does (`apk version -t a b`).
///
/// Works on any string, valid or not. Numbers of any length compare numerically.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_with(a, b, false)
}

/// apk's fuzzy `~` match: the versions agree on every token up to the end of the shorter
/// one, so `1.2` matches `1.2.3`, `1.2_rc1` and `1.2-r4` (and, symmetrically as in
/// apk-tools 2.x, `1.2.3` matches `1.2`), but not `1.20` or `1.3`.
pub fn fuzzy_match(a: &str, b: &str) -> bool {
    compare_with(a, b, true) == Ordering::Equal
}

/// `apk_version_compare_blob_fuzzy`: with `fuzzy`, running out of tokens on either side
/// after an equal prefix counts as equal.
pub(crate) fn compare_with(a: &str, b: &str, fuzzy: bool) -> Ordering {
    let (mut ta, mut tb) = (Tokens::new(a), Tokens::new(b));
    let (mut va, mut vb) = (Value::Int(0), Value::Int(0));
    // Both sides always read a token of the same kind; stop at the first difference in
    // value or in the kind of the token that follows.
    while ta.kind == tb.kind && !ta.kind.is_terminal() && va == vb {
        va = ta.read();
        vb = tb.read();
    }
    match va.cmp(&vb) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    if ta.kind == tb.kind || fuzzy {
        return Ordering::Equal;
    }
    // Equal so far, one side goes on: a pre-release suffix (or an unknown one, which apk
    // scores like `_rc`) makes that side older: `1.0_rc1 < 1.0`.
    if ta.kind == Kind::Suffix && ta.clone().read() < Value::Int(0) {
        return Ordering::Less;
    }
    if tb.kind == Kind::Suffix && tb.clone().read() < Value::Int(0) {
        return Ordering::Greater;
    }
    // Otherwise the side whose next token kind comes earlier in the grammar is newer:
    // digit > letter > suffix > revision > end, e.g. `1.0 < 1.0.0`, `1.0-r1 < 1.0a`.
    tb.kind.cmp(&ta.kind)
}

/// Token kinds in apk's order; a version's kinds may only move forward (with a few
/// exceptions, see [`Tokens::advance`]). `Invalid` sorts first as `TOKEN_INVALID = -1` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Invalid,
    /// A component after `.`: leading zeros get the fraction-like rule.
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    RevisionNo,
    End,
}

impl Kind {
    fn is_terminal(self) -> bool {
        matches!(self, Kind::End | Kind::Invalid)
    }
}

/// A token's value. Numbers too long for `i64` keep their digits (leading zeros stripped):
/// ordered by length and then text, which is numeric order, and always above any `Int`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Value<'a> {
    Int(i64),
    Big(usize, &'a [u8]),
}

impl<'a> Value<'a> {
    fn number(digits: &'a [u8]) -> Self {
        let start = digits
            .iter()
            .position(|&c| c != b'0')
            .unwrap_or(digits.len());
        let digits = &digits[start..];
        if digits.len() > 18 {
            return Value::Big(digits.len(), digits);
        }
        Value::Int(digits.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')))
    }
}

// Pre-release suffixes score below "no suffix", post-release ones above; apk tries the
// pre-release names first and matches by prefix, so `_pre` is never read as `_p` + `re`.
const PRE_SUFFIXES: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

fn suffix_rank(rest: &[u8]) -> Option<(i64, usize)> {
    let find = |names: &[&str]| {
        names
            .iter()
            .position(|name| rest.starts_with(name.as_bytes()))
            .map(|i| (i as i64, names[i].len()))
    };
    if let Some((i, len)) = find(&PRE_SUFFIXES) {
        return Some((i - PRE_SUFFIXES.len() as i64, len));
    }
    find(&POST_SUFFIXES)
}

/// apk's tokenizer state: `kind` is the kind of the token that `read` returns next.
#[derive(Clone)]
struct Tokens<'a> {
    rest: &'a [u8],
    kind: Kind,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            rest: s.as_bytes(),
            kind: Kind::Digit,
        }
    }

    /// `get_token`: reads one token of kind `self.kind`, then sets `self.kind` to the kind
    /// of the token after it.
    fn read(&mut self) -> Value<'a> {
        if self.rest.is_empty() {
            self.kind = Kind::End;
            return Value::Int(0);
        }
        let digits = self.rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let (value, len, then_digit) = match self.kind {
            Kind::DigitOrZero if self.rest[0] == b'0' => {
                // apk-tools 2.14: a run of z leading zeros after '.' scores -(z - 1) and
                // leaves its last zero to the number that follows, so more zeros sort
                // lower: `1.001 < 1.01 < 1.1`, `1.00 < 1.0`, and `6.0_pre1 < 6.0`.
                let zeros = self.rest.iter().take_while(|&&c| c == b'0').count();
                (Value::Int(1 - zeros as i64), zeros - 1, true)
            }
            Kind::DigitOrZero | Kind::Digit | Kind::SuffixNo | Kind::RevisionNo => {
                (Value::number(&self.rest[..digits]), digits, false)
            }
            Kind::Letter => (Value::Int(i64::from(self.rest[0])), 1, false),
            Kind::Suffix => match suffix_rank(self.rest) {
                Some((rank, len)) => (Value::Int(rank), len, false),
                // An unknown suffix ends the version; apk scores it -1 (like `_rc`).
                None => return self.fail(),
            },
            Kind::End | Kind::Invalid => return self.fail(),
        };
        self.rest = &self.rest[len..];
        self.kind = if self.rest.is_empty() {
            Kind::End
        } else if then_digit {
            Kind::Digit
        } else {
            self.advance()
        };
        value
    }

    fn fail(&mut self) -> Value<'a> {
        self.kind = Kind::Invalid;
        Value::Int(-1)
    }

    /// `next_token`: the kind of the next token, consuming its separator. `rest` is not empty.
    fn advance(&mut self) -> Kind {
        let prev = self.kind;
        let next = match self.rest[0] {
            // A letter directly after digits, digits directly after a letter or a suffix
            // name: no separator to consume.
            b'a'..=b'z' if matches!(prev, Kind::Digit | Kind::DigitOrZero) => Kind::Letter,
            b'0'..=b'9' if prev == Kind::Letter => Kind::Digit,
            b'0'..=b'9' if prev == Kind::Suffix => Kind::SuffixNo,
            c => {
                let (kind, len) = match c {
                    b'.' => (Kind::DigitOrZero, 1),
                    b'_' => (Kind::Suffix, 1),
                    b'-' if self.rest.get(1) == Some(&b'r') => (Kind::RevisionNo, 2),
                    _ => (Kind::Invalid, 1),
                };
                self.rest = &self.rest[len..];
                kind
            }
        };
        // Kinds only move forward, except: '.' after digits, '_' after a suffix number,
        // and digits after a letter (`1.2a3`).
        let allowed_back = matches!(
            (prev, next),
            (Kind::Digit, Kind::DigitOrZero)
                | (Kind::SuffixNo, Kind::Suffix)
                | (Kind::Letter, Kind::Digit)
        );
        if next < prev && !allowed_back {
            Kind::Invalid
        } else {
            next
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    const VERSION_DATA: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/apk-tools/version.data"
    ));

    fn ord(op: &str) -> Ordering {
        match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => panic!("unknown operator {op:?}"),
        }
    }

    fn hash_of(v: &Version) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn upstream_version_data() {
        let mut count = 0;
        let mut failures = Vec::new();
        for line in VERSION_DATA.lines() {
            let line = line.split('#').next().unwrap();
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [a, op, b] = fields[..] else {
                panic!("bad line {line:?}");
            };
            count += 1;
            let want = ord(op);
            if compare(a, b) != want || compare(b, a) != want.reverse() {
                failures.push(format!("{a} {op} {b}: got {:?}", compare(a, b)));
            }
            let (va, vb) = (Version::new_unchecked(a), Version::new_unchecked(b));
            assert_eq!(va.cmp(&vb), want, "{a} {op} {b}");
            if want == Ordering::Equal {
                assert_eq!(va, vb);
                assert_eq!(hash_of(&va), hash_of(&vb), "{a} = {b}");
            }
        }
        assert_eq!(count, 733);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn plain_versions_are_ones_the_tokenizer_accepts() {
        // Every string of up to six characters over the alphabet that matters.
        let alphabet = b"01.-r_a";
        let mut strings = vec![Vec::new()];
        let mut checked = 0;
        for _ in 0..6 {
            let mut longer = Vec::new();
            for s in &strings {
                for &c in alphabet {
                    let mut t = s.clone();
                    t.push(c);
                    let text = std::str::from_utf8(&t).unwrap();
                    if is_plain(&t) {
                        assert!(tokenizes(text), "{text:?} is plain but apk refuses it");
                        checked += 1;
                    }
                    longer.push(t);
                }
            }
            strings = longer;
        }
        assert!(checked > 400, "{checked}");
        for v in [
            "1",
            "1.2.3-r0",
            "1.00.1-r",
            "20220328-r10",
            "6.3_p20211016-r0",
        ] {
            assert!(is_valid(v), "{v}");
        }
        for v in ["", "1..2-", "1-r1-r2", "1.2-x", "-r1"] {
            assert_eq!(is_valid(v), !v.is_empty() && tokenizes(v), "{v}");
        }
        assert!(is_plain(b"1.2.3-r0") && !is_plain(b"1.2_rc1") && !is_plain(b"1..2"));
    }

    #[test]
    fn spec_examples() {
        let lt = [
            ("1.01", "1.1"),
            ("1.001", "1.01"),
            ("1.00", "1.0"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0.1"),
            ("1.0_alpha", "1.0_beta"),
            ("1.0_beta", "1.0_pre"),
            ("1.0_pre", "1.0_rc"),
            ("1.0_rc", "1.0"),
            ("1.0", "1.0_cvs"),
            ("1.0_cvs", "1.0_svn"),
            ("1.0_svn", "1.0_git"),
            ("1.0_git", "1.0_hg"),
            ("1.0_hg", "1.0_p"),
            ("1.0_rc", "1.0_rc1"),
            ("1.0_rc1", "1.0_rc2"),
            ("1.2_alpha_pre", "1.2_alpha"),
            ("2.0", "2.0-r0"),
            ("2.0-r0", "2.0-r1"),
            ("1.0_rc1", "1.0"),
            ("1.0", "1.0.0"),
            ("1.0", "1.0_p1"),
            ("1.0-r1", "1.0.0"),
            ("1.0_p1", "1.0a"),
            ("1.0-r1", "1.0_p1"),
            ("1.0-r1", "1.0a"),
            ("1.0", "1.0bc"),
            ("1.9", "1.10"),
            ("1_p99999999999999999999", "1_p100000000000000000000"),
        ];
        for (a, b) in lt {
            assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare("", ""), Ordering::Equal);
        assert_eq!(
            compare("0100000000000000000000", "100000000000000000000"),
            Ordering::Equal
        );
    }

    #[test]
    fn equality_hash_and_display() {
        for (a, b) in [
            ("1-r0", "1-r"),
            ("01", "1"),
            ("1_p01", "1_p1"),
            ("1.2-r007", "1.2-r7"),
        ] {
            let (va, vb) = (Version::new_unchecked(a), Version::new_unchecked(b));
            assert_eq!(va, vb);
            assert_eq!(hash_of(&va), hash_of(&vb));
            assert_eq!(va.to_string(), a);
        }
        assert_ne!(
            Version::new_unchecked("1.0"),
            Version::new_unchecked("1.00")
        );
        let v: Version = "1.2.3_rc1-r0".parse().unwrap();
        assert_eq!(v.to_string(), "1.2.3_rc1-r0");
        assert_eq!(v.as_str(), "1.2.3_rc1-r0");
        let mut sorted: Vec<Version> = ["1.10", "1.2_rc1", "1.2", "1.2-r1", "1.2.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        sorted.sort();
        let texts: Vec<&str> = sorted.iter().map(Version::as_str).collect();
        assert_eq!(texts, ["1.2_rc1", "1.2", "1.2-r1", "1.2.0", "1.10"]);
    }

    #[test]
    fn fuzzy() {
        for (a, b) in [
            ("1.2", "1.2"),
            ("1.2", "1.2.3"),
            ("1.2", "1.2_rc1"),
            ("1.2", "1.2-r4"),
            ("1.2", "1.2a"),
            ("1.2.3", "1.2"),
            ("1", "1.99"),
        ] {
            assert!(fuzzy_match(a, b), "{a} ~ {b}");
            assert!(fuzzy_match(b, a), "{b} ~ {a}");
        }
        for (a, b) in [
            ("1.2", "1.20"),
            ("1.2", "1.3"),
            ("1", "10"),
            ("1.0", "1.00"),
            ("1.2", "1.1.9"),
        ] {
            assert!(!fuzzy_match(a, b), "{a} !~ {b}");
        }
        let (a, b): (Version, Version) = ("1.2".parse().unwrap(), "1.2.3".parse().unwrap());
        assert!(a.fuzzy_matches(&b));
    }

    #[test]
    fn validity() {
        for s in [
            "0",
            "1.0",
            "1.2.3",
            "1.2.3a",
            "1.2a3",
            "1.0_alpha",
            "1.0_alpha2_pre_p3",
            "1.0_rc1-r0",
            "2.0-r15",
            "20210530193627",
            "1.0.0_pre20191002222144-r0",
            "1.001",
            "1_git20230101",
        ] {
            assert!(is_valid(s), "{s} should be valid");
            assert!(s.parse::<Version>().is_ok(), "{s}");
        }
        for s in [
            "",
            "1.0bc",
            "1.0_foo",
            "1.0_alphax",
            "1.0-1",
            "1.0-r1a",
            "1.0-r1.2",
            "1.0_rc1a",
            "1.0a.1",
            "1.0A",
            "1.0 ",
            " 1.0",
            "1.0~git",
            "1.0-r1_p1",
            "1.0é",
        ] {
            assert!(!is_valid(s), "{s:?} should be invalid");
            match s.parse::<Version>() {
                Err(Error::BadVersion { version, .. }) => assert_eq!(version, s),
                other => panic!("{s:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn tokenizer_quirks_kept() {
        // apk-tools 2.14 validates by tokenizing from an (empty) number, so these pass
        // `apk version -c` and are kept valid here.
        for s in ["a", "v1.0", "1.", "1-r", "1-r1-r2", "_p1"] {
            assert!(is_valid(s), "{s}");
        }
    }

    #[test]
    fn invalid_strings_still_compare() {
        // apk stops at the first invalid token: an unknown suffix scores like `_rc`.
        assert_eq!(compare("1_foo", "1_alpha"), Ordering::Greater);
        assert_eq!(compare("1_foo", "1"), Ordering::Less);
        assert_eq!(compare("1.0bc", "1.0bd"), Ordering::Equal);
        assert_eq!(compare("1.0é", "1.0"), Ordering::Greater);
    }
}

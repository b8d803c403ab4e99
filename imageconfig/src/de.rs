//! Deserialization helpers that make serde read YAML the way melange's and apko's
//! yaml.v3 does.
//!
//! yaml.v3 fills a Go `string` from any scalar with the scalar's source text (so an
//! unquoted `version: 1.10` is the text `1.10`, never the float 1.1), and a YAML null
//! (`~`, `null`, or nothing at all) leaves a field at its zero value. The helpers here do
//! the same for `String`, `Option<String>`, maps of strings, and any `Default` type.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

/// A scalar's source text. Reads through `deserialize_str`, which serde_norway answers
/// with the scalar exactly as written (`1.10`, `0x1F`, `true`), never a parsed number.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            // Other data formats may hand over parsed scalars; YAML never does here.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A scalar as its source text; a YAML null is the empty string.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<Text>::deserialize(d)?
        .map(|t| t.0)
        .unwrap_or_default())
}

/// An optional scalar as its source text; a YAML null is `None`.
pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
}

/// A list of scalars as their source texts; a null list is empty and a null item is `""`.
pub fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = Option::<Vec<Option<Text>>>::deserialize(d)?.unwrap_or_default();
    Ok(items
        .into_iter()
        .map(|t| t.map(|t| t.0).unwrap_or_default())
        .collect())
}

/// A map of scalars as their source texts (`with:`, `vars:`, `environment:`): YAML
/// booleans and numbers become their text, a null value is `""`, a null map is empty.
pub fn text_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map =
        Option::<StrictMap<Option<Text>>>::deserialize(d)?.map_or_else(BTreeMap::new, |m| m.0);
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.map(|v| v.0).unwrap_or_default()))
        .collect())
}

/// Any value, with a YAML null read as the type's default (yaml.v3's zero value).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A map whose values may each be null, read as the value type's default
/// (`inputs: {foo: }` declares input `foo` with no description or default).
pub fn nullable_values<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let map = Option::<StrictMap<Option<T>>>::deserialize(d)?.map_or_else(BTreeMap::new, |m| m.0);
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A mapping with scalar keys (as text) that, like yaml.v3, rejects a key given twice
/// instead of keeping the last value.
struct StrictMap<V>(BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for StrictMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = StrictMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = BTreeMap::new();
                while let Some(Text(key)) = access.next_key()? {
                    let value = access.next_value()?;
                    if map.contains_key(&key) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    map.insert(key, value);
                }
                Ok(StrictMap(map))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

/// File permission bits as Go's `strconv.ParseInt(s, 0, 32)` reads them, which is how
/// yaml.v3 resolves an int: `0755` and `0o755` are octal, `0x1ed` hex, `493` decimal.
pub fn mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(Text(s)) = Option::<Text>::deserialize(d)? else {
        return Ok(None);
    };
    let digits = s.replace('_', "");
    let parsed = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u32::from_str_radix(hex, 16)
    } else if let Some(oct) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        u32::from_str_radix(oct, 8)
    } else if digits.len() > 1 && digits.starts_with('0') {
        u32::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse()
    };
    parsed
        .map(Some)
        .map_err(|_| de::Error::custom(format!("invalid permission bits {s:?}")))
}

/// The most nodes a document may expand to once its aliases are followed. A large
/// recipe or image file has a few thousand; `billion laughs` has 10^9.
pub const MAX_NODES: u64 = 1_000_000;

/// Walks the document counting nodes, aliases followed, and fails once there are more
/// than [`MAX_NODES`], before anything is allocated for them.
///
/// serde_norway's own repetition limit stops exponential bombs, but it counts alias
/// jumps only: k aliases to one anchor of m nodes still replay k x m nodes, which a
/// few hundred KiB of YAML can push to billions. Counting first bounds time and memory
/// of the real parse that follows.
pub fn check_expansion(text: &str) -> Result<(), serde_norway::Error> {
    let budget = Cell::new(MAX_NODES);
    for doc in serde_norway::Deserializer::from_str(text) {
        Counter(&budget).deserialize(doc)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Counter<'a>(&'a Cell<u64>);

impl Counter<'_> {
    fn take<E: de::Error>(self) -> Result<(), E> {
        match self.0.get().checked_sub(1) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "YAML aliases expand to more than {MAX_NODES} nodes; refusing a possible \
                 alias bomb (\"billion laughs\")"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Counter<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counter<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.take()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.take()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.take()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.take()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.take()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.take()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.take()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.take()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.take()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.take()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.take()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!Tag value`): count the tag, then the value.
        use de::VariantAccess;
        self.take()?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

/// Reads the first YAML document of `text` into `T`, as melange's and apko's decoders
/// do: any later documents (a trailing `---`, say) are not read.
pub fn first_document<T: DeserializeOwned>(text: &str) -> Result<T, serde_norway::Error> {
    match serde_norway::Deserializer::from_str(text).next() {
        Some(doc) => T::deserialize(doc),
        None => serde_norway::from_str(text),
    }
}

/// The first document of `text` rewritten with its YAML merge keys applied, or `None`
/// when it has none.
///
/// yaml.v3, and so melange and apko, merges `<<: *anchor` (or `<<: [*a, *b]`) into the
/// mapping that holds it, the mapping's own keys winning, then earlier sources over later
/// ones; serde reads `<<` as an ordinary key. Scalars keep their source text and their
/// plain-or-quoted form, so `version: 1.10` still reads as `1.10` and `epoch: 2` as a
/// number. The rewrite is one line of flow YAML, so positions in it mean nothing.
pub fn apply_merge_keys(text: &str) -> Result<Option<String>, serde_norway::Error> {
    if !text.contains("<<") {
        return Ok(None);
    }
    let Some(doc) = serde_norway::Deserializer::from_str(text).next() else {
        return Ok(None);
    };
    // A document this pass cannot read (a custom tag, say) is left to the real parse,
    // which reports what is wrong with it.
    let Ok(shape) = Shape::deserialize(doc) else {
        return Ok(None);
    };
    if !shape.has_merge_key() {
        return Ok(None);
    }
    let Some(doc) = serde_norway::Deserializer::from_str(text).next() else {
        return Ok(None);
    };
    let node = Guided(&shape).deserialize(doc)?;
    let node = node
        .merged()
        .map_err(<serde_norway::Error as de::Error>::custom)?;
    let mut out = String::with_capacity(text.len());
    node.emit(&mut out);
    Ok(Some(out))
}

/// A node's kind as yaml.v3 would resolve it, found in a first pass over the document.
enum Shape {
    Null,
    /// A plain scalar that resolves to a bool or a number.
    Typed,
    /// A string: quoted, or plain and not a bool, number or null.
    Str(String),
    Seq(Vec<Shape>),
    Map(Vec<(Shape, Shape)>),
}

impl Shape {
    fn is_merge_key(&self) -> bool {
        matches!(self, Shape::Str(s) if s == "<<")
    }

    fn has_merge_key(&self) -> bool {
        match self {
            Shape::Seq(items) => items.iter().any(Shape::has_merge_key),
            Shape::Map(entries) => entries
                .iter()
                .any(|(k, v)| k.is_merge_key() || k.has_merge_key() || v.has_merge_key()),
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Typed)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Typed)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Typed)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Shape, E> {
                Ok(Shape::Typed)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Shape, E> {
                Ok(Shape::Typed)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Typed)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Shape, E> {
                Ok(Shape::Str(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
                Ok(Shape::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
                Ok(Shape::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
                Shape::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Shape::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Shape::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A node with its scalars' source text, read in a second pass that [`Shape`] guides.
#[derive(Clone, PartialEq)]
enum Node {
    Null,
    /// A plain bool or number, kept as written (`1.10`, `0755`, `true`).
    Typed(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

struct Guided<'a>(&'a Shape);

impl<'de> DeserializeSeed<'de> for Guided<'_> {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        match self.0 {
            Shape::Null => {
                de::IgnoredAny::deserialize(d)?;
                Ok(Node::Null)
            }
            Shape::Typed => Ok(Node::Typed(Text::deserialize(d)?.0)),
            Shape::Str(_) => Ok(Node::Str(Text::deserialize(d)?.0)),
            Shape::Seq(items) => d.deserialize_seq(GuidedSeq(items)),
            Shape::Map(entries) => d.deserialize_map(GuidedMap(entries)),
        }
    }
}

struct GuidedSeq<'a>(&'a [Shape]);

impl<'de> Visitor<'de> for GuidedSeq<'_> {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        for shape in self.0 {
            match seq.next_element_seed(Guided(shape))? {
                Some(item) => items.push(item),
                None => return Err(de::Error::custom("the document changed between passes")),
            }
        }
        Ok(Node::Seq(items))
    }
}

struct GuidedMap<'a>(&'a [(Shape, Shape)]);

impl<'de> Visitor<'de> for GuidedMap<'_> {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        for (key, value) in self.0 {
            let Some(k) = map.next_key_seed(Guided(key))? else {
                return Err(de::Error::custom("the document changed between passes"));
            };
            entries.push((k, map.next_value_seed(Guided(value))?));
        }
        Ok(Node::Map(entries))
    }
}

impl Node {
    fn is_merge_key(&self) -> bool {
        matches!(self, Node::Str(s) if s == "<<")
    }

    /// The node with every merge key applied, innermost first.
    fn merged(self) -> Result<Node, String> {
        match self {
            Node::Seq(items) => Ok(Node::Seq(
                items
                    .into_iter()
                    .map(Node::merged)
                    .collect::<Result<_, _>>()?,
            )),
            Node::Map(entries) => {
                let mut own: Vec<(Node, Node)> = Vec::new();
                let mut sources: Vec<Node> = Vec::new();
                for (k, v) in entries {
                    let v = v.merged()?;
                    if k.is_merge_key() {
                        match v {
                            Node::Map(_) => sources.push(v),
                            Node::Seq(items) => {
                                for item in items {
                                    if !matches!(item, Node::Map(_)) {
                                        return Err("a merge key (<<) takes a mapping or a \
                                                    list of mappings"
                                            .to_owned());
                                    }
                                    sources.push(item);
                                }
                            }
                            _ => {
                                return Err("a merge key (<<) takes a mapping or a list of \
                                            mappings"
                                    .to_owned())
                            }
                        }
                    } else {
                        own.push((k.merged()?, v));
                    }
                }
                for source in sources {
                    let Node::Map(merged) = source else {
                        continue;
                    };
                    for (k, v) in merged {
                        if !own.iter().any(|(have, _)| *have == k) {
                            own.push((k, v));
                        }
                    }
                }
                Ok(Node::Map(own))
            }
            other => Ok(other),
        }
    }

    /// Writes the node as flow YAML.
    fn emit(&self, out: &mut String) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Typed(text) => out.push_str(text),
            Node::Str(s) => quote(s, out),
            Node::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.emit(out);
                }
                out.push(']');
            }
            Node::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.emit(out);
                    out.push_str(": ");
                    v.emit(out);
                }
                out.push('}');
            }
        }
    }
}

/// `s` as a YAML double-quoted scalar.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{85}' || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "text")]
        v: String,
        #[serde(default, deserialize_with = "text_map")]
        m: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "mode")]
        p: Option<u32>,
    }

    fn t(yaml: &str) -> T {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn scalars_keep_their_source_text() {
        assert_eq!(t("v: 1.10").v, "1.10");
        assert_eq!(t("v: 2").v, "2");
        assert_eq!(t("v: 1.0e3").v, "1.0e3");
        assert_eq!(t("v: true").v, "true");
        assert_eq!(t("v: '007'").v, "007");
        assert_eq!(t("v: ~").v, "");
        assert_eq!(t("v:").v, "");
        let m = t("v: x\nm: {a: true, b: 1.50, c: , d: ~, 1.0: k}").m;
        let dup = serde_norway::from_str::<T>("v: x\nm: {a: 1, a: 2}");
        assert!(dup
            .err()
            .unwrap()
            .to_string()
            .contains("duplicate key \"a\""));
        assert_eq!(m["a"], "true");
        assert_eq!(m["b"], "1.50");
        assert_eq!(m["c"], "");
        assert_eq!(m["d"], "");
        assert_eq!(m["1.0"], "k");
        assert!(t("v: x\nm:").m.is_empty());
    }

    #[test]
    fn non_scalars_are_rejected_for_text() {
        assert!(serde_norway::from_str::<T>("v: [1]").is_err());
        assert!(serde_norway::from_str::<T>("v: {a: 1}").is_err());
    }

    #[test]
    fn modes_read_like_go_base_zero_ints() {
        assert_eq!(t("v: x\np: 0755").p, Some(0o755));
        assert_eq!(t("v: x\np: 0o644").p, Some(0o644));
        assert_eq!(t("v: x\np: 493").p, Some(493));
        assert_eq!(t("v: x\np: 0x1ed").p, Some(0o755));
        assert!(serde_norway::from_str::<T>("v: x\np: rwx").is_err());
    }

    #[test]
    fn merge_keys_are_applied_keeping_scalar_text_and_form() {
        assert_eq!(apply_merge_keys("v: 1\nm: {a: b}\n").unwrap(), None);
        // `<<` only as text, never as a key: nothing to rewrite.
        assert_eq!(apply_merge_keys("v: '<<'\n").unwrap(), None);
        let yaml = "base: &b {v: 1.10, q: '1.10', t: true, n: ~, s: \"a\\\"b\\n\"}\n\
                    x:\n  <<: *b\n  t: false\n";
        let merged = apply_merge_keys(yaml).unwrap().unwrap();
        #[derive(Deserialize)]
        struct X {
            #[serde(deserialize_with = "text")]
            v: String,
            #[serde(deserialize_with = "text")]
            q: String,
            t: bool,
            #[serde(deserialize_with = "text")]
            n: String,
            s: String,
        }
        #[derive(Deserialize)]
        struct Doc {
            x: X,
        }
        let doc: Doc = first_document(&merged).unwrap();
        assert_eq!(doc.x.v, "1.10");
        assert_eq!(doc.x.q, "1.10");
        assert!(!doc.x.t);
        assert_eq!(doc.x.n, "");
        assert_eq!(doc.x.s, "a\"b\n");
        // A quoted "1" stays a string: it does not become a number on the way.
        let merged = apply_merge_keys("a: &a {n: '1'}\nb: {<<: *a}\n")
            .unwrap()
            .unwrap();
        assert!(merged.contains("\"n\": \"1\""), "{merged}");
    }

    #[test]
    fn expansion_budget_counts_followed_aliases() {
        check_expansion("a: &a [1, 2]\nb: [*a, *a]\n").unwrap();
        // 2000 aliases to a 1000-item list: 2 million nodes, over budget.
        let mut doc = String::from("x: &x [");
        doc.push_str(&vec!["1"; 1000].join(","));
        doc.push_str("]\ny: [");
        doc.push_str(&vec!["*x"; 2000].join(","));
        doc.push_str("]\n");
        let err = check_expansion(&doc).unwrap_err().to_string();
        assert!(err.contains("alias bomb"), "{err}");
    }
}

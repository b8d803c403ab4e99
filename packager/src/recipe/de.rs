//! Deserialization helpers that make serde read YAML the way melange's yaml.v3 does.
//!
//! yaml.v3 fills a Go `string` from any scalar with the scalar's source text (so an
//! unquoted `version: 1.10` is the text `1.10`, never the float 1.1), and a YAML null
//! (`~`, `null`, or nothing at all) leaves a field at its zero value. The helpers here do
//! the same for `String`, `Option<String>`, maps of strings, and any `Default` type.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
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
/// recipe has a few thousand; `billion laughs` has 10^9.
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

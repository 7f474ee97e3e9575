//! A YAML mapping read as its entries in file order, with any key given twice kept twice,
//! so the web config can refuse a duplicate by name (serde's maps keep the last value
//! silently; the exporter toolkit's strict YAML refuses it). Owns the reading only; what
//! counts as the same key is the caller's.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// The entries of a mapping, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entries<V>(pub Vec<(String, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> Entries<V> {
    /// The first key that repeats an earlier one, `same` deciding what is the same key.
    pub fn first_duplicate(&self, same: impl Fn(&str, &str) -> bool) -> Option<&str> {
        self.0.iter().enumerate().find_map(|(i, (key, _))| {
            self.0[..i]
                .iter()
                .any(|(earlier, _)| same(earlier, key))
                .then_some(key.as_str())
        })
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_kept_and_found() {
        let entries: Entries<String> =
            serde_norway::from_str("a: 1\nB: 2\nb: 3\na: 4\n").expect("a mapping");
        assert_eq!(entries.0.len(), 4);
        assert_eq!(entries.first_duplicate(|x, y| x == y), Some("a"));
        assert_eq!(
            entries.first_duplicate(|x, y| x.eq_ignore_ascii_case(y)),
            Some("b")
        );
        let unique: Entries<String> = serde_norway::from_str("a: 1\nb: 2\n").expect("a mapping");
        assert_eq!(unique.first_duplicate(|x, y| x == y), None);
        assert!(serde_norway::from_str::<Entries<String>>("[1]").is_err());
    }
}

//! The spec as written: serde types that keep the spans of what is checked
//! after parsing, and refuse unknown keys.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::{Baseline, StepNetwork};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub baseline: Baseline,
    pub ca_certs_from: Option<Spanned<String>>,
    pub tzdata_from: Option<Spanned<String>>,
    #[serde(default)]
    pub step: Vec<RawStep>,
    #[serde(default)]
    pub layer: Vec<RawLayer>,
    #[serde(default)]
    pub config: RawConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: Spanned<String>,
    pub image: Spanned<String>,
    pub run: Spanned<String>,
    #[serde(default)]
    pub inputs: Entries<Spanned<String>>,
    #[serde(default)]
    pub outputs: Vec<Spanned<String>>,
    #[serde(default)]
    pub network: StepNetwork,
    #[serde(default)]
    pub env: Entries<String>,
    pub workdir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayer {
    pub name: Spanned<String>,
    #[serde(default)]
    pub files: Vec<Spanned<RawFile>>,
    pub image: Option<Spanned<String>>,
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub closure: bool,
    pub mode: Option<Spanned<ModeValue>>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// One entry of a layer's `files`; which keys go together is checked later,
/// where the messages can say why.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub step: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
}

/// `mode` as written: a TOML integer is taken only to say it should be quoted
/// (`mode = 755` would silently be decimal).
pub(super) enum ModeValue {
    Text(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for ModeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;

        impl Visitor<'_> for ModeVisitor {
            type Value = ModeValue;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted octal string such as \"0755\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ModeValue, E> {
                Ok(ModeValue::Text(v.to_owned()))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ModeValue, E> {
                Ok(ModeValue::Number(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ModeValue, E> {
                Ok(ModeValue::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }

        deserializer.deserialize_any(ModeVisitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Entries<String>,
    pub user: Option<Spanned<String>>,
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub ports: Vec<Spanned<String>>,
    #[serde(default)]
    pub volumes: Vec<Spanned<String>>,
    #[serde(default)]
    pub labels: Entries<String>,
    pub stop_signal: Option<Spanned<String>>,
}

/// A TOML table kept as a list, in the order written (toml's
/// `preserve_order`), with the span of each key.
pub(super) struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

//! Secrets in configuration: the control token and `[job.secret_env]`
//! values. A [`Secret`] cannot be printed: its `Debug` and its
//! serialization (what `check-config` shows) say `<redacted>`, and it has no
//! `Display`, so neither a log line, a reload's comparison of sections, nor
//! `check-config` can show one. The value is read with [`Secret::expose`],
//! at the few places that use it (the token comparison, the job's
//! environment).

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// What a secret shows instead of its value.
pub const REDACTED: &str = "<redacted>";

/// A configured secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The value itself: only for comparing or handing to a job.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        // Anything but a string is refused without echoing it: serde's own
        // "invalid type: integer `1234...`" would print the value.
        struct V;
        const NOT_A_STRING: &str = "a secret must be a quoted string (its value is not shown)";
        impl<'v> de::Visitor<'v> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_map<A: de::MapAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(de::Error::custom(NOT_A_STRING))
            }
            fn visit_seq<A: de::SeqAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(de::Error::custom(NOT_A_STRING))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_its_value() {
        let s = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2");
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_refused_without_echo() {
        #[derive(Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            token: Secret,
        }
        // As the configuration is read: text to a table, then the table.
        let table: toml::Table = "token = 98765432109876543\n".parse().unwrap();
        let e = T::deserialize(table).unwrap_err().to_string();
        assert!(!e.contains("98765432109876543"), "{e}");
        assert!(e.contains("quoted string"), "{e}");
    }
}

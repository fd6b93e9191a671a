//! A config field that takes one string or a list of them (`tags = "v1"` or
//! `tags = ["v1", "blue"]`; `services = "pay-*"` or a list of globs).

use serde::{Deserialize, Deserializer};

/// `deserialize_with` for a `Vec<String>` written as one string or a list.
pub fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(deserializer) {
        Ok(OneOrMany::One(one)) => Ok(vec![one]),
        Ok(OneOrMany::Many(many)) => Ok(many),
        Err(_) => Err(serde::de::Error::custom(
            "expected a string or a list of strings",
        )),
    }
}

//! Durations in serialized reports are seconds, as a number: what people and tools (jq, a
//! dashboard) read, rather than serde's `{ "secs": .., "nanos": .. }`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(duration.as_secs_f64())
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    from_seconds(f64::deserialize(d)?)
}

fn from_seconds<E: serde::de::Error>(seconds: f64) -> Result<Duration, E> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(E::custom(format!(
            "a duration in seconds must be a finite number ≥ 0, not {seconds}"
        )));
    }
    // Rounded to the nanosecond, so that a report read back equals the one written.
    Ok(Duration::from_nanos((seconds * 1e9).round() as u64))
}

/// The same for `Option<Duration>` (`null` when absent).
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => s.serialize_some(&duration.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(super::from_seconds)
            .transpose()
    }
}

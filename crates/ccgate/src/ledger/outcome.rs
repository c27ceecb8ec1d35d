//! How a request ended: the `outcome` column.

use super::LedgerError;
use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};
use std::str::FromStr;

/// Stored as text (see [`Outcome::as_str`]), so that rows written before this type existed read back and the
/// column stays plain `TEXT` on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The default only serves `Record { .., ..Default::default() }`: the settlement always sets the real one.
    #[default]
    Ok,
    /// Stream ended without `message_stop`/`message_delta`; usage partly estimated.
    Partial,
    /// The tenant hung up; the upstream was read to its end (or the drain deadline) for the usage.
    ClientAborted,
    UpstreamError,
    /// CCGate refused the request before any upstream saw it.
    Rejected,
    /// The gateway stopped while the request was in flight: cut at the end of the shutdown grace period (with
    /// the usage seen so far), or found in the crash journal at the next start (with what the journal knew).
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Partial,
        Outcome::ClientAborted,
        Outcome::UpstreamError,
        Outcome::Rejected,
        Outcome::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::ClientAborted => "client_aborted",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Rejected => "rejected",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<Outcome, LedgerError> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| LedgerError::UnknownOutcome(s.to_owned()))
    }
}

// By hand rather than `#[derive(sqlx::Type)]`: the derive maps an enum to a named PostgreSQL enum type, while
// these impls keep it a string on whichever backend `str` is a string.
impl<DB: Database> Type<DB> for Outcome
where
    str: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Outcome
where
    &'q str: Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <&'q str as Encode<'q, DB>>::encode(self.as_str(), buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Outcome
where
    &'r str: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Outcome, BoxDynError> {
        Ok(<&'r str as Decode<'r, DB>>::decode(value)?.parse()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_strings_are_unchanged_and_parse_back() {
        let stored: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            stored,
            [
                "ok",
                "partial",
                "client_aborted",
                "upstream_error",
                "rejected",
                "interrupted"
            ]
        );
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert!("OK".parse::<Outcome>().is_err());
    }
}

//! What an alert is: its kind (what a hook's `events` list names), and the message built for it.

use serde::Serialize;

/// The events a webhook can ask for (`server.json` `alerts[].events`); a hook without a list gets all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A tenant's spend crossed 80 % of a USD limit in the current window.
    BudgetWarning,
    /// A tenant's spend reached 100 % of a USD limit: its requests are refused until the window resets.
    BudgetExceeded,
    /// An upstream left rotation: failed its health check, or cooled down after connection failures/5xx.
    UpstreamUnhealthy,
    /// An upstream that was unhealthy (or whose key was rejected) served or passed a health check again.
    UpstreamRecovered,
    /// An upstream answered 401/403 to our key.
    UpstreamKeyRejected,
    /// The ledger cannot write rows (they wait in memory and in the crash journal).
    LedgerWriteFailed,
    /// The ledger's database cannot be reached at all (a PostgreSQL server down, a pool that cannot connect).
    StoreOutage,
    /// Writes to the ledger succeed again after a failure or an outage.
    LedgerRecovered,
    /// A trust check found an upstream suspect (docs/trust.md); the evidence is in the details.
    UpstreamSuspect,
    /// An upstream's balance (`upstreams[].balance`) ran low: below `lowUsd`, or fewer than `lowDays` left.
    UpstreamBalanceLow,
    /// `ccgate alerts test`.
    Test,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::BudgetWarning,
        EventKind::BudgetExceeded,
        EventKind::UpstreamUnhealthy,
        EventKind::UpstreamRecovered,
        EventKind::UpstreamKeyRejected,
        EventKind::LedgerWriteFailed,
        EventKind::StoreOutage,
        EventKind::LedgerRecovered,
        EventKind::UpstreamSuspect,
        EventKind::UpstreamBalanceLow,
        EventKind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BudgetWarning => "budget_warning",
            EventKind::BudgetExceeded => "budget_exceeded",
            EventKind::UpstreamUnhealthy => "upstream_unhealthy",
            EventKind::UpstreamRecovered => "upstream_recovered",
            EventKind::UpstreamKeyRejected => "upstream_key_rejected",
            EventKind::LedgerWriteFailed => "ledger_write_failed",
            EventKind::StoreOutage => "store_outage",
            EventKind::LedgerRecovered => "ledger_recovered",
            EventKind::UpstreamSuspect => "upstream_suspect",
            EventKind::UpstreamBalanceLow => "upstream_balance_low",
            EventKind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn severity(self) -> Severity {
        match self {
            EventKind::BudgetWarning
            | EventKind::UpstreamSuspect
            | EventKind::UpstreamBalanceLow => Severity::Warning,
            EventKind::BudgetExceeded
            | EventKind::UpstreamUnhealthy
            | EventKind::UpstreamKeyRejected
            | EventKind::LedgerWriteFailed
            | EventKind::StoreOutage => Severity::Critical,
            EventKind::UpstreamRecovered | EventKind::LedgerRecovered | EventKind::Test => {
                Severity::Info
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    fn mark(self) -> &'static str {
        match self {
            Severity::Info => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "ALERT",
        }
    }
}

/// One event, as every format renders it. Never holds a key: texts that come from upstreams are redacted before
/// an alert is built (see `alerts::redact_keys`).
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Process-unique, increasing.
    pub id: u64,
    pub event: EventKind,
    pub severity: Severity,
    /// RFC 3339.
    pub at: String,
    /// One line, e.g. `Tenant alice reached 80% of its daily budget`.
    pub title: String,
    /// The details a person needs to act.
    pub text: String,
    /// The same facts as fields (tenant, upstream, window, percent, …), for the generic JSON format.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Alert {
    pub fn new(event: EventKind, title: String, text: String) -> Alert {
        Alert {
            id: 0,
            event,
            severity: event.severity(),
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            title,
            text,
            details: serde_json::Map::new(),
        }
    }

    pub fn detail(mut self, name: &str, value: impl Into<serde_json::Value>) -> Alert {
        self.details.insert(name.to_owned(), value.into());
        self
    }

    /// The plain-text message of the chat formats. Starts with `[CCGate]`: DingTalk and Feishu robots protected
    /// by a keyword accept the message when the keyword is `CCGate`.
    pub fn plain_text(&self) -> String {
        format!(
            "[CCGate] {}: {}\n{}\n({}, {})",
            self.severity.mark(),
            self.title,
            self.text,
            self.event.as_str(),
            self.at
        )
    }
}

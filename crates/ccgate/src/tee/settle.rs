//! The end of every request: price the usage, settle the tenant's reservation, record the upstream's health
//! and append the ledger record. [`Settlement`] is created once the tenant is known and travels with the request
//! (into the response body for streams). If it is dropped without being finished (a bug or a panic), its `Drop`
//! still writes a record, so no request that reached an upstream goes unrecorded.

use crate::forward::InFlight;
use crate::ledger::journal::{Hold, Kind};
use crate::ledger::{Outcome as RecordOutcome, Record};
use crate::policy::budget::{day_key, local_day, Admission};
use crate::routing::health::{FailureKind, Outcome};
use crate::state::Gateway;
use ccgate_meter::pricing::PriceTable;
use ccgate_meter::Usage;
use chrono::Utc;
use std::sync::Arc;
use std::time::Instant;

pub struct Settlement {
    gw: Arc<Gateway>,
    pricing: Arc<PriceTable>,
    tz: chrono_tz::Tz,
    pub record: Record,
    started: Instant,
    admission: Option<Admission>,
    /// Admissions under the tenant's `limits.models` entries matching the model.
    model_admissions: Vec<(String, Admission)>,
    in_flight: Option<InFlight>,
    price_multiplier_milli: u32,
    /// The Claude model id the price is looked up by: the resolved model before any per-upstream rename (the
    /// tenant-facing alias on `/openai`, or a reseller's own id, is not a price key).
    pub price_model: String,
    done: bool,
    /// Keeps this request's latest crash-journal line on disk until its end is journaled.
    journal_hold: Option<Hold>,
    /// What the request tells about its upstream, for the trust scorecard (`crate::trust`).
    pub trust: crate::trust::observe::Observation,
}

/// Error class of a request cut at the end of the shutdown grace period.
pub const SHUTDOWN_CLASS: &str = "gateway_shutdown";

/// How the request ended, for the `outcome` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Ok,
    /// Stream ended without `message_stop`/`message_delta`; usage partly estimated.
    Partial,
    /// The tenant hung up; the upstream was read to its end (or the drain deadline) for the usage.
    ClientAborted,
    UpstreamError,
    /// CCGate refused the request before any upstream saw it.
    Rejected,
    /// The gateway was stopping: the stream was cut at the end of the shutdown grace period.
    Interrupted,
}

impl From<Ending> for RecordOutcome {
    fn from(e: Ending) -> RecordOutcome {
        match e {
            Ending::Ok => RecordOutcome::Ok,
            Ending::Partial => RecordOutcome::Partial,
            Ending::ClientAborted => RecordOutcome::ClientAborted,
            Ending::UpstreamError => RecordOutcome::UpstreamError,
            Ending::Rejected => RecordOutcome::Rejected,
            Ending::Interrupted => RecordOutcome::Interrupted,
        }
    }
}

impl Settlement {
    pub fn new(
        gw: Arc<Gateway>,
        pricing: Arc<PriceTable>,
        tz: chrono_tz::Tz,
        mut record: Record,
        started: Instant,
    ) -> Self {
        record.instance_id = gw.ledger.instance_id().map(str::to_owned);
        crate::telemetry::metrics::admitted(record.protocol);
        Settlement {
            gw,
            pricing,
            tz,
            record,
            started,
            admission: None,
            model_admissions: Vec::new(),
            in_flight: None,
            price_multiplier_milli: 1000,
            price_model: String::new(),
            done: false,
            journal_hold: None,
            trust: Default::default(),
        }
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gw
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn set_admission(&mut self, a: Admission, per_model: Vec<(String, Admission)>) {
        self.admission = Some(a);
        self.model_admissions = per_model;
    }

    /// The request is about to go to an upstream: journal it now, so that a crash while an upstream works on it,
    /// before any answer came back, still records it (as interrupted, without usage) instead of losing a request
    /// the upstream may bill. [`Self::set_upstream`] journals it again once an upstream answered.
    pub fn journal_forwarding(&mut self) {
        let now = Utc::now();
        self.record.ts_ms = now.timestamp_millis();
        self.record.day = day_key(local_day(self.tz, now));
        self.journal_hold = self.gw.ledger.journal_in_flight(Kind::Start, &self.record);
    }

    /// The upstream that is serving the request; its in-flight slot is held until the end.
    pub fn set_upstream(
        &mut self,
        in_flight: Option<InFlight>,
        upstream_id: &str,
        multiplier_milli: u32,
        upstream_model: &str,
    ) {
        self.in_flight = in_flight;
        self.record.upstream_id = Some(upstream_id.to_string());
        self.record.upstream_model = Some(upstream_model.to_string());
        self.price_multiplier_milli = multiplier_milli;
        // From here an upstream may bill us: journal the request, so a crash before its end still records it.
        let now = Utc::now();
        self.record.ts_ms = now.timestamp_millis();
        self.record.day = day_key(local_day(self.tz, now));
        self.journal_hold = self.gw.ledger.journal_in_flight(Kind::Start, &self.record);
    }

    /// The upstream reported its first usage (`message_start`: the whole input side): journal it priced, so a
    /// crash before the end still charges what the upstream said.
    pub fn note_progress(&mut self, usage: &Usage) {
        let mut rec = self.record.clone();
        self.fill_usage(&mut rec, usage);
        if let Some(hold) = self.gw.ledger.journal_in_flight(Kind::Progress, &rec) {
            self.journal_hold = Some(hold);
        }
    }

    pub fn set_ttft(&mut self) {
        if self.record.ttft_ms.is_none() {
            let ttft = self.started.elapsed();
            self.record.ttft_ms = Some(ttft.as_millis() as i64);
            if let Some(f) = &self.in_flight {
                f.upstream().state.record_ttft(ttft);
            }
        }
    }

    /// Finishes the request: prices `usage`, settles the budget, appends the record.
    pub fn finish(mut self, status: u16, usage: &Usage, ending: Ending, error_class: Option<&str>) {
        self.complete(status, usage, ending, error_class);
    }

    /// A mid-stream upstream failure counts against the upstream's health too.
    pub fn note_upstream_failure(&self, reason: &str) {
        if let Some(f) = &self.in_flight {
            f.upstream().state.record(&Outcome::Failure {
                reason: reason.to_string(),
                retry_after: None,
                kind: FailureKind::ServerError,
            });
        }
    }

    fn complete(&mut self, status: u16, usage: &Usage, ending: Ending, error_class: Option<&str>) {
        if self.done {
            return;
        }
        self.done = true;
        let now = Utc::now();
        let mut r = std::mem::take(&mut self.record);
        r.ts_ms = now.timestamp_millis();
        r.day = day_key(local_day(self.tz, now));
        r.status = status;
        r.outcome = ending.into();
        r.error_class = error_class.map(str::to_owned);
        if usage.out_of_range && r.error_class.is_none() {
            r.error_class = Some(USAGE_OUT_OF_RANGE.to_owned());
        }
        r.latency_ms = self.started.elapsed().as_millis() as i64;
        self.fill_usage(&mut r, usage);
        let tokens = crate::policy::budget::tpm_tokens(usage);
        for (pattern, a) in std::mem::take(&mut self.model_admissions) {
            let settled = a.settle_at(r.cost_nanousd, tokens, now);
            crate::alerts::spend_settled(&self.gw, &r.tenant_id, Some(&pattern), &settled);
        }
        if let Some(a) = self.admission.take() {
            let settled = a.settle_at(r.cost_nanousd, tokens, now);
            crate::alerts::spend_settled(&self.gw, &r.tenant_id, None, &settled);
        }
        self.in_flight.take();
        crate::telemetry::metrics::settled(r.protocol);
        crate::telemetry::on_record(&r);
        let lost = self.cache_lost_nanousd(&r);
        self.gw
            .trust
            .observe(&r, &self.price_model, &self.trust, lost);
        self.gw.ledger.record(r);
        // The end is journaled: the start line may go.
        self.journal_hold = None;
    }

    /// What a follow-up turn that asked for caching and read nothing from the cache cost beyond a cache read:
    /// cache reads are billed at a tenth of the input price, so 90 % of its fresh input (priced as the upstream
    /// charges). 0 when the request does not qualify.
    fn cache_lost_nanousd(&self, r: &Record) -> i64 {
        if !self.trust.request.cache_control || r.cache_read_tokens > 0 || r.input_tokens <= 0 {
            return 0;
        }
        let fresh = Usage {
            input_tokens: u64::try_from(r.input_tokens).unwrap_or(0),
            ..Default::default()
        };
        self.pricing.cost(&self.price_model, &fresh).map_or(0, |c| {
            i64::try_from(c.total.0 as i128 * 9 * self.price_multiplier_milli as i128 / 10_000)
                .unwrap_or(i64::MAX)
        })
    }

    /// Copies the usage into the record and prices it. Counts are already clamped to `MAX_TOKENS`
    /// (`ccgate-meter`'s `wire.rs`), so they fit an `i64`; the conversion still saturates rather than wraps.
    fn fill_usage(&self, r: &mut Record, usage: &Usage) {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        r.input_tokens = count(usage.input_tokens);
        r.cache_write_5m_tokens = count(usage.cache_write_5m_tokens);
        r.cache_write_1h_tokens = count(usage.cache_write_1h_tokens);
        r.cache_read_tokens = count(usage.cache_read_input_tokens);
        r.output_tokens = count(usage.output_tokens);
        r.thinking_tokens = usage.thinking_tokens.map(count);
        r.web_search_requests = count(usage.web_search_requests);
        r.price_version = self.pricing.version().to_string();
        let has_tokens = usage.input_tokens
            + usage.output_tokens
            + usage.cache_creation_input_tokens
            + usage.cache_read_input_tokens
            > 0;
        match self.pricing.cost(&self.price_model, usage) {
            Some(cost) if r.billable => {
                let nano = cost.total.0;
                r.cost_nanousd = nano;
                r.upstream_cost_nanousd = i64::try_from(
                    (nano as i128 * self.price_multiplier_milli as i128 + 500) / 1000,
                )
                .unwrap_or(i64::MAX);
                r.priced = true;
            }
            Some(_) => r.priced = true,
            None => {
                r.priced = !has_tokens;
                if has_tokens && r.billable && r.outcome != RecordOutcome::Interrupted {
                    tracing::warn!(model = %self.price_model, "no price for model; usage recorded as unpriced (cost unknown, not $0)");
                }
            }
        }
    }
}

/// Error class of a row whose usage the upstream reported as nonsense (see `Usage::out_of_range`).
pub const USAGE_OUT_OF_RANGE: &str = "usage_out_of_range";

impl Drop for Settlement {
    fn drop(&mut self) {
        if !self.done {
            if self.gw.cut.is_cancelled() {
                // Dropped at the end of the shutdown grace period, still waiting for the upstream's answer.
                self.complete(
                    503,
                    &Usage::default(),
                    Ending::Interrupted,
                    Some(SHUTDOWN_CLASS),
                );
                return;
            }
            tracing::error!(request_id = %self.record.request_id, "request ended without settlement; recording it as an error");
            self.complete(
                500,
                &Usage::default(),
                Ending::UpstreamError,
                Some("unsettled"),
            );
        }
    }
}

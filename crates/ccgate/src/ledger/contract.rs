//! The store contract: every test here runs against each backend ([`Store`] behind `Arc<dyn Store>`), so SQLite
//! and PostgreSQL answer the same way. The backends' test modules provide a [`Fixture`]; the PostgreSQL one
//! skips (returns early, with the reason printed) where no server answers.
//!
//! `cargo nextest run -p ccgate contract` runs both sides.

use super::store::RefusalRow;
use super::{Outcome, Record, Store, TenantSpend, UsageQuery, UsageTotals};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// A store under test, plus backend-specific access for what the trait does not expose.
pub(super) struct Fixture {
    pub store: Arc<dyn Store>,
    pub raw: Box<dyn Raw>,
    /// Removes the database (file or schema) when the test ends, passed or failed.
    pub _guard: Box<dyn Send>,
}

/// What a test needs beyond the trait; the SQL lives in each backend's module.
pub(super) trait Raw: Send + Sync {
    /// Every `requests` row, by `ts_ms`.
    fn stored_rows(&self) -> BoxFuture<'_, Vec<StoredRow>>;
    /// Makes the database refuse rows with a negative `ts_ms`: a failure inside a batch's transaction.
    fn refuse_negative_timestamps(&self) -> BoxFuture<'_, ()>;
}

/// A `requests` row as stored, in the types both backends decode.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct StoredRow {
    pub ts_ms: i64,
    pub day: String,
    pub request_id: String,
    pub tenant_id: String,
    pub upstream_id: Option<String>,
    pub upstream_request_id: Option<String>,
    pub protocol: String,
    pub endpoint: String,
    pub model: String,
    pub upstream_model: Option<String>,
    pub stream: bool,
    pub status: i32,
    pub outcome: Outcome,
    pub error_class: Option<String>,
    pub input_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub cache_read_tokens: i64,
    pub output_tokens: i64,
    pub thinking_tokens: Option<i64>,
    pub web_search_requests: i64,
    pub cost_nanousd: i64,
    pub upstream_cost_nanousd: i64,
    pub priced: bool,
    pub price_version: String,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub session_id: Option<String>,
    pub billable: bool,
    pub instance_id: Option<String>,
    pub client_request_id: Option<String>,
    pub imported: bool,
    pub original_cost_nanousd: Option<i64>,
}

/// Generates one `#[tokio::test]` per backend for each contract test below.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = crate::ledger::sqlite::tests::fixture().await;
                    super::$name(&f).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(f) = crate::ledger::postgres::tests::fixture().await else {
                        return;
                    };
                    super::$name(&f).await;
                }
            )*
        }
    };
}

contract!(
    batches_round_trip_into_rollups,
    every_field_is_stored_in_its_column,
    a_failed_batch_stores_nothing_and_the_next_one_is_stored,
    the_journal_mark_only_rises,
    stored_request_ids_finds_exactly_the_stored_ones,
    usage_filters_and_orders_like_the_api_expects,
    sums_saturate_instead_of_failing,
    delete_before_keeps_later_days,
    refusals_are_counted_per_tenant_and_reason_within_the_days,
    console_tenants_are_added_replaced_whole_and_removed,
    the_request_log_pages_newest_first_with_filters,
    upstream_overrides_are_set_whole_and_cleared,
    trust_counters_add_up_and_flags_open_once,
    trust_samples_keep_the_newest_of_every_instance,
    the_canary_slot_is_claimed_once_per_interval_and_its_state_shared,
    admin_sessions_are_found_by_hash_ended_and_purged_when_expired,
    hourly_rollups_sum_per_hour_tenant_model_and_upstream,
    recent_spend_is_summed_per_tenant_model_and_bucket,
);

/// A billable, priced record of one tenant and day, for the store tests of either backend.
pub(super) fn rec(tenant: &str, cost: i64, outcome: Outcome) -> Record {
    Record {
        // Every request has its own id (the PostgreSQL store skips a row whose id it already holds).
        request_id: uuid::Uuid::now_v7().to_string(),
        day: "2026-11-27".into(),
        tenant_id: tenant.into(),
        model: "m".into(),
        outcome,
        status: 200,
        cost_nanousd: cost,
        input_tokens: 10,
        cache_write_5m_tokens: 1,
        cache_write_1h_tokens: 2,
        priced: true,
        billable: true,
        ..Default::default()
    }
}

async fn batches_round_trip_into_rollups(f: &Fixture) {
    let store = &f.store;
    let mut rows: Vec<Record> = (0..37)
        .map(|i| rec(if i % 2 == 0 { "a" } else { "b" }, 5, Outcome::Ok))
        .collect();
    rows.push(rec("a", 1000, Outcome::Rejected));
    store.insert_batch(&rows, None).await.unwrap();
    assert_eq!(store.count_requests().await.unwrap(), 38);
    let mut spend = store.spend_by_tenant(None).await.unwrap();
    spend.sort();
    let spent = |t: &str, c| TenantSpend {
        tenant_id: t.into(),
        cost_nanousd: c,
    };
    assert_eq!(spend, vec![spent("a", 19 * 5), spent("b", 18 * 5)]);
    let report = store
        .usage(&UsageQuery {
            tenant_id: Some("a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(report.rows.len(), 1);
    assert_eq!(
        report.rows[0].totals,
        UsageTotals {
            requests: 19,
            input_tokens: 190,
            cache_creation_input_tokens: 19 * 3,
            cache_write_5m_tokens: 19,
            cache_write_1h_tokens: 19 * 2,
            cost_nanousd: 19 * 5,
            ..Default::default()
        }
    );
    assert_eq!(store.peak_cost("a", "2026-11-01").await.unwrap(), Some(5));
    assert_eq!(store.peak_cost("a", "2026-11-28").await.unwrap(), None);
    assert_eq!(store.delete_before("2026-11-28").await.unwrap(), 38);
    assert!(store
        .usage(&UsageQuery::default())
        .await
        .unwrap()
        .rows
        .is_empty());
}

/// Every column lands where it belongs, in full multi-row chunks and in the shorter last one (of either
/// backend's chunk size).
async fn every_field_is_stored_in_its_column(f: &Fixture) {
    let rec = |i: i64| Record {
        ts_ms: 1_000 + i,
        day: format!("2026-11-{:02}", 1 + i % 28),
        request_id: format!("req-{i}"),
        tenant_id: format!("tenant-{i}"),
        upstream_id: (i % 2 == 0).then(|| format!("up-{i}")),
        upstream_request_id: Some(format!("ureq-{i}")),
        protocol: "openai",
        endpoint: "chat_completions",
        model: format!("model-{i}"),
        upstream_model: Some(format!("umodel-{i}")),
        stream: i % 3 == 0,
        status: 200 + i as u16,
        outcome: Outcome::ALL[i as usize % Outcome::ALL.len()],
        error_class: Some(format!("err-{i}")),
        input_tokens: 10 * i + 1,
        cache_write_5m_tokens: 10 * i + 2,
        cache_write_1h_tokens: 10 * i + 3,
        cache_read_tokens: 10 * i + 4,
        output_tokens: 10 * i + 5,
        thinking_tokens: Some(10 * i + 6),
        web_search_requests: 10 * i + 7,
        // Beyond 2^53: an integer that went through a float would come back changed.
        cost_nanousd: (1 << 60) + 10 * i + 8,
        upstream_cost_nanousd: 10 * i + 9,
        priced: i % 2 == 1,
        price_version: format!("pv-{i}"),
        latency_ms: 100 + i,
        ttft_ms: Some(50 + i),
        session_id: Some(format!("sess-{i}")),
        billable: i % 4 != 0,
        instance_id: (i % 5 != 0).then(|| format!("host-{i}:3000")),
        client_request_id: (i % 3 != 0).then(|| format!("client-{i}")),
        imported: i % 3 == 1,
        original_cost_nanousd: (i % 3 == 1).then(|| (1 << 61) + i),
    };
    // 2 full PostgreSQL chunks (128) + 3; also 8 full SQLite chunks (32) + 3.
    let n = 2 * 128 + 3;
    let rows: Vec<Record> = (0..n).map(rec).collect();
    f.store.insert_batch(&rows, None).await.unwrap();
    let stored = f.raw.stored_rows().await;
    assert_eq!(stored.len() as i64, n);
    for (i, s) in stored.iter().enumerate() {
        let r = rec(i as i64);
        assert_eq!(s.ts_ms, r.ts_ms);
        assert_eq!(s.day, r.day);
        assert_eq!(s.request_id, r.request_id);
        assert_eq!(s.tenant_id, r.tenant_id);
        assert_eq!(s.upstream_id, r.upstream_id);
        assert_eq!(s.upstream_request_id, r.upstream_request_id);
        assert_eq!(s.protocol, r.protocol);
        assert_eq!(s.endpoint, r.endpoint);
        assert_eq!(s.model, r.model);
        assert_eq!(s.upstream_model, r.upstream_model);
        assert_eq!(s.stream, r.stream);
        assert_eq!(s.status, i32::from(r.status));
        assert_eq!(s.outcome, r.outcome);
        assert_eq!(s.error_class, r.error_class);
        assert_eq!(
            [
                s.input_tokens,
                s.cache_write_5m_tokens,
                s.cache_write_1h_tokens,
                s.cache_read_tokens,
                s.output_tokens
            ],
            [
                r.input_tokens,
                r.cache_write_5m_tokens,
                r.cache_write_1h_tokens,
                r.cache_read_tokens,
                r.output_tokens
            ]
        );
        assert_eq!(s.thinking_tokens, r.thinking_tokens);
        assert_eq!(s.web_search_requests, r.web_search_requests);
        assert_eq!(s.cost_nanousd, r.cost_nanousd);
        assert_eq!(s.upstream_cost_nanousd, r.upstream_cost_nanousd);
        assert_eq!(s.priced, r.priced);
        assert_eq!(s.price_version, r.price_version);
        assert_eq!(s.latency_ms, r.latency_ms);
        assert_eq!(s.ttft_ms, r.ttft_ms);
        assert_eq!(s.session_id, r.session_id);
        assert_eq!(s.billable, r.billable);
        assert_eq!(s.instance_id, r.instance_id);
        assert_eq!(s.client_request_id, r.client_request_id);
        assert_eq!(s.imported, r.imported);
        assert_eq!(s.original_cost_nanousd, r.original_cost_nanousd);
    }
}

/// A batch is one transaction: a failure part-way stores none of its rows or rollups, and the store takes the
/// next batch as if nothing had happened.
async fn a_failed_batch_stores_nothing_and_the_next_one_is_stored(f: &Fixture) {
    let store = &f.store;
    f.raw.refuse_negative_timestamps().await;
    // Row 300 sits in a later multi-row INSERT than the first (either backend's chunk size).
    let mut rows: Vec<Record> = (0..301).map(|_| rec("a", 5, Outcome::Ok)).collect();
    rows[300].ts_ms = -1;
    store
        .insert_batch(&rows, Some(10))
        .await
        .expect_err("the database refuses the batch");
    assert_eq!(store.count_requests().await.unwrap(), 0);
    assert!(store.spend_by_tenant(None).await.unwrap().is_empty());
    assert_eq!(store.journal_committed_seq().await.unwrap(), 0);
    rows[300].ts_ms = 1;
    store.insert_batch(&rows, Some(10)).await.unwrap();
    assert_eq!(store.count_requests().await.unwrap(), 301);
    assert_eq!(
        store.spend_by_tenant(None).await.unwrap()[0].cost_nanousd,
        301 * 5
    );
    assert_eq!(store.journal_committed_seq().await.unwrap(), 10);
}

/// The crash journal's high-water mark: 0 at first, raised by each batch that carries one, never lowered (the
/// replay at start-up stores only lines above it).
async fn the_journal_mark_only_rises(f: &Fixture) {
    let store = &f.store;
    assert_eq!(store.journal_committed_seq().await.unwrap(), 0);
    let one = [rec("a", 1, Outcome::Ok)];
    store.insert_batch(&one, Some(5)).await.unwrap();
    assert_eq!(store.journal_committed_seq().await.unwrap(), 5);
    store.insert_batch(&one, Some(3)).await.unwrap();
    assert_eq!(store.journal_committed_seq().await.unwrap(), 5);
    store.insert_batch(&one, None).await.unwrap();
    assert_eq!(store.journal_committed_seq().await.unwrap(), 5);
    store.insert_batch(&one, Some(u64::MAX)).await.unwrap();
    assert_eq!(
        store.journal_committed_seq().await.unwrap(),
        i64::MAX as u64
    );
}

async fn stored_request_ids_finds_exactly_the_stored_ones(f: &Fixture) {
    let store = &f.store;
    assert!(store.stored_request_ids(&[]).await.unwrap().is_empty());
    let rows: Vec<Record> = (0..1200)
        .map(|i| Record {
            request_id: format!("id-{i}"),
            ..rec("a", 1, Outcome::Ok)
        })
        .collect();
    store.insert_batch(&rows, None).await.unwrap();
    // More ids than SQLite's chunk of 500, half of them unknown.
    let asked: Vec<String> = (0..2400).step_by(2).map(|i| format!("id-{i}")).collect();
    let mut found = store.stored_request_ids(&asked).await.unwrap();
    found.sort();
    let mut expected: Vec<String> = (0..1200).step_by(2).map(|i| format!("id-{i}")).collect();
    expected.sort();
    assert_eq!(found, expected);
}

/// The usage API's view: one row per (day, tenant, model) in that order, filtered by tenant and inclusive days,
/// with errors and unpriced requests counted.
async fn usage_filters_and_orders_like_the_api_expects(f: &Fixture) {
    let store = &f.store;
    let at = |day: &str, tenant: &str, model: &str| Record {
        day: day.into(),
        tenant_id: tenant.into(),
        model: model.into(),
        ..rec(tenant, 7, Outcome::Ok)
    };
    let rows = vec![
        at("2026-11-02", "b", "m2"),
        at("2026-11-01", "b", "m1"),
        at("2026-11-01", "a", "m2"),
        at("2026-11-03", "a", "m1"),
        // Upper case sorts before lower case in byte order, whatever the database's locale.
        at("2026-11-01", "a", "M1"),
        Record {
            status: 529,
            outcome: Outcome::UpstreamError,
            cost_nanousd: 0,
            ..at("2026-11-01", "a", "m2")
        },
        Record {
            priced: false,
            cost_nanousd: 0,
            upstream_cost_nanousd: 0,
            output_tokens: 3,
            ..at("2026-11-01", "a", "m2")
        },
        Record {
            upstream_cost_nanousd: 11,
            cache_read_tokens: 4,
            output_tokens: 2,
            ..at("2026-11-02", "b", "m2")
        },
    ];
    store.insert_batch(&rows, None).await.unwrap();
    let all = store.usage(&UsageQuery::default()).await.unwrap().rows;
    let keys: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|r| (r.day.as_str(), r.tenant_id.as_str(), r.model.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("2026-11-01", "a", "M1"),
            ("2026-11-01", "a", "m2"),
            ("2026-11-01", "b", "m1"),
            ("2026-11-02", "b", "m2"),
            ("2026-11-03", "a", "m1"),
        ]
    );
    assert_eq!(
        all[1].totals,
        UsageTotals {
            requests: 3,
            input_tokens: 30,
            output_tokens: 3,
            cache_creation_input_tokens: 9,
            cache_write_5m_tokens: 3,
            cache_write_1h_tokens: 6,
            cost_nanousd: 7,
            unpriced_requests: 1,
            errors: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        all[3].totals,
        UsageTotals {
            requests: 2,
            input_tokens: 20,
            output_tokens: 2,
            cache_creation_input_tokens: 6,
            cache_write_5m_tokens: 2,
            cache_write_1h_tokens: 4,
            cache_read_input_tokens: 4,
            cost_nanousd: 14,
            upstream_cost_nanousd: 11,
            ..Default::default()
        }
    );
    let ranged = store
        .usage(&UsageQuery {
            tenant_id: Some("b".into()),
            from_day: Some("2026-11-02".into()),
            to_day: Some("2026-11-02".into()),
        })
        .await
        .unwrap()
        .rows;
    assert_eq!(ranged.len(), 1);
    assert_eq!(
        (ranged[0].day.as_str(), ranged[0].model.as_str()),
        ("2026-11-02", "m2")
    );
    let to_only = store
        .usage(&UsageQuery {
            to_day: Some("2026-11-01".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .rows;
    assert_eq!(to_only.len(), 3);
    let mut spend = store.spend_by_tenant(Some("2026-11-02")).await.unwrap();
    spend.sort();
    assert_eq!(
        spend,
        [
            TenantSpend {
                tenant_id: "a".into(),
                cost_nanousd: 7
            },
            TenantSpend {
                tenant_id: "b".into(),
                cost_nanousd: 14
            }
        ]
    );
}

/// Absurd amounts never make a batch fail (it would be retried for ever) nor a read fail: sums stop at the
/// largest BIGINT, on both backends.
async fn sums_saturate_instead_of_failing(f: &Fixture) {
    let store = &f.store;
    let huge = |day: &str, cost: i64| Record {
        day: day.into(),
        ..rec("a", cost, Outcome::Ok)
    };
    store
        .insert_batch(&[huge("2026-11-01", i64::MAX - 10)], None)
        .await
        .unwrap();
    // The second batch adds to the same rollup row: past the largest BIGINT.
    store
        .insert_batch(&[huge("2026-11-01", 100)], None)
        .await
        .unwrap();
    store
        .insert_batch(&[huge("2026-11-02", i64::MAX)], None)
        .await
        .unwrap();
    let rows = store.usage(&UsageQuery::default()).await.unwrap().rows;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].totals.cost_nanousd, i64::MAX);
    assert_eq!(rows[0].totals.requests, 2);
    assert_eq!(rows[1].totals.cost_nanousd, i64::MAX);
    // Across rollup rows too.
    assert_eq!(
        store.spend_by_tenant(None).await.unwrap()[0].cost_nanousd,
        i64::MAX
    );
    assert_eq!(
        store.peak_cost("a", "2026-11-01").await.unwrap(),
        Some(i64::MAX)
    );
    // The row keeps accumulating counts after its cost saturated.
    store
        .insert_batch(&[huge("2026-11-01", 1)], None)
        .await
        .unwrap();
    let rows = store.usage(&UsageQuery::default()).await.unwrap().rows;
    assert_eq!(rows[0].totals.requests, 3);
    assert_eq!(rows[0].totals.cost_nanousd, i64::MAX);
}

async fn delete_before_keeps_later_days(f: &Fixture) {
    let store = &f.store;
    let on = |day: &str| Record {
        day: day.into(),
        ..rec("a", 2, Outcome::Ok)
    };
    let rows = vec![
        on("2026-10-31"),
        on("2026-10-31"),
        on("2026-11-01"),
        on("2026-11-02"),
    ];
    store.insert_batch(&rows, None).await.unwrap();
    assert_eq!(store.delete_before("2026-11-01").await.unwrap(), 2);
    assert_eq!(store.count_requests().await.unwrap(), 2);
    let days: Vec<String> = store
        .usage(&UsageQuery::default())
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.day)
        .collect();
    assert_eq!(days, ["2026-11-01", "2026-11-02"]);
    assert_eq!(
        store.spend_by_tenant(None).await.unwrap()[0].cost_nanousd,
        4
    );
    assert_eq!(store.delete_before("2026-11-01").await.unwrap(), 0);
}

/// Refused requests per tenant, reason and status, within the days and tenant asked for; other outcomes are not
/// refusals.
async fn refusals_are_counted_per_tenant_and_reason_within_the_days(f: &Fixture) {
    let store = &f.store;
    let refused = |tenant: &str, day: &str, status: u16, class: &str| Record {
        day: day.into(),
        status,
        error_class: Some(class.into()),
        ..rec(tenant, 0, Outcome::Rejected)
    };
    let rows = vec![
        refused("a", "2026-11-27", 403, "model_not_allowed"),
        refused("a", "2026-11-27", 403, "model_not_allowed"),
        refused("a", "2026-11-28", 429, "rate_limited"),
        refused("b", "2026-11-27", 402, "budget_exceeded"),
        // Not refusals: an upstream error and a success.
        Record {
            status: 502,
            error_class: Some("upstream_connect".into()),
            ..rec("a", 0, Outcome::UpstreamError)
        },
        rec("a", 5, Outcome::Ok),
    ];
    store.insert_batch(&rows, None).await.unwrap();
    let row = |t: &str, reason: &str, status: i64, requests: i64| RefusalRow {
        tenant_id: t.into(),
        reason: reason.into(),
        status,
        requests,
    };
    let all = store.refusals(&UsageQuery::default()).await.unwrap();
    assert_eq!(
        all,
        vec![
            row("a", "model_not_allowed", 403, 2),
            row("a", "rate_limited", 429, 1),
            row("b", "budget_exceeded", 402, 1),
        ]
    );
    let a_on_28 = store
        .refusals(&UsageQuery {
            tenant_id: Some("a".into()),
            from_day: Some("2026-11-28".into()),
            to_day: Some("2026-11-28".into()),
        })
        .await
        .unwrap();
    assert_eq!(a_on_28, vec![row("a", "rate_limited", 429, 1)]);
}

async fn console_tenants_are_added_replaced_whole_and_removed(f: &Fixture) {
    let store = &f.store;
    assert_eq!(store.console_tenants_version().await.unwrap(), (0, 0));
    let t = |id: &str, updated_ms: i64| super::store::StoredTenant {
        id: id.into(),
        name: format!("name {id}"),
        key_sha256: format!("{id:0>64}"),
        key_hint: "sk-…a1b2".into(),
        enabled: true,
        allowed_models: r#"["*sonnet*"]"#.into(),
        limits: r#"{"daily":{"maxUSD":5}}"#.into(),
        expires_at: None,
        created_ms: 1,
        updated_ms,
    };
    store.put_console_tenant(&t("b", 10)).await.unwrap();
    store.put_console_tenant(&t("a", 20)).await.unwrap();
    let v1 = store.console_tenants_version().await.unwrap();
    assert_eq!(v1, (2, 30));
    assert_eq!(
        store.console_tenants().await.unwrap(),
        vec![t("a", 20), t("b", 10)]
    );
    // Replaced whole: every field of the new version, the creation time kept as sent.
    let changed = super::store::StoredTenant {
        enabled: false,
        expires_at: Some("2027-01-01T00:00:00Z".into()),
        key_sha256: "f".repeat(64),
        ..t("a", 21)
    };
    store.put_console_tenant(&changed).await.unwrap();
    assert_ne!(store.console_tenants_version().await.unwrap(), v1);
    assert_eq!(store.console_tenants().await.unwrap()[0], changed);
    // Two tenants cannot share a key.
    let clash = super::store::StoredTenant {
        key_sha256: "f".repeat(64),
        ..t("c", 30)
    };
    assert!(store.put_console_tenant(&clash).await.is_err());
    assert!(store.delete_console_tenant("b").await.unwrap());
    assert!(!store.delete_console_tenant("b").await.unwrap());
    assert_eq!(store.console_tenants_version().await.unwrap(), (1, 21));
}

async fn the_request_log_pages_newest_first_with_filters(f: &Fixture) {
    use super::store::RequestFilter;
    let store = &f.store;
    let rows: Vec<Record> = (0..7)
        .map(|i| Record {
            ts_ms: 1_000 + i,
            status: if i == 3 { 529 } else { 200 },
            model: if i % 2 == 0 { "m-even" } else { "m-odd" }.into(),
            ..rec(if i < 5 { "a" } else { "b" }, 10 + i, Outcome::Ok)
        })
        .collect();
    store.insert_batch(&rows, None).await.unwrap();
    let all = store
        .requests_page(&RequestFilter::default(), 100)
        .await
        .unwrap();
    let ts: Vec<i64> = all.iter().map(|r| r.ts_ms).collect();
    assert_eq!(
        ts,
        vec![1006, 1005, 1004, 1003, 1002, 1001, 1000],
        "newest first"
    );
    assert_eq!(all[3].status, 529);
    assert_eq!(all[0].cost_nanousd, 16);
    // Pages of 3 through tenant a, by cursor.
    let mut seen = Vec::new();
    let mut filter = RequestFilter {
        tenant_id: Some("a".into()),
        ..Default::default()
    };
    loop {
        let page = store.requests_page(&filter, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|r| r.ts_ms));
        filter.before_id = page.last().map(|r| r.id);
    }
    assert_eq!(seen, vec![1004, 1003, 1002, 1001, 1000]);
    let errors = store
        .requests_page(
            &RequestFilter {
                status: Some((500, 599)),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    let window = store
        .requests_page(
            &RequestFilter {
                model: Some("m-odd".into()),
                from_ms: Some(1_002),
                to_ms: Some(1_005),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|r| r.ts_ms).collect::<Vec<_>>(),
        vec![1003]
    );
    // One request by its id, with the other filters still applied (a tenant sees only its own).
    let by_id = |id: &str, tenant: &str| RequestFilter {
        request_id: Some(id.to_owned()),
        tenant_id: Some(tenant.to_owned()),
        ..Default::default()
    };
    let id = all[1].request_id.clone();
    let found = store.requests_page(&by_id(&id, "b"), 10).await.unwrap();
    assert_eq!(
        found.iter().map(|r| r.ts_ms).collect::<Vec<_>>(),
        vec![1005]
    );
    assert!(store
        .requests_page(&by_id(&id, "a"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .requests_page(&by_id("no-such-request", "b"), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn upstream_overrides_are_set_whole_and_cleared(f: &Fixture) {
    use super::store::UpstreamOverride;
    let store = &f.store;
    let v0 = store.console_tenants_version().await.unwrap();
    let o = UpstreamOverride {
        upstream_id: "up1".into(),
        enabled: Some(false),
        weight: Some(3),
        priority: None,
        updated_ms: 5,
    };
    store.put_upstream_override(&o).await.unwrap();
    assert_eq!(store.upstream_overrides().await.unwrap(), vec![o.clone()]);
    let v1 = store.console_tenants_version().await.unwrap();
    assert_ne!(v1, v0, "an override is a change the instances must see");
    let changed = UpstreamOverride {
        enabled: None,
        updated_ms: 6,
        ..o.clone()
    };
    store.put_upstream_override(&changed).await.unwrap();
    assert_eq!(store.upstream_overrides().await.unwrap(), vec![changed]);
    // No field left: the override goes.
    store
        .put_upstream_override(&UpstreamOverride {
            upstream_id: "up1".into(),
            updated_ms: 7,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(store.upstream_overrides().await.unwrap().is_empty());
    assert_eq!(store.console_tenants_version().await.unwrap(), v0);
}

async fn admin_sessions_are_found_by_hash_ended_and_purged_when_expired(f: &Fixture) {
    use super::store::AdminSession;
    let store = &f.store;
    let session = |hash: &str, created_ms: i64, expires_ms: i64| AdminSession {
        token_sha256: hash.into(),
        username: "admin".into(),
        csrf_token: format!("csrf-{hash}"),
        credential_tag: "tag".into(),
        created_ms,
        expires_ms,
    };
    let old = session("old", 0, 100);
    store.put_admin_session(&old).await.unwrap();
    assert_eq!(store.admin_session("old").await.unwrap(), Some(old));
    assert_eq!(store.admin_session("other").await.unwrap(), None);
    // A login after the old session expired purges it.
    let new = session("new", 200, 1_000);
    store.put_admin_session(&new).await.unwrap();
    assert_eq!(store.admin_session("old").await.unwrap(), None);
    assert_eq!(store.admin_session("new").await.unwrap(), Some(new));
    assert!(store.delete_admin_session("new").await.unwrap());
    assert!(!store.delete_admin_session("new").await.unwrap());
    assert_eq!(store.admin_session("new").await.unwrap(), None);
}

async fn hourly_rollups_sum_per_hour_tenant_model_and_upstream(f: &Fixture) {
    use super::rollup::HOUR_MS;
    use super::store::HourlyQuery;
    let store = &f.store;
    let h0 = 493_000 * HOUR_MS;
    let at = |ts_ms: i64, tenant: &str, upstream: Option<&str>, cost: i64| Record {
        ts_ms,
        upstream_id: upstream.map(str::to_owned),
        cache_read_tokens: 100,
        output_tokens: 3,
        ..rec(tenant, cost, Outcome::Ok)
    };
    let mut refused = at(h0, "a", None, 0);
    refused.outcome = Outcome::Rejected;
    refused.status = 429;
    let mut failed = at(h0 + 10, "a", Some("u1"), 0);
    failed.outcome = Outcome::UpstreamError;
    failed.status = 502;
    store
        .insert_batch(
            &[
                at(h0, "a", Some("u1"), 5),
                at(h0 + HOUR_MS - 1, "a", Some("u1"), 7),
                at(h0 + 5, "a", Some("u2"), 11),
                at(h0 + HOUR_MS, "b", Some("u1"), 13),
                refused,
                failed,
            ],
            None,
        )
        .await
        .unwrap();
    // A second batch adds to the same hour.
    store
        .insert_batch(&[at(h0 + 20, "a", Some("u1"), 17)], None)
        .await
        .unwrap();
    let all = store
        .hourly_usage(&HourlyQuery {
            from_ms: h0,
            to_ms: h0 + 2 * HOUR_MS,
            ..Default::default()
        })
        .await
        .unwrap();
    let summary: Vec<(i64, &str, &str, i64, i64, i64)> = all
        .iter()
        .map(|r| {
            (
                (r.hour_ms - h0) / HOUR_MS,
                r.tenant_id.as_str(),
                r.upstream_id.as_str(),
                r.requests,
                r.cost_nanousd,
                r.errors,
            )
        })
        .collect();
    let mut summary = summary;
    summary.sort();
    assert_eq!(
        summary,
        vec![
            (0, "a", "u1", 4, 29, 1),
            (0, "a", "u2", 1, 11, 0),
            (1, "b", "u1", 1, 13, 0)
        ]
    );
    let u1 = all
        .iter()
        .find(|r| r.tenant_id == "a" && r.upstream_id == "u1")
        .unwrap();
    assert_eq!(u1.cache_read_tokens, 400);
    assert_eq!(u1.input_tokens, 40);
    assert_eq!(u1.output_tokens, 12);
    // Filters, and the range's end is exclusive.
    let b = store
        .hourly_usage(&HourlyQuery {
            from_ms: h0,
            to_ms: h0 + 2 * HOUR_MS,
            tenant_id: Some("b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    let first_hour = store
        .hourly_usage(&HourlyQuery {
            from_ms: h0,
            to_ms: h0 + HOUR_MS,
            upstream_id: Some("u2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first_hour.len(), 1);
    assert_eq!(first_hour[0].cost_nanousd, 11);
    // Every request removed: so are the hours.
    store.delete_before("2100-01-01").await.unwrap();
    assert!(store
        .hourly_usage(&HourlyQuery {
            from_ms: 0,
            to_ms: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

/// What rolling windows, `tpm` and per-model limits load at start: cost per tenant and model since a day, and
/// billable cost and tokens (input, cache writes, output; not cache reads) per bucket since a time, oldest first.
async fn recent_spend_is_summed_per_tenant_model_and_bucket(f: &Fixture) {
    let store = &f.store;
    let at = |tenant: &str, model: &str, ts_ms: i64, cost: i64| Record {
        ts_ms,
        model: model.into(),
        output_tokens: 100,
        cache_read_tokens: 1000,
        ..rec(tenant, cost, Outcome::Ok)
    };
    let minute = 60_000;
    let free = Record {
        billable: false,
        ..at("a", "m", 10 * minute + 5, 0)
    };
    store
        .insert_batch(
            &[
                at("a", "m", 10 * minute + 1, 5),
                at("a", "m", 10 * minute + 59_999, 7),
                at("a", "opus", 11 * minute, 11),
                at("b", "m", 9 * minute, 13),
                at("a", "m", 12 * minute, 17),
                free,
            ],
            None,
        )
        .await
        .unwrap();
    let buckets = store.spend_buckets(10 * minute, minute).await.unwrap();
    let got: Vec<_> = buckets
        .iter()
        .map(|b| {
            (
                b.tenant_id.as_str(),
                b.model.as_str(),
                b.start_ms / minute,
                b.cost_nanousd,
                b.tokens,
            )
        })
        .collect();
    // `rec` has 10 input + 1 + 2 cache-write tokens; 100 output here.
    assert_eq!(
        got,
        vec![
            ("a", "m", 10, 12, 226),
            ("a", "opus", 11, 11, 113),
            ("a", "m", 12, 17, 113)
        ]
    );
    let mut by_model = store.spend_by_tenant_model(None).await.unwrap();
    by_model.sort();
    let spend = |t: &str, m: &str, c| super::store::ModelSpend {
        tenant_id: t.into(),
        model: m.into(),
        cost_nanousd: c,
    };
    assert_eq!(
        by_model,
        vec![
            spend("a", "m", 29),
            spend("a", "opus", 11),
            spend("b", "m", 13)
        ]
    );
    assert!(store
        .spend_by_tenant_model(Some("2026-11-28"))
        .await
        .unwrap()
        .is_empty());
}

async fn trust_counters_add_up_and_flags_open_once(f: &Fixture) {
    use super::store::{TrustCounter, TrustFlag};
    let store = &f.store;
    let c = |up: &str, hour: i64, name: &str, n: i64| TrustCounter {
        upstream_id: up.into(),
        model: "m".into(),
        hour_ms: hour,
        name: name.into(),
        n,
    };
    store
        .trust_add(&[
            c("a", 3_600_000, "requests", 2),
            c("a", 7_200_000, "requests", 1),
        ])
        .await
        .unwrap();
    // Another instance adds to the same counters; a sum past i64::MAX saturates instead of failing.
    store
        .trust_add(&[
            c("a", 3_600_000, "requests", 5),
            c("b", 7_200_000, "big", i64::MAX),
        ])
        .await
        .unwrap();
    store
        .trust_add(&[c("b", 7_200_000, "big", 7)])
        .await
        .unwrap();
    let rows = store.trust_counters(0).await.unwrap();
    assert_eq!(
        rows,
        vec![
            c("a", 3_600_000, "requests", 7),
            c("a", 7_200_000, "requests", 1),
            c("b", 7_200_000, "big", i64::MAX),
        ]
    );
    assert_eq!(store.trust_counters(7_200_000).await.unwrap().len(), 2);
    assert_eq!(store.trust_prune(7_200_000).await.unwrap(), 1);
    assert_eq!(store.trust_counters(0).await.unwrap().len(), 2);

    let flag = |check: &str, at: i64| TrustFlag {
        id: 0,
        upstream_id: "a".into(),
        check_name: check.into(),
        model: "m".into(),
        raised_ms: at,
        cleared_ms: None,
        evidence: "{}".into(),
    };
    assert!(store.trust_raise(&flag("model_mismatch", 1)).await.unwrap());
    // One open flag per upstream and check.
    assert!(!store.trust_raise(&flag("model_mismatch", 2)).await.unwrap());
    assert!(store.trust_raise(&flag("fake_streaming", 3)).await.unwrap());
    let open = store.trust_flags(Some("a"), true, 10).await.unwrap();
    assert_eq!(
        open.iter()
            .map(|f| f.check_name.as_str())
            .collect::<Vec<_>>(),
        ["fake_streaming", "model_mismatch"]
    );
    assert!(store
        .trust_flags(Some("b"), false, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .trust_clear("a", Some("model_mismatch"), 9)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.trust_flags(None, true, 10).await.unwrap().len(), 1);
    // Cleared, the check may raise its flag again.
    assert!(store
        .trust_raise(&flag("model_mismatch", 10))
        .await
        .unwrap());
    assert_eq!(store.trust_clear("a", None, 11).await.unwrap(), 2);
    let all = store.trust_flags(None, false, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|f| f.cleared_ms.is_some()));
    assert_eq!(all[2].cleared_ms, Some(9));
}

async fn trust_samples_keep_the_newest_of_every_instance(f: &Fixture) {
    use super::store::TrustSample;
    let store = &f.store;
    let s = |up: &str, check: &str, id: &str, ts: i64| TrustSample {
        upstream_id: up.into(),
        check_name: check.into(),
        request_id: id.into(),
        ts_ms: ts,
    };
    // Instance 1 flushes three, instance 2 two more and one instance 1 already stored; at most 4 are kept.
    store
        .trust_add_samples(
            &[
                s("a", "c", "r1", 10),
                s("a", "c", "r2", 20),
                s("a", "c", "r3", 30),
                s("b", "c", "x", 5),
            ],
            4,
        )
        .await
        .unwrap();
    store
        .trust_add_samples(
            &[
                s("a", "c", "r5", 50),
                s("a", "c", "r4", 40),
                s("a", "c", "r3", 30),
            ],
            4,
        )
        .await
        .unwrap();
    assert_eq!(
        store.trust_samples("a", "c", 0, 10).await.unwrap(),
        ["r5", "r4", "r3", "r2"]
    );
    // Newest first, from a time on, at most `limit`.
    assert_eq!(
        store.trust_samples("a", "c", 25, 10).await.unwrap(),
        ["r5", "r4", "r3"]
    );
    assert_eq!(
        store.trust_samples("a", "c", 0, 2).await.unwrap(),
        ["r5", "r4"]
    );
    assert_eq!(
        store.trust_samples("a", "other", 0, 10).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.trust_samples("b", "c", 0, 10).await.unwrap(), ["x"]);
    // Pruned with the counters.
    store.trust_prune(35).await.unwrap();
    assert_eq!(
        store.trust_samples("a", "c", 0, 10).await.unwrap(),
        ["r5", "r4"]
    );
    assert!(store
        .trust_samples("b", "c", 0, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn the_canary_slot_is_claimed_once_per_interval_and_its_state_shared(f: &Fixture) {
    let store = &f.store;
    // Eight instances claim the first probe at once: exactly one wins.
    let claims = futures_util::future::join_all(
        (0..8).map(|_| store.trust_canary_claim("a", 1_000, 60_000)),
    )
    .await;
    let won = claims
        .into_iter()
        .map(Result::unwrap)
        .filter(|w| *w)
        .count();
    assert_eq!(won, 1);
    // Within the interval nobody may probe; once it passed, one again.
    assert!(!store.trust_canary_claim("a", 60_999, 60_000).await.unwrap());
    let claims = futures_util::future::join_all(
        (0..8).map(|_| store.trust_canary_claim("a", 61_000, 60_000)),
    )
    .await;
    assert_eq!(
        claims
            .into_iter()
            .map(Result::unwrap)
            .filter(|w| *w)
            .count(),
        1
    );
    // Another upstream has its own slot.
    assert!(store.trust_canary_claim("b", 61_000, 60_000).await.unwrap());

    // Results: the streak counts disagreements in a row; a failed probe leaves it; an agreeing one resets it.
    store
        .trust_canary_record("a", Some(true), 100, "{\"n\":1}", Some("{}"))
        .await
        .unwrap();
    store
        .trust_canary_record("a", None, 5, "{\"n\":2}", None)
        .await
        .unwrap();
    store
        .trust_canary_record("a", Some(true), 100, "{\"n\":3}", Some("{}"))
        .await
        .unwrap();
    let a = |all: Vec<super::store::TrustCanary>| {
        all.into_iter().find(|c| c.upstream_id == "a").unwrap()
    };
    let c = a(store.trust_canaries().await.unwrap());
    assert_eq!(
        (c.runs, c.cost_nanousd, c.streak, c.last_outcome),
        (3, 205, 2, Some(true))
    );
    assert_eq!(c.claimed_ms, 61_000);
    assert_eq!(c.last_run.as_deref(), Some("{\"n\":3}"));
    assert_eq!(c.reference_run.as_deref(), Some("{}"));
    store
        .trust_canary_record("a", Some(false), 0, "{}", None)
        .await
        .unwrap();
    let c = a(store.trust_canaries().await.unwrap());
    assert_eq!((c.runs, c.streak, c.last_outcome), (4, 0, Some(false)));
    assert_eq!(c.reference_run, None);
    // Cleared: the verdict is forgotten, the runs and cost stay.
    store
        .trust_canary_record("a", Some(true), 0, "{}", None)
        .await
        .unwrap();
    store.trust_canary_reset("a").await.unwrap();
    let c = a(store.trust_canaries().await.unwrap());
    assert_eq!(
        (c.runs, c.cost_nanousd, c.streak, c.last_outcome),
        (5, 205, 0, None)
    );
    assert_eq!(store.trust_canaries().await.unwrap().len(), 2);
}

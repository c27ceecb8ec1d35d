//! Upstream trust (docs/trust.md): one honest and one cheating mock per behaviour under mixed traffic, each check
//! flags exactly the cheater; two honest upstreams over 2,000 requests are never flagged; canary probes, demote,
//! the balance poller and the scorecard's figures.

use crate::common::*;
use ccgate_mock::{MockConfig, MockHandle};
use futures_util::StreamExt;
use serde_json::{json, Value};

const MODEL: &str = "claude-sonnet-4-6";
/// Output tokens the mocks report: enough for a stream to be judged by the fake-streaming check.
const OUTPUT: u64 = 300;

/// An honest upstream: usage counted from the request, prompt caching honoured, signed thinking, paced streams.
fn honest() -> MockConfig {
    MockConfig {
        realistic_usage: true,
        thinking: true,
        output_tokens: OUTPUT,
        chunks: 20,
        event_delay_ms: 10,
        record: false,
        ..MockConfig::default()
    }
}

/// A small deterministic generator, so that a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Request `i` of a realistic mix: prompts from a few hundred bytes to ~20 KB, English, Chinese or code, first
/// turns and follow-ups (a follow-up marks its long prefix with `cache_control`), thinking on some, streams on
/// half of them.
fn mixed_request(rng: &mut Lcg) -> Value {
    let lang = rng.next(3);
    let unit = match lang {
        0 => "The quick brown fox jumps over the lazy dog while the gateway counts tokens. ",
        1 => "网关会统计每一个请求的令牌数量，并且检查上游是否诚实。",
        _ => "fn main() { let x = vec![1, 2, 3]; println!(\"{:?}\", x.iter().sum::<i32>()); }\n",
    };
    let size = 2 + rng.next(250) as usize;
    let prefix = unit.repeat(size);
    let follow_up = rng.next(2) == 0;
    let messages = if follow_up {
        json!([
            {"role": "user", "content": [{"type": "text", "text": prefix, "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": "Understood."},
            {"role": "user", "content": format!("Question {}", rng.next(1000))},
        ])
    } else {
        json!([{"role": "user", "content": prefix}])
    };
    let mut body = json!({"model": MODEL, "max_tokens": 1024, "stream": rng.next(2) == 0, "messages": messages});
    if rng.next(2) == 0 {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    }
    body
}

/// Sends `n` requests of the mix, 16 at a time; a few carry `x-mock-status: 529` (errors vary the success rate).
async fn traffic(gw: &Gateway, n: usize, seed: u64, errors: bool) {
    let mut rng = Lcg(seed);
    let bodies: Vec<(Value, bool)> = (0..n)
        .map(|_| (mixed_request(&mut rng), errors && rng.next(50) == 0))
        .collect();
    let c = client();
    futures_util::stream::iter(bodies)
        .map(|(body, fail)| {
            let c = c.clone();
            let url = format!("{}/anthropic/v1/messages", gw.url);
            async move {
                let mut req = c
                    .post(url)
                    .header("x-api-key", TENANT2_KEY)
                    .header("anthropic-version", "2023-06-01")
                    .json(&body);
                if fail {
                    req = req.header("x-mock-status", "529");
                }
                let r = req.send().await.unwrap();
                let status = r.status();
                let _ = r.bytes().await;
                assert!(status.is_success() || fail, "{status}");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

async fn scorecard(gw: &Gateway, id: &str) -> Value {
    let r = client()
        .get(format!("{}/api/admin/upstreams/{id}/scorecard", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn clear(gw: &Gateway, id: &str, body: Value) -> Value {
    let r = client()
        .post(format!("{}/api/admin/upstreams/{id}/trust/clear", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Each check's status for the model, by name.
fn statuses(card: &Value) -> Vec<(String, String)> {
    card["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["model"] == MODEL)
        .flat_map(|m| m["checks"].as_array().unwrap().clone())
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn open_flags(card: &Value) -> Vec<String> {
    card["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["open"] == true)
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect()
}

/// A gateway over an honest upstream and a cheating one, round robin.
async fn pair(cheat: MockConfig) -> (Gateway, MockHandle, MockHandle) {
    let good = mock_with(honest()).await;
    let bad = mock_with(cheat).await;
    let mut files = Files::new(&[good.url(), bad.url()]);
    files.upstreams["upstreams"][0]["id"] = json!("honest");
    files.upstreams["upstreams"][1]["id"] = json!("cheat");
    files.upstreams["loadBalancer"]["strategy"] = json!("round_robin");
    (Gateway::start(&files).await, good, bad)
}

/// The stated budget: every check flags its cheater within this many requests of the mix (half on each
/// upstream). The binding minimum is the token-inflation check's 100 samples per upstream.
const FLAG_WITHIN: usize = 240;

/// Returns the flag's evidence.
async fn cheater_is_flagged_for(cheat: MockConfig, check: &str) -> Value {
    let (gw, _good, _bad) = pair(cheat).await;
    traffic(&gw, FLAG_WITHIN, 7, false).await;
    let card = scorecard(&gw, "cheat").await;
    let suspect: Vec<String> = statuses(&card)
        .into_iter()
        .filter(|(_, s)| s == "suspect")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(suspect, [check], "cheater: {card:#}");
    let honest_card = scorecard(&gw, "honest").await;
    assert!(
        statuses(&honest_card).iter().all(|(_, s)| s != "suspect"),
        "honest: {honest_card:#}"
    );
    // The background evaluation raises the flag, with its evidence.
    let flags = eventually(20, || async {
        let card = scorecard(&gw, "cheat").await;
        let open = open_flags(&card);
        (!open.is_empty()).then_some(card["flags"].clone())
    })
    .await;
    assert_eq!(flags.as_array().unwrap().len(), 1, "{flags:#}");
    assert_eq!(flags[0]["check"], check);
    assert_eq!(flags[0]["model"], MODEL);
    assert!(flags[0]["evidence"]["threshold"].is_object(), "{flags:#}");
    assert!(open_flags(&scorecard(&gw, "honest").await).is_empty());
    flags[0]["evidence"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_model_is_flagged() {
    let cheat = MockConfig {
        substitute_model: Some("claude-haiku-4-5-20251001".into()),
        ..honest()
    };
    let evidence = cheater_is_flagged_for(cheat, "model_mismatch").await;
    // Every answer named another model; the evidence names sample requests.
    assert_eq!(evidence["bad"], evidence["samples"]);
    assert!(!evidence["requestIds"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_thinking_is_flagged() {
    let cheat = MockConfig {
        strip_signatures: true,
        ..honest()
    };
    cheater_is_flagged_for(cheat, "thinking_signature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_tokens_inflated_by_20_percent_are_flagged() {
    let cheat = MockConfig {
        inflate_input_percent: 20,
        ..honest()
    };
    cheater_is_flagged_for(cheat, "token_inflation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_tokens_inflated_by_50_percent_are_flagged() {
    let cheat = MockConfig {
        inflate_input_percent: 50,
        ..honest()
    };
    cheater_is_flagged_for(cheat, "token_inflation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_cache_control_is_flagged_with_the_money_lost() {
    let cheat = MockConfig {
        ignore_cache_control: true,
        ..honest()
    };
    let evidence = cheater_is_flagged_for(cheat, "cache_not_honoured").await;
    assert!(evidence["lostUsd"].as_f64().unwrap() > 0.0, "{evidence:#}");
    assert_eq!(evidence["hits"], 0);
    assert!(!evidence["requestIds"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_then_burst_streams_are_flagged() {
    let cheat = MockConfig {
        burst: true,
        ..honest()
    };
    cheater_is_flagged_for(cheat, "fake_streaming").await;
}

/// Two honest upstreams (one slower, one reporting the cache a little differently is not modelled: both count
/// the same way) over 2,000 requests of the mix with a few upstream errors: every check reaches a verdict and
/// none is suspect; no flag is raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_upstreams_are_never_flagged_over_2000_requests() {
    let a = mock_with(honest()).await;
    let b = mock_with(MockConfig {
        event_delay_ms: 15,
        first_byte_delay_ms: 5,
        ..honest()
    })
    .await;
    let mut files = Files::new(&[a.url(), b.url()]);
    files.upstreams["loadBalancer"]["strategy"] = json!("random");
    let gw = Gateway::start(&files).await;
    traffic(&gw, 2000, 11, true).await;
    for id in ["up1", "up2"] {
        let card = scorecard(&gw, id).await;
        let st = statuses(&card);
        assert_eq!(st.len(), 5, "{card:#}");
        assert!(st.iter().all(|(_, s)| s == "ok"), "{id}: {card:#}");
    }
    // One evaluation round later (every 5 s), still no flag.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    for id in ["up1", "up2"] {
        assert!(scorecard(&gw, id).await["flags"]
            .as_array()
            .unwrap()
            .is_empty());
    }
}

/// Canary probes every 0.6 s: the cheater (input inflated by 20 %) disagrees with the reference's answer to the
/// same prompt twice in a row and is flagged without any traffic; the honest upstream's probes agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_probes_compare_with_the_reference_and_flag_inflation() {
    let reference = mock_with(MockConfig {
        realistic_usage: true,
        ..MockConfig::default()
    })
    .await;
    let fair = mock_with(MockConfig {
        realistic_usage: true,
        ..MockConfig::default()
    })
    .await;
    let cheat = mock_with(MockConfig {
        realistic_usage: true,
        inflate_input_percent: 20,
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[reference.url(), fair.url(), cheat.url()]);
    let canary = json!({"canary": {"intervalMinutes": 0.01, "model": MODEL}});
    files.upstreams["upstreams"][0]["trust"] = json!({"reference": true});
    files.upstreams["upstreams"][1]["trust"] = canary.clone();
    files.upstreams["upstreams"][2]["trust"] = canary;
    let gw = Gateway::start(&files).await;
    let card = eventually(30, || async {
        let card = scorecard(&gw, "up3").await;
        (open_flags(&card) == ["canary"]).then_some(card)
    })
    .await;
    let c = &card["canary"];
    assert!(c["runs"].as_u64().unwrap() >= 2, "{c:#}");
    let mine = c["last"]["inputTokens"].as_u64().unwrap();
    let theirs = c["reference"]["inputTokens"].as_u64().unwrap();
    assert_eq!(mine, theirs + theirs * 20 / 100, "{c:#}");
    assert!(
        c["costUsd"].as_f64().unwrap() > 0.0,
        "the probes' cost is shown: {c:#}"
    );
    // The schedule: probes keep coming, each the same fixed prompt to both.
    let n = cheat.request_count();
    eventually(10, || async {
        (cheat.request_count() >= n + 2).then_some(())
    })
    .await;
    let bodies: Vec<Vec<u8>> = cheat.requests().iter().map(|r| r.body.to_vec()).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(reference.requests()[0].body, cheat.requests()[0].body);
    let fair_card = scorecard(&gw, "up2").await;
    assert_eq!(
        fair_card["canary"]["check"]["status"], "ok",
        "{fair_card:#}"
    );
    assert!(open_flags(&fair_card).is_empty());
}

/// `onSuspect: "demote"`: the cheater in the best tier serves until its flag, then only the other upstream
/// serves (the admin's priority untouched); clearing the flag puts it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demote_moves_a_flagged_upstream_below_every_tier_until_cleared() {
    let good = mock_with(honest()).await;
    let bad = mock_with(MockConfig {
        substitute_model: Some("claude-haiku-4-5-20251001".into()),
        ..honest()
    })
    .await;
    let mut files = Files::new(&[bad.url(), good.url()]);
    files.upstreams["upstreams"][0]["priority"] = json!(0);
    files.upstreams["upstreams"][0]["trust"] = json!({"onSuspect": "demote"});
    files.upstreams["upstreams"][1]["priority"] = json!(5);
    files.server["server"]["metricsToken"] = json!("metrics-token-trust");
    let gw = Gateway::start(&files).await;
    let metrics = || async {
        client()
            .get(format!("{}/metrics", gw.url))
            .bearer_auth("metrics-token-trust")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let send = |n: usize| {
        let gw = &gw;
        async move {
            for _ in 0..n {
                let r = post_messages(gw, TENANT2_KEY, &messages_body(MODEL, false)).await;
                assert_eq!(r.status(), 200);
            }
        }
    };
    send(25).await;
    assert_eq!(bad.request_count(), 25);
    eventually(20, || async {
        let card = scorecard(&gw, "up1").await;
        (card["demoted"] == true).then_some(())
    })
    .await;
    let before = (bad.request_count(), good.request_count());
    send(10).await;
    assert_eq!(
        (bad.request_count(), good.request_count()),
        (before.0, before.1 + 10)
    );
    let list: Value = client()
        .get(format!("{}/api/admin/upstreams", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["upstreams"][0]["demoted"], true);
    assert_eq!(list["upstreams"][0]["priority"], 0);
    let m = metrics().await;
    assert!(
        m.contains(r#"ccgate_upstream_demoted{upstream="up1"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"ccgate_upstream_trust_suspect{upstream="up1",check="model_mismatch"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"ccgate_upstream_trust_suspect{upstream="up2",check="model_mismatch"} 0"#),
        "{m}"
    );
    // The check's verdict: 2 = suspect on the cheater; the honest upstream served nothing for the model yet.
    let check = |u: &str| {
        format!(
            r#"ccgate_upstream_trust_check{{upstream="{u}",model="{MODEL}",check="model_mismatch"}}"#
        )
    };
    assert_eq!(series(&m, &check("up1")), Some(2.0), "{m}");
    assert_eq!(
        clear(&gw, "up1", json!({"check": "model_mismatch"})).await["cleared"],
        1
    );
    assert_eq!(scorecard(&gw, "up1").await["demoted"], false);
    assert!(metrics()
        .await
        .contains(r#"ccgate_upstream_demoted{upstream="up1"} 0"#));
    send(5).await;
    assert_eq!(bad.request_count(), before.0 + 5);
    // A check name that does not exist is refused.
    let r = client()
        .post(format!("{}/api/admin/upstreams/up1/trust/clear", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"check": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The balance poller against the mock's new-api billing endpoints: $10 limit, $9.50 used → $0.50 left, below
/// `lowUsd` → one `upstream_balance_low` alert; a custom path and pointer reads the same endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balance_poller_reads_new_api_billing_and_alerts_when_low() {
    let m = mock_with(MockConfig {
        billing_limit_usd: Some(10.0),
        billing_used_usd: 9.5,
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[m.url(), m.url()]);
    files.upstreams["upstreams"][0]["balance"] =
        json!({"preset": "new-api", "intervalMinutes": 0.01, "lowUsd": 1});
    files.upstreams["upstreams"][1]["balance"] = json!({"path": "/v1/dashboard/billing/subscription",
        "jsonPointer": "/hard_limit_usd", "unit": "usd", "intervalMinutes": 0.01});
    let gw = Gateway::start(&files).await;
    let b = eventually(10, || async {
        let b = scorecard(&gw, "up1").await["balance"].clone();
        b["balanceUsd"].is_number().then_some(b)
    })
    .await;
    assert_eq!(b["balanceUsd"], 0.5, "{b:#}");
    assert_eq!(b["low"], true);
    let custom = eventually(10, || async {
        let b = scorecard(&gw, "up2").await["balance"].clone();
        b["balanceUsd"].is_number().then_some(b)
    })
    .await;
    assert_eq!(custom["balanceUsd"], 10.0);
    assert_eq!(custom["low"], false);
    let sub = m
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/v1/dashboard/billing/subscription"))
        .unwrap();
    assert_eq!(sub.header("x-api-key"), Some(UPSTREAM_KEY));
    let alerts = eventually(10, || async {
        let a: Value = client()
            .get(format!("{}/api/admin/alerts", gw.url))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let low: Vec<Value> = a["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["event"] == "upstream_balance_low")
            .cloned()
            .collect();
        (!low.is_empty()).then_some(low)
    })
    .await;
    assert_eq!(alerts[0]["details"]["upstream"], "up1");
    assert_eq!(alerts[0]["details"]["balance_usd"], 0.5);
    // Polled every 0.6 s, still low: one alert per crossing.
    let polls = m.request_count();
    eventually(10, || async {
        (m.request_count() >= polls + 4).then_some(())
    })
    .await;
    let a: Value = client()
        .get(format!("{}/api/admin/alerts", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let low = a["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["event"] == "upstream_balance_low")
        .count();
    assert_eq!(low, 1, "{a:#}");
}

/// A gateway on one upstream billed at half price, after a known sequence: a JSON answer, a stream, a request
/// marking `cache_control`, and a 529; all four stored.
async fn known_sequence(server: Value) -> (MockHandle, Gateway) {
    // Paced, so that the stream's generation time is not 0 ms.
    let m = mock_with(MockConfig {
        chunks: 5,
        event_delay_ms: 5,
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[m.url()]);
    files.upstreams["upstreams"][0]["priceMultiplier"] = json!(0.5);
    if let (Some(s), Some(extra)) = (files.server["server"].as_object_mut(), server.as_object()) {
        s.extend(extra.clone());
    }
    let gw = Gateway::start(&files).await;
    for i in 0..3 {
        let mut body = messages_body(MODEL, i == 1);
        if i == 2 {
            body["messages"][0]["content"] =
                json!([{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]);
        }
        let r = post_messages(&gw, TENANT2_KEY, &body).await;
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
    }
    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT2_KEY)
        .header("x-mock-status", "529")
        .json(&messages_body(MODEL, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
    wait_requests(&gw, 4).await;
    (m, gw)
}

/// The scorecard's figures against a known sequence: 3 answers of 25 input + 12 output tokens (one asking for
/// caching), 1 upstream error, on an upstream at `priceMultiplier` 0.5 (Sonnet: $3 / $15 per million).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scorecard_figures_are_exact_for_a_known_sequence() {
    let (_m, gw) = known_sequence(json!({})).await;
    let card = scorecard(&gw, "up1").await;
    let w = &card["models"][0]["windows"]["1h"];
    assert_eq!(card["models"][0]["model"], MODEL);
    assert_eq!(w["requests"], 4, "{card:#}");
    assert_eq!(w["ok"], 3);
    assert_eq!(w["successPercent"], 75.0);
    assert_eq!(w["errors"], json!({"upstream_http_529": 1}));
    assert_eq!(w["tokens"], json!({"input": 75, "output": 36}));
    // Per answer: 25 × $3/M + 12 × $15/M = $0.000255, halved by the multiplier.
    let per = (25.0 * 3.0 + 12.0 * 15.0) / 1e6 * 0.5;
    let cost = &w["cost"];
    assert!(
        (cost["upstreamUsd"].as_f64().unwrap() - 3.0 * per).abs() < 1e-12,
        "{cost}"
    );
    assert!((cost["perSuccessfulRequestUsd"].as_f64().unwrap() - per).abs() < 1e-12);
    assert!((cost["perMillionTokensUsd"].as_f64().unwrap() - 3.0 * per / 111.0 * 1e6).abs() < 1e-9);
    assert_eq!(w["cache"]["askedRequests"], 1);
    assert_eq!(w["cache"]["hitRequests"], 0);
    // Time to first token: one bucket per answer (the figure itself depends on the machine).
    assert!(w["ttftMs"]["p50"].is_number() && w["ttftMs"]["p95"].is_number());
    assert!(
        w["outputTokensPerSecond"]["p50"].is_number(),
        "the stream's speed: {w}"
    );
    // The windows nest: 24 h and 7 d hold the same requests.
    assert_eq!(card["models"][0]["windows"]["24h"]["requests"], 4);
    assert_eq!(card["models"][0]["windows"]["7d"]["requests"], 4);
    // Too few samples for any verdict.
    assert!(
        statuses(&card)
            .iter()
            .all(|(_, s)| s == "insufficient_data"),
        "{card:#}"
    );
}

/// The value of one series in a `/metrics` exposition (`None`: no such series).
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// The scorecard's figures exported as metrics, from the store's sums every 5 s: after a known sequence (3
/// answers of 25 + 12 tokens, one marking `cache_control` without a cache read, one upstream error, at
/// `priceMultiplier` 0.5), the gauges hold exactly the scorecard's figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scorecard_figures_are_exported_as_metrics() {
    let (_m, gw) = known_sequence(json!({"metricsToken": "metrics-token-trust"})).await;
    let labels = |window: &str| format!(r#"{{upstream="up1",model="{MODEL}",window="{window}"}}"#);
    let text = eventually(20, || async {
        let text = client()
            .get(format!("{}/metrics", gw.url))
            .bearer_auth("metrics-token-trust")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let requests = format!("ccgate_upstream_trust_requests{}", labels("1h"));
        (series(&text, &requests) == Some(4.0)).then_some(text)
    })
    .await;
    let card = scorecard(&gw, "up1").await;
    let w = &card["models"][0]["windows"]["1h"];
    for window in ["1h", "24h", "7d"] {
        let v = |name: &str| series(&text, &format!("{name}{}", labels(window)));
        assert_eq!(v("ccgate_upstream_trust_requests"), Some(4.0), "{text}");
        assert_eq!(v("ccgate_upstream_trust_success_ratio"), Some(0.75));
        assert_eq!(v("ccgate_upstream_trust_cache_hit_ratio"), Some(0.0));
        let per = (25.0 * 3.0 + 12.0 * 15.0) / 1e6 * 0.5;
        let per_request = v("ccgate_upstream_trust_cost_per_successful_request_usd").unwrap();
        assert!((per_request - per).abs() < 1e-12, "{per_request}");
        let per_mtok = v("ccgate_upstream_trust_cost_per_million_tokens_usd").unwrap();
        assert!(
            (per_mtok - 3.0 * per / 111.0 * 1e6).abs() < 1e-9,
            "{per_mtok}"
        );
    }
    // The percentiles are the scorecard's (the figure itself depends on the machine), in seconds.
    let q = |name: &str, quantile: &str| {
        let l = labels("1h");
        let l = format!("{},quantile=\"{quantile}\"}}", l.trim_end_matches('}'));
        series(&text, &format!("{name}{l}"))
    };
    let ttft_p95 = w["ttftMs"]["p95"].as_f64().unwrap();
    assert_eq!(
        q("ccgate_upstream_trust_ttft_seconds", "0.95"),
        Some(ttft_p95 / 1000.0)
    );
    let tps_p50 = w["outputTokensPerSecond"]["p50"].as_f64().unwrap();
    assert_eq!(
        q("ccgate_upstream_trust_output_tokens_per_second", "0.5"),
        Some(tps_p50)
    );
    // Every passive check: too few samples (1 = insufficient_data); no canary configured, so no canary series.
    for check in [
        "model_mismatch",
        "thinking_signature",
        "token_inflation",
        "cache_not_honoured",
        "fake_streaming",
    ] {
        let name = format!(
            r#"ccgate_upstream_trust_check{{upstream="up1",model="{MODEL}",check="{check}"}}"#
        );
        assert_eq!(series(&text, &name), Some(1.0), "{name}: {text}");
    }
    let canary =
        format!(r#"ccgate_upstream_trust_check{{upstream="up1",model="{MODEL}",check="canary"}}"#);
    assert_eq!(series(&text, &canary), None);
}

/// Two instances of `files` on one PostgreSQL schema.
async fn two_on_postgres(schema: &crate::postgres::Schema, files: &Files) -> (Gateway, Gateway) {
    let start = || async {
        let config = TempDir::new("trust-cfg");
        let data = TempDir::new("trust-data");
        files.write(&config.0);
        Gateway::start_with_env(
            config,
            data,
            &[],
            &[("CCGATE_DATABASE_URL", schema.url.as_str())],
        )
        .await
    };
    let a = start().await;
    let b = start().await;
    (a, b)
}

/// Two instances on PostgreSQL serve a substituting upstream in turn: the flag (raised by whichever instance
/// evaluates first) names sample requests served by both, since the samples are kept in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_raised_on_one_instance_names_requests_of_every_instance() {
    let Some(schema) = crate::postgres::Schema::create().await else {
        return;
    };
    let cheat = mock_with(MockConfig {
        substitute_model: Some("claude-haiku-4-5-20251001".into()),
        ..MockConfig::default()
    })
    .await;
    let (a, b) = two_on_postgres(&schema, &Files::new(&[cheat.url()])).await;
    // Alternating, so that the newest samples are of both instances.
    for i in 0..24 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = post_messages(gw, TENANT2_KEY, &messages_body(MODEL, false)).await;
        assert_eq!(r.status(), 200);
    }
    let flags = eventually(30, || async {
        let card = scorecard(&a, "up1").await;
        (open_flags(&card) == ["model_mismatch"]).then_some(card["flags"].clone())
    })
    .await;
    let ids: Vec<String> =
        serde_json::from_value(flags[0]["evidence"]["requestIds"].clone()).unwrap();
    assert_eq!(ids.len(), 5, "{flags:#}");
    let mut conn = schema.connect().await;
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT request_id, instance_id FROM requests")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let instances: std::collections::BTreeSet<Option<String>> = rows
        .iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(_, instance)| instance.clone())
        .collect();
    assert_eq!(instances.len(), 2, "{ids:?} in {rows:?}");
    // Both instances show the same flag.
    assert_eq!(scorecard(&b, "up1").await["flags"], flags);
}

/// Canary probes on two instances of one PostgreSQL store: one probe per interval for the cluster (not one per
/// instance), and both instances' scorecards show the same runs, cost and verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_probes_run_once_per_interval_for_the_whole_cluster() {
    let Some(schema) = crate::postgres::Schema::create().await else {
        return;
    };
    let reference = mock_with(MockConfig {
        realistic_usage: true,
        ..MockConfig::default()
    })
    .await;
    let cheat = mock_with(MockConfig {
        realistic_usage: true,
        inflate_input_percent: 20,
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[reference.url(), cheat.url()]);
    files.upstreams["upstreams"][0]["trust"] = json!({"reference": true});
    // Every 3 s.
    files.upstreams["upstreams"][1]["trust"] =
        json!({"canary": {"intervalMinutes": 0.05, "model": MODEL}});
    let interval = std::time::Duration::from_secs(3);
    let started = std::time::Instant::now();
    let (a, b) = two_on_postgres(&schema, &files).await;
    let card = eventually(40, || async {
        let ca = scorecard(&a, "up2").await;
        let cb = scorecard(&b, "up2").await;
        let runs = ca["canary"]["runs"].as_u64().unwrap_or(0);
        (runs >= 3 && ca["canary"] == cb["canary"] && open_flags(&ca) == ["canary"]).then_some(ca)
    })
    .await;
    // Probes only (no traffic): one request to the cheater per probe. Claiming a slot needs the last claim to be
    // an interval old, so k probes take at least (k - 1) intervals, whatever the number of instances.
    let probes = cheat.request_count() as u64;
    let elapsed = started.elapsed();
    let bound = (elapsed.as_millis() / interval.as_millis()) as u64 + 1;
    assert!(
        probes <= bound,
        "{probes} probes in {elapsed:?}: more than one per {interval:?}"
    );
    let c = &card["canary"];
    assert!(c["runs"].as_u64().unwrap() <= probes, "{c:#}");
    assert_eq!(c["check"]["status"], "suspect", "{c:#}");
    assert!(c["costUsd"].as_f64().unwrap() > 0.0, "{c:#}");
    assert_eq!(
        c["last"]["inputTokens"].as_u64().unwrap(),
        c["reference"]["inputTokens"].as_u64().unwrap() * 120 / 100,
        "{c:#}"
    );
    // Cleared on one instance, the verdict is gone on both.
    clear(&b, "up2", json!({"check": "canary"})).await;
    let after = scorecard(&a, "up2").await;
    assert!(open_flags(&after).is_empty(), "{after:#}");
    assert_ne!(after["canary"]["check"]["status"], "suspect", "{after:#}");
}

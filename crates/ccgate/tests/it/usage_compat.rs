//! `POST /usage` in the original CCGate's response shape (`success`, `type`, `data`), beside CCGate's own fields,
//! for a tenant and for the admin; errors with `"success": false`. And SIGHUP reloading the config.

use crate::common::*;
use serde_json::{json, Value};

async fn usage(gw: &Gateway, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/usage", gw.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_answers_in_the_original_shape_for_tenant_and_admin() {
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.tenants["tenants"][0]["limits"] = json!({"daily": {"maxUSD": 10.0}});
    let gw = Gateway::start(&files).await;
    for _ in 0..2 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
        let _ = r.text().await;
    }
    wait_requests(&gw, 2).await;

    let (status, v) = usage(&gw, json!({"type": "tenant", "apiKey": TENANT_KEY})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["type"], "tenant");
    let u = &v["data"]["usage"];
    assert_eq!(u["tenantId"], "t1");
    assert_eq!(u["date"], chrono::Utc::now().date_naive().to_string());
    let cost = v["totals"]["cost_nanousd"].as_i64().unwrap();
    assert!(cost > 0);
    assert_eq!(
        u["limits"]["usd"]["used"].as_f64().unwrap(),
        cost as f64 / 1e9,
        "{v}"
    );
    assert_eq!(u["limits"]["usd"]["limit"], 10.0);
    let pct = u["limits"]["usd"]["percentage"].as_f64().unwrap();
    assert!(
        (pct - (cost as f64 / 1e9 / 10.0 * 100.0)).abs() < 0.01,
        "{v}"
    );
    assert_eq!(u["limits"]["usd"]["exceeded"], false);
    assert_eq!(u["todayUsage"]["requests"], 2);
    assert_eq!(u["todayUsage"]["inputTokens"], v["totals"]["input_tokens"]);
    assert_eq!(
        u["todayUsage"]["totalCost"].as_f64().unwrap(),
        cost as f64 / 1e9
    );
    assert_eq!(v["data"]["tenant"], json!({"id": "t1", "name": "t1"}));
    // Today's fields stay beside them.
    assert_eq!(v["totals"]["requests"], 2);
    assert!(v["limits"].is_array());

    let (status, v) = usage(
        &gw,
        json!({"type": "admin", "username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((&v["success"], &v["type"]), (&json!(true), &json!("admin")));
    let per_tenant = v["data"]["usage"].as_array().unwrap();
    assert_eq!(per_tenant.len(), 2);
    assert_eq!(per_tenant[0]["tenantId"], "t1");
    assert_eq!(per_tenant[0]["todayUsage"]["requests"], 2);
    assert_eq!(
        per_tenant[1]["limits"]["usd"]["limit"],
        Value::Null,
        "t2 has no daily limit"
    );
    let system = &v["data"]["system"];
    assert_eq!(system["tenants"]["total"], 2);
    assert_eq!(
        system["upstreams"],
        json!({"total": 1, "enabled": 1, "healthy": 1})
    );
    assert_eq!(system["todayUsage"]["requests"], 2);
    assert!(system["uptime"].is_u64() && system["version"].is_string());
    let up = &v["data"]["upstreams"][0];
    assert_eq!(
        (&up["id"], &up["healthy"], &up["status"]),
        (&json!("up1"), &json!(true), &json!("healthy"))
    );
    assert!(!v.to_string().contains(UPSTREAM_KEY));
    assert_eq!(v["totals"]["requests"], 2, "today's admin fields stay");
    assert!(v["tenants"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_say_success_false_with_the_right_status() {
    let mock = mock().await;
    let gw = Gateway::start(&Files::new(&[mock.url()])).await;
    let (status, v) = usage(
        &gw,
        json!({"type": "tenant", "apiKey": "not-a-key-of-anyone"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("invalid credentials"),
        "{v}"
    );
    let (status, v) = usage(
        &gw,
        json!({"type": "admin", "username": "admin", "password": "wrong-password"}),
    )
    .await;
    assert_eq!((status, &v["success"]), (401, &json!(false)));
    let (status, v) = usage(
        &gw,
        json!({"type": "tenant", "apiKey": TENANT_KEY, "from": "yesterday"}),
    )
    .await;
    assert_eq!((status, &v["success"]), (400, &json!(false)), "{v}");
    let r = client()
        .post(format!("{}/usage", gw.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["success"], false);
}

/// SIGHUP applies an edited config at once (and does not end the process, SIGHUP's default action).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config() {
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    files.tenants["tenants"][0]["enabled"] = json!(false);
    gw.write_config("tenants.json", &files.tenants);
    let pid = gw.child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(10, || async {
        gw.logs().contains("SIGHUP: reloading").then_some(())
    })
    .await;
    eventually(10, || async {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        (r.status() == 401).then_some(())
    })
    .await;
    let r = post_messages(&gw, TENANT2_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200, "still serving after SIGHUP");
}

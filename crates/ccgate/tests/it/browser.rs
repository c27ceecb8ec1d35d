//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver), against the real
//! gateway. Without `/usr/bin/chromium` and `chromedriver` each test says why and returns (a machine with only
//! Rust still passes `cargo test`); with `CCGATE_REQUIRE_BROWSER=1` (set by `.ci/run` once it installed them) a
//! missing browser fails instead.

use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

fn chromedriver_path() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("chromedriver"))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| {
        let f = PathBuf::from("/usr/bin/chromedriver");
        f.is_file().then_some(f)
    })
}

/// chromedriver on a free port (its process group killed on drop) and one headless Chromium session.
struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// `None` (after saying why) when Chromium or chromedriver is not installed.
    async fn start(test: &str) -> Option<Browser> {
        let driver_bin = chromedriver_path();
        let missing = match (&driver_bin, Path::new(CHROMIUM).is_file()) {
            (Some(_), true) => None,
            (None, true) => Some("chromedriver is not installed".to_owned()),
            (Some(_), false) => Some(format!("{CHROMIUM} is not installed")),
            (None, false) => Some(format!("{CHROMIUM} and chromedriver are not installed")),
        };
        if let Some(why) = missing {
            if std::env::var("CCGATE_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("{test}: {why}, and CCGATE_REQUIRE_BROWSER=1");
            }
            eprintln!(
                "SKIPPED {test}: {why}; the dashboard's browser tests need them \
                 (Debian/Ubuntu: apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin.unwrap())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chromedriver");
        let profile = TempDir::new("chromium");
        let mut browser = Browser {
            client: None,
            driver,
            _profile: profile,
        };
        let url = format!("http://127.0.0.1:{port}");
        eventually(20, || async {
            let r = client().get(format!("{url}/status")).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            (v["value"]["ready"] == true).then_some(())
        })
        .await;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1700", "--lang=en-US", "--no-first-run",
                         format!("--user-data-dir={}", browser._profile.0.display())],
            },
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&url)
            .await
            .expect("open a headless Chromium session through chromedriver");
        browser.client = Some(client);
        Some(browser)
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Ends the session (chromedriver closes Chromium), then the driver.
    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }

    /// Opens `url` and hooks the page: JS errors, unhandled rejections and `alert()` calls are collected.
    async fn open(&self, url: &str) {
        self.c().goto(url).await.unwrap();
        self.hook().await;
    }

    async fn reload(&self) {
        self.c().refresh().await.unwrap();
        self.hook().await;
    }

    async fn hook(&self) {
        let ready = self
            .js(
                "window.__errors = []; window.__alerts = [];
                 window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); });
                 window.addEventListener('unhandledrejection', function (e) {
                   window.__errors.push('unhandled rejection: ' + String(e.reason && e.reason.message || e.reason)); });
                 window.alert = function (m) { window.__alerts.push(String(m)); };
                 return !!window.CCGateDashboard;",
            )
            .await;
        // The script sets CCGateDashboard last: false means it threw while loading.
        assert_eq!(
            ready,
            json!(true),
            "the dashboard's script did not finish loading"
        );
    }

    async fn js(&self, script: &str) -> Value {
        self.c().execute(script, vec![]).await.unwrap()
    }

    /// Polls `script` (a function body that returns a value) until it returns something truthy.
    async fn wait_js(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "waited {WAIT:?} for {what}; page text:\n{}",
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the page shows (`innerText` of the body: hidden elements are left out).
    async fn text(&self) -> String {
        self.js("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn click(&self, css: &str) {
        self.c()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.c().find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn login_admin(&self, user: &str, pass: &str) {
        self.click("#tab-admin").await;
        self.type_into("#admin-user", user).await;
        self.type_into("#admin-pass", pass).await;
        self.click("#panel-admin button[type=submit]").await;
    }

    async fn login_tenant(&self, key: &str) {
        self.click("#tab-tenant").await;
        self.type_into("#api-key", key).await;
        self.click("#panel-tenant button[type=submit]").await;
    }

    /// Waits for the dashboard (not the login card) with the totals drawn.
    async fn wait_dashboard(&self) {
        self.wait_js(
            "the dashboard",
            "return !document.getElementById('dash').hidden && document.getElementById('login').hidden
                    && document.querySelectorAll('#totals .stat').length > 0;",
        )
        .await;
    }

    /// Selects the "All" range and waits for the answer (the days of the test and the browser may differ).
    async fn all_time(&self) {
        self.click("[data-range=all]").await;
        self.wait_js(
            "the all-time range",
            "return document.getElementById('meta').textContent.indexOf('Showing all time') === 0
                    && !document.getElementById('refresh').disabled;",
        )
        .await;
    }

    /// The totals' stats as {label: value}.
    async fn stats(&self) -> Value {
        self.js(
            "var o = {}; document.querySelectorAll('#totals .stat').forEach(function (s) {
               o[s.querySelector('.k').textContent] = s.querySelector('.v').textContent; }); return o;",
        )
        .await
    }

    /// The cells' text of the rows of `#id tbody`.
    async fn rows(&self, id: &str) -> Vec<Vec<String>> {
        let v = self
            .js(&format!(
                "return Array.from(document.querySelectorAll('#{id} tbody tr')).map(function (r) {{
                   return Array.from(r.cells).map(function (c) {{ return c.textContent; }}); }});"
            ))
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// No JS error and no `alert()` since the page was opened.
    async fn assert_clean(&self) {
        let v = self
            .js("return {errors: window.__errors, alerts: window.__alerts};")
            .await;
        assert_eq!(
            v,
            json!({"errors": [], "alerts": []}),
            "JS errors or alerts"
        );
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.c().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver runs in its own process group: Chromium and its helpers go with it.
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn dashboard_url(gw: &Gateway) -> String {
    format!("{}/dashboard", gw.url)
}

async fn send(gw: &Gateway, key: &str, model: &str) -> u16 {
    post_messages(gw, key, &messages_body(model, false))
        .await
        .status()
        .as_u16()
}

/// Waits until the ledger holds `requests` requests and `refused` refusals.
async fn wait_ledger(gw: &Gateway, requests: i64, refused: i64) {
    eventually(10, || async {
        let u = admin_usage(gw).await;
        (u["totals"]["requests"].as_i64() == Some(requests)
            && u["refusals"]["requests"].as_i64().unwrap_or(0) == refused)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn browser_admin_sees_totals_tenants_refusals_and_health() {
    let Some(b) = Browser::start("browser_admin_sees_totals_tenants_refusals_and_health").await
    else {
        return;
    };
    let mock = mock().await;
    let gw = Gateway::start(&Files::new(&[mock.url()])).await;
    for _ in 0..3 {
        assert_eq!(send(&gw, TENANT_KEY, "claude-sonnet-4-6").await, 200);
    }
    assert_eq!(send(&gw, TENANT2_KEY, "claude-opus-4-1").await, 200);
    // t1 may not use opus: refused by the gateway, never sent upstream.
    assert_eq!(send(&gw, TENANT_KEY, "claude-opus-4-1").await, 403);
    wait_ledger(&gw, 4, 1).await;

    b.open(&dashboard_url(&gw)).await;
    b.login_admin("admin", ADMIN_PASSWORD).await;
    b.wait_dashboard().await;
    b.all_time().await;
    b.wait_js(
        "the tenants and health tables",
        "return document.querySelector('#tenants table') && document.querySelector('#health table');",
    )
    .await;

    let stats = b.stats().await;
    assert_eq!(stats["Requests"], "4", "{stats}");
    assert_eq!(stats["Refused"], "1", "{stats}");
    let who = b
        .js("return document.getElementById('who').textContent;")
        .await;
    assert_eq!(who, "Administrator");

    // Tenants: ID, Name, Enabled, Requests, Refused, ...
    let mut tenants = b.rows("tenants").await;
    tenants.sort();
    assert_eq!(tenants.len(), 2, "{tenants:?}");
    assert_eq!(
        tenants[0][..5],
        ["t1", "t1", "yes", "3", "1"],
        "{tenants:?}"
    );
    assert_eq!(
        tenants[1][..5],
        ["t2", "t2", "yes", "1", "0"],
        "{tenants:?}"
    );
    let count = b
        .js("return document.getElementById('tenants-count').textContent;")
        .await;
    assert_eq!(count, "2 tenants");

    // Refusals: Tenant, Reason, Status, Requests.
    assert_eq!(
        b.rows("refusals").await,
        [["t1", "Model not allowed", "403", "1"]]
    );

    // By model: both models that reached the upstream.
    let mut models: Vec<String> = b
        .rows("models")
        .await
        .into_iter()
        .map(|r| format!("{} {}", r[0], r[1]))
        .collect();
    models.sort();
    assert_eq!(models, ["claude-opus-4-1 1", "claude-sonnet-4-6 3"]);

    // Upstreams: what /health says, as the table shows it.
    let h = health(&gw).await;
    let up = &h["upstreams"][0];
    let health_rows = b.rows("health").await;
    assert_eq!(health_rows.len(), 1, "{health_rows:?}");
    let row = &health_rows[0];
    assert_eq!(row[0], "up1");
    assert_eq!(
        row[1],
        up["status"].as_str().unwrap().replace('_', " "),
        "{h}"
    );
    assert_eq!(row[1], "healthy", "{h}");
    assert_eq!(row[5], up["requests_total"].to_string(), "{h}");
    let summary = b
        .js("return document.querySelector('#health-summary .badge').textContent;")
        .await;
    assert_eq!(summary, h["status"], "{h}");
    // No config or ledger alarm on a healthy gateway.
    assert_eq!(
        b.js("return document.querySelectorAll('#health .msg').length;")
            .await,
        0
    );
    assert_eq!(
        b.js("return document.getElementById('banner').hidden;")
            .await,
        true
    );

    // One day of data: one bar, a bar's width (not the whole chart's: the page drew one wide block before).
    let bar = b
        .js("var r = document.querySelectorAll('#chart rect.b');
             return {bars: r.length, width: r[0].getBBox().width,
                     chart: document.getElementById('chart').getBBox().width};")
        .await;
    assert_eq!(bar["bars"], 1, "{bar}");
    assert!(bar["width"].as_f64().unwrap() <= 48.0, "{bar}");
    assert!(bar["chart"].as_f64().unwrap() > 400.0, "{bar}");
    let shot = b.screenshot("dashboard-admin.png").await;
    eprintln!("screenshot of the admin view: {}", shot.display());
    b.assert_clean().await;
    b.close().await;
}

#[tokio::test]
async fn browser_tenant_sees_only_its_own_usage() {
    let Some(b) = Browser::start("browser_tenant_sees_only_its_own_usage").await else {
        return;
    };
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.tenants["tenants"][1]["id"] = json!("other-tenant-id");
    files.tenants["tenants"][1]["name"] = json!("Other Tenant Name");
    files.tenants["tenants"][1]["allowedModels"] = json!(["*opus*"]);
    let gw = Gateway::start(&files).await;
    for _ in 0..2 {
        assert_eq!(send(&gw, TENANT_KEY, "claude-sonnet-4-6").await, 200);
    }
    for _ in 0..3 {
        assert_eq!(send(&gw, TENANT2_KEY, "claude-opus-4-1").await, 200);
    }
    assert_eq!(send(&gw, TENANT2_KEY, "claude-haiku-4-5").await, 403);
    wait_ledger(&gw, 5, 1).await;

    b.open(&dashboard_url(&gw)).await;
    b.login_tenant(TENANT_KEY).await;
    b.wait_dashboard().await;
    b.all_time().await;

    let stats = b.stats().await;
    assert_eq!(stats["Requests"], "2", "{stats}");
    assert_eq!(stats["Refused"], "0", "{stats}");
    let who = b
        .js("return document.getElementById('who').textContent;")
        .await;
    assert_eq!(who, "Tenant t1");
    let models: Vec<String> = b
        .rows("models")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(models, ["claude-sonnet-4-6"]);
    // The tenant's cards, not the admin's.
    let shown = b
        .js(
            "return ['limits-card', 'tenants-card', 'health-card', 'auto-wrap'].map(function (id) {
               return !document.getElementById(id).hidden; });",
        )
        .await;
    assert_eq!(shown, json!([true, false, false, false]));

    // Nothing of the other tenant anywhere: not in the text, not in the DOM.
    let text = b.text().await;
    let html = b
        .js("return document.documentElement.outerHTML;")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    for needle in [
        "other-tenant-id",
        "Other Tenant Name",
        "claude-opus",
        TENANT2_KEY,
    ] {
        assert!(!text.contains(needle), "{needle} in the page:\n{text}");
        assert!(!html.contains(needle), "{needle} in the DOM");
    }
    b.assert_clean().await;
    b.close().await;
}

#[tokio::test]
async fn browser_wrong_credentials_and_default_password_show_messages() {
    let Some(b) =
        Browser::start("browser_wrong_credentials_and_default_password_show_messages").await
    else {
        return;
    };
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.server["admin"]["password"] = json!("changeme");
    let gw = Gateway::start(&files).await;
    assert_eq!(send(&gw, TENANT_KEY, "claude-sonnet-4-6").await, 200);

    let login_error = "var e = document.getElementById('login-error');
                       return !e.hidden && document.getElementById('dash').hidden && e.textContent;";
    b.open(&dashboard_url(&gw)).await;
    b.login_tenant("tenant-key-that-does-not-exist").await;
    let msg = b.wait_js("the wrong-key message", login_error).await;
    assert_eq!(
        msg,
        "Wrong credentials: this API key is unknown or disabled."
    );

    b.login_admin("admin", "not-the-password").await;
    let msg = b.wait_js("the wrong-password message", login_error).await;
    assert_eq!(msg, "Wrong credentials: check the username and password.");

    // The right password, but a known default: the gateway refuses it and the page says what to do.
    b.login_admin("admin", "changeme").await;
    let msg = b
        .wait_js(
            "the default-password message",
            "var e = document.getElementById('login-error');
             return !e.hidden && e.textContent.indexOf('Admin login refused') === 0 && e.textContent;",
        )
        .await;
    let msg = msg.as_str().unwrap();
    assert!(msg.contains("known default"), "{msg}");
    assert!(msg.contains("config/server.json"), "{msg}");
    // No data was shown at any point.
    let state = b
        .js("return {dash: document.getElementById('dash').hidden,
                     stats: document.querySelectorAll('#totals .stat').length,
                     logout: document.getElementById('logout').hidden};")
        .await;
    assert_eq!(state, json!({"dash": true, "stats": 0, "logout": true}));
    b.assert_clean().await;
    b.close().await;
}

#[tokio::test]
async fn browser_hostile_tenant_names_render_as_text() {
    let Some(b) = Browser::start("browser_hostile_tenant_names_render_as_text").await else {
        return;
    };
    const NAME: &str = "<img src=x onerror=alert(1)>";
    const ID: &str = "t2<svg onload=alert(2)>";
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.tenants["tenants"][1]["id"] = json!(ID);
    files.tenants["tenants"][1]["name"] = json!(NAME);
    files.tenants["tenants"][1]["allowedModels"] = json!(["*sonnet*"]);
    let gw = Gateway::start(&files).await;
    assert_eq!(send(&gw, TENANT2_KEY, "claude-sonnet-4-6").await, 200);
    // A refusal too, so the id lands in the refusals table as well.
    assert_eq!(send(&gw, TENANT2_KEY, "claude-opus-4-1").await, 403);
    wait_ledger(&gw, 1, 1).await;

    b.open(&dashboard_url(&gw)).await;
    b.login_admin("admin", ADMIN_PASSWORD).await;
    b.wait_dashboard().await;
    b.all_time().await;
    b.wait_js(
        "the tenants table",
        "return document.querySelector('#tenants table');",
    )
    .await;
    let tenants = b.rows("tenants").await;
    let row = tenants
        .iter()
        .find(|r| r[0] == ID)
        .unwrap_or_else(|| panic!("{tenants:?}"));
    assert_eq!(row[1], NAME);
    let refusals = b.rows("refusals").await;
    assert_eq!(refusals[0][0], ID, "{refusals:?}");
    assert!(b.text().await.contains(NAME));
    let injected = b
        .js("return {img: document.querySelectorAll('img').length,
                     svg: document.querySelectorAll('svg:not(#chart)').length,
                     scripts: document.scripts.length};")
        .await;
    assert_eq!(injected, json!({"img": 0, "svg": 0, "scripts": 1}));
    b.assert_clean().await;

    // The tenant's own view shows its name in the header, as text.
    b.click("#logout").await;
    b.login_tenant(TENANT2_KEY).await;
    b.wait_dashboard().await;
    let who = b
        .js("return document.getElementById('who').textContent;")
        .await;
    assert_eq!(who, format!("Tenant {NAME} ({ID})"));
    let imgs = b
        .js("return document.querySelectorAll('img').length;")
        .await;
    assert_eq!(imgs, 0);
    b.assert_clean().await;
    b.close().await;
}

#[tokio::test]
async fn browser_rejected_config_reload_shows_the_alert() {
    let Some(b) = Browser::start("browser_rejected_config_reload_shows_the_alert").await else {
        return;
    };
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    let alert = "var a = Array.from(document.querySelectorAll('#health .msg.error[role=alert]'))
                   .filter(function (e) { return e.offsetParent !== null; });
                 return a.length ? a[0].textContent : null;";

    b.open(&dashboard_url(&gw)).await;
    b.login_admin("admin", ADMIN_PASSWORD).await;
    b.wait_dashboard().await;
    b.wait_js(
        "the health table",
        "return document.querySelector('#health table');",
    )
    .await;
    assert_eq!(
        b.js(alert).await,
        Value::Null,
        "no alert while the config is good"
    );

    let mut bad = files.tenants.clone();
    bad["tenants"][0]["allowedModels"] = json!("not-a-list");
    gw.write_config("tenants.json", &bad);
    eventually(10, || async {
        (health(&gw).await["config"]["status"] == "rejected").then_some(())
    })
    .await;

    // A fresh page: the admin signs in again (the password is never stored) and sees the alert.
    b.reload().await;
    b.login_admin("admin", ADMIN_PASSWORD).await;
    b.wait_dashboard().await;
    let text = b.wait_js("the rejected-config alert", alert).await;
    let text = text.as_str().unwrap();
    assert!(
        text.starts_with("The config files on disk were rejected"),
        "{text}"
    );
    assert!(
        text.contains("tenants.json: tenants[0].allowedModels"),
        "{text}"
    );
    // The last good config still runs: the tables are there.
    b.wait_js(
        "the tenants and health tables",
        "return document.querySelector('#tenants table') && document.querySelector('#health table');",
    )
    .await;
    b.assert_clean().await;
    b.close().await;
}

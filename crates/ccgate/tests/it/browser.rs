//! The console in a real browser: headless Chromium driven through chromedriver (WebDriver), against the real
//! gateway and the mock upstream. Screenshots go to `target/screenshots/`. Without `/usr/bin/chromium` and `chromedriver` each test says why and returns (a machine with only
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
        Self::start_with(test, &["--window-size=1280,1700", "--lang=en-US"]).await
    }

    /// With Chromium's window size and language (and any other flags) given.
    /// A Chinese browser in dark mode, 375 px wide like a phone.
    async fn chinese_dark_phone(test: &str) -> Option<Browser> {
        let b = Browser::start_with(
            test,
            &[
                "--window-size=1280,1000",
                "--lang=zh-CN",
                "--force-dark-mode",
            ],
        )
        .await?;
        // Chromium's --window-size stops at 500 px wide; WebDriver's window size does not.
        b.c().set_window_size(375, 1000).await.unwrap();
        Some(b)
    }

    async fn start_with(test: &str, args: &[&str]) -> Option<Browser> {
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
                "SKIPPED {test}: {why}; the console's browser tests need them \
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
        let mut flags: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect();
        flags.push(format!("--user-data-dir={}", browser._profile.0.display()));
        let lang = args
            .iter()
            .find_map(|a| a.strip_prefix("--lang="))
            .unwrap_or("en-US");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": flags,
                "prefs": {"intl": {"accept_languages": lang}},
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
        let loaded = self
            .js(
                "window.__errors = []; window.__alerts = [];
                 window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e)); });
                 window.addEventListener('unhandledrejection', function (e) {
                   window.__errors.push('unhandled rejection: ' + String(e.reason && e.reason.message || e.reason)); });
                 document.addEventListener('securitypolicyviolation', function (e) {
                   window.__errors.push('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI); });
                 window.alert = function (m) { window.__alerts.push(String(m)); };
                 return !!window.CCGateConsole;",
            )
            .await;
        // The script sets CCGateConsole when it runs: false means it did not load or threw at once.
        assert_eq!(loaded, json!(true), "the console's script did not load");
        self.wait_js(
            "the console's first screen",
            "return window.CCGateConsole.ready;",
        )
        .await;
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

    /// Logs out and waits for the login card (the logout is a request: the card comes back when it is answered).
    async fn logout(&self) {
        self.click("#logout").await;
        self.wait_js(
            "the login card",
            "return !document.getElementById('login').hidden;",
        )
        .await;
    }

    /// Waits until the section `#id` has loaded what it shows.
    async fn wait_ready(&self, id: &str) {
        let v = self
            .wait_js(
                &format!("#{id} to load"),
                &format!(
                    "var s = document.getElementById('{id}');
                     return s && s.getAttribute('data-state') !== 'loading' && s.getAttribute('data-state');"
                ),
            )
            .await;
        assert_eq!(v, "ready", "#{id}: {}", self.text().await);
    }

    /// Signs in as the admin and waits for the overview.
    async fn admin_overview(&self) {
        self.login_admin("admin", ADMIN_PASSWORD).await;
        self.wait_js(
            "the admin console",
            "return !document.getElementById('nav').hidden && document.getElementById('login').hidden;",
        )
        .await;
        for id in ["stats", "chart", "spend", "upstreams"] {
            self.wait_ready(id).await;
        }
    }

    /// Opens an admin view through the navigation.
    async fn nav(&self, view: &str) {
        self.click(&format!("#nav a[data-view={view}]")).await;
    }

    /// The cells' text of the rows of `<css> tbody`.
    async fn rows(&self, css: &str) -> Vec<Vec<String>> {
        let v = self
            .js(&format!(
                "return Array.from(document.querySelectorAll('{css} tbody tr')).map(function (r) {{
                   return Array.from(r.cells).map(function (c) {{ return c.textContent; }}); }});"
            ))
            .await;
        serde_json::from_value(v).unwrap()
    }

    async fn text_of(&self, css: &str) -> String {
        let v = self
            .js(&format!(
                "var e = document.querySelector('{css}'); return e ? e.textContent : null;"
            ))
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("no {css} in the page"))
            .to_owned()
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

    /// Saves a PNG of the viewport under `target/screenshots/`.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.c().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
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

fn admin_url(gw: &Gateway) -> String {
    format!("{}/admin", gw.url)
}

async fn send(gw: &Gateway, key: &str, model: &str) -> u16 {
    post_messages(gw, key, &messages_body(model, false))
        .await
        .status()
        .as_u16()
}

/// The admin API with Basic credentials, for what the test checks behind the page's back.
async fn admin_get(gw: &Gateway, path: &str) -> Value {
    let r = client()
        .get(format!("{}{path}", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// Waits until the request log holds `n` rows of `tenant`.
async fn wait_logged(gw: &Gateway, tenant: &str, n: usize) {
    eventually(10, || async {
        let v = admin_get(gw, &format!("/api/admin/requests?tenant={tenant}")).await;
        (v["requests"].as_array().map(Vec::len) == Some(n)).then_some(())
    })
    .await;
}

/// The run: the admin signs in and makes a tenant in the page, the new key makes real requests through
/// /anthropic and /openai, the admin sees them in the chart and the request log, the tenant signs in and sees only
/// its own data, and the pages fit a 375-px phone.
#[tokio::test]
async fn browser_console_end_to_end() {
    let Some(b) = Browser::start("browser_console_end_to_end").await else {
        return;
    };
    let mock = mock().await;
    let gw = Gateway::start(&Files::new(&[mock.url()])).await;
    // The other tenant's data, which the new tenant must never see.
    assert_eq!(send(&gw, TENANT2_KEY, "claude-opus-4-1").await, 200);
    wait_logged(&gw, "t2", 1).await;

    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;
    assert_eq!(b.text_of("#who").await, "Administrator admin");
    let ups = b.rows("#upstreams").await;
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert_eq!(ups[0][0], "up1");
    assert_eq!(ups[0][1], "healthy", "{ups:?}");

    // An upstream switched off from the page: a runtime override, shown as such; then back to the file's values.
    b.click("#upstreams tr[data-id=up1] button[data-action=toggle]")
        .await;
    b.wait_js(
        "up1 disabled",
        "var r = document.querySelector('#upstreams tr[data-id=up1]'); return r && r.cells[2].textContent === 'no *';",
    )
    .await;
    let up = admin_get(&gw, "/api/admin/upstreams").await;
    assert_eq!(up["upstreams"][0]["enabled"], false, "{up}");
    assert_eq!(up["upstreams"][0]["overrides"]["enabled"], false, "{up}");
    b.click("#upstreams tr[data-id=up1] button[data-action=reset]")
        .await;
    b.wait_js(
        "up1 back to the file",
        "var r = document.querySelector('#upstreams tr[data-id=up1]'); return r && r.cells[2].textContent === 'yes'
                && !r.querySelector('button[data-action=reset]');",
    )
    .await;
    let up = admin_get(&gw, "/api/admin/upstreams").await;
    assert_eq!(up["upstreams"][0]["enabled"], true, "{up}");
    assert_eq!(
        up["upstreams"][0]["overrides"]["enabled"],
        Value::Null,
        "{up}"
    );

    // Chinese, and back: the catalogue is switched, and remembered.
    b.c()
        .find(Locator::Css("#lang"))
        .await
        .unwrap()
        .select_by_value("zh-CN")
        .await
        .unwrap();
    b.wait_js(
        "the Chinese catalogue",
        "return document.querySelector('#nav a[data-view=overview]').textContent === '概览'
                && document.documentElement.lang === 'zh-CN';",
    )
    .await;
    b.wait_ready("upstreams").await;
    b.screenshot("console-admin-overview-zh.png").await;
    b.c()
        .find(Locator::Css("#lang"))
        .await
        .unwrap()
        .select_by_value("en")
        .await
        .unwrap();
    b.wait_js(
        "the English catalogue",
        "return document.querySelector('#nav a[data-view=overview]').textContent === 'Overview'
                && localStorage.getItem('ccgate.lang') === 'en';",
    )
    .await;

    // A bad edit: the form names the field and nothing is made.
    b.nav("tenants").await;
    b.wait_ready("tenants").await;
    b.click("#create summary").await;
    b.type_into("#new-name", "Alice Example").await;
    b.type_into("#new-id", "alice").await;
    b.type_into("#new-allowedModels", "*sonnet*").await;
    b.type_into("#new-limits-daily", "-1").await;
    b.click("#create-form button[type=submit]").await;
    let err = b
        .wait_js(
            "the form error",
            "var e = document.querySelector('#create-form > .msg.error');
             return e && !e.hidden && e.textContent;",
        )
        .await;
    assert!(err.as_str().unwrap().starts_with("limits.daily"), "{err}");
    assert_eq!(
        b.js("return document.getElementById('new-limits-daily').getAttribute('aria-invalid');")
            .await,
        "true"
    );
    let listed = admin_get(&gw, "/api/admin/tenants").await;
    assert!(
        !listed.to_string().contains("alice"),
        "a refused form made a tenant: {listed}"
    );

    b.type_into("#new-limits-daily", "5").await;
    b.click("#create-form button[type=submit]").await;
    let key = b
        .wait_js(
            "the new key",
            "var k = document.getElementById('new-key'); return k && k.textContent;",
        )
        .await;
    let key = key.as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-ccg-"), "{key}");
    // Copy: to the clipboard, or (where the browser refuses it) the key is selected for Ctrl+C.
    b.click("#key-card p button.copy").await;
    let copied = b
        .wait_js(
            "the copy button's answer",
            "var t = document.querySelector('#key-card p button.copy').textContent;
             return t !== 'Copy' && {button: t, selection: String(getSelection())};",
        )
        .await;
    match copied["button"].as_str().unwrap() {
        "Copied" => {}
        "Selected: press Ctrl+C" => assert_eq!(copied["selection"], key.as_str()),
        other => panic!("{other}"),
    }
    let env = b.text_of("#new-claude-env").await;
    assert_eq!(
        env,
        format!(
            "export ANTHROPIC_BASE_URL={}/anthropic\nexport ANTHROPIC_AUTH_TOKEN={key}",
            gw.url
        )
    );
    assert!(b
        .text_of("#new-openai")
        .await
        .contains(&format!("{}/openai/v1", gw.url)));
    b.wait_ready("tenants").await;
    b.wait_js(
        "alice in the table",
        "return document.querySelector('#tenants tr[data-id=alice]');",
    )
    .await;
    b.screenshot("console-admin-tenant-created.png").await;
    let listed = admin_get(&gw, "/api/admin/tenants").await;
    let stored = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(stored["name"], "Alice Example");
    assert_eq!(stored["source"], "console");
    assert_eq!(stored["allowedModels"], json!(["*sonnet*"]));
    assert_eq!(stored["limits"]["daily"]["maxUSD"], 5.0);
    assert!(!listed.to_string().contains(&key), "the key is listed");

    // The new key, for real, through both APIs.
    for _ in 0..2 {
        assert_eq!(send(&gw, &key, "claude-sonnet-4-6").await, 200);
    }
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Not allowed for alice: refused by the gateway, and logged.
    assert_eq!(send(&gw, &key, "claude-haiku-4-5").await, 403);
    wait_logged(&gw, "alice", 4).await;

    // The admin sees them in the chart (stacked by tenant) and in the request log.
    b.nav("overview").await;
    b.wait_ready("chart").await;
    b.wait_ready("stats").await;
    let bars = b
        .js("return {alice: document.querySelectorAll('#chart rect.seg[data-key=alice]').length,
                     t2: document.querySelectorAll('#chart rect.seg[data-key=t2]').length,
                     legend: Array.from(document.querySelectorAll('#chart .legend .key')).map(function (k) { return k.textContent; }).sort()};")
        .await;
    assert_eq!(bars["alice"], 1, "{bars}");
    assert_eq!(bars["t2"], 1, "{bars}");
    assert_eq!(bars["legend"], json!(["alice", "t2"]), "{bars}");
    // The totals as the API counts them (refusals included or not), as the page shows them.
    let today = b.text_of("#stat-today .s").await;
    let day = chrono::Local::now().format("%Y-%m-%d");
    let u = admin_get(
        &gw,
        &format!("/api/admin/usage?from={day}&to={day}&interval=day&groupBy=tenant"),
    )
    .await;
    let requests = u["totals"]["requests"].as_f64().unwrap() as i64;
    assert!(requests >= 4, "{u}");
    assert!(
        today.starts_with(&format!("{requests} requests")),
        "{today} {u}"
    );
    let spend = b.rows("#spend").await;
    let row = spend
        .iter()
        .find(|r| r[0] == "Alice Example (alice)")
        .unwrap_or_else(|| panic!("{spend:?}"));
    let listed = admin_get(&gw, "/api/admin/tenants").await;
    let month = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "alice")
        .map(|t| t["usage"]["month"]["requests"].clone())
        .unwrap();
    assert!(month.as_i64().unwrap() >= 3, "{listed}");
    assert_eq!(row[3], month.to_string(), "{spend:?}");
    assert!(row[4].starts_with("Daily budget: $"), "{spend:?}");
    b.screenshot("console-admin-overview.png").await;

    b.nav("requests").await;
    b.wait_ready("requests").await;
    b.type_into("#rq-tenant", "alice").await;
    b.click("#rq-filters button[type=submit]").await;
    let rows = b
        .wait_js(
            "alice's requests",
            "var r = document.querySelectorAll('#rq-table tbody tr');
             return r.length === 4 && Array.from(r).every(function (x) { return x.dataset.tenant === 'alice'; });",
        )
        .await;
    assert_eq!(rows, true);
    // Time, Tenant, Model, Upstream, API, Status, …
    let mut apis: Vec<String> = b
        .rows("#rq-table")
        .await
        .into_iter()
        .map(|r| format!("{} {} {}", r[4], r[2], r[5]))
        .collect();
    apis.sort();
    assert_eq!(
        apis,
        [
            "anthropic claude-haiku-4-5 403",
            "anthropic claude-sonnet-4-6 200",
            "anthropic claude-sonnet-4-6 200",
            "openai gpt-4o 200"
        ]
    );
    let csv = b
        .js("return document.getElementById('rq-csv').getAttribute('href');")
        .await;
    assert!(
        csv.as_str().unwrap().starts_with("/api/admin/requests?")
            && csv.as_str().unwrap().contains("tenant=alice")
            && csv.as_str().unwrap().contains("format=csv"),
        "{csv}"
    );
    b.screenshot("console-admin-requests.png").await;
    b.assert_clean().await;

    // Log out: the cookie is gone, a fresh page shows the login card.
    b.logout().await;
    b.reload().await;
    assert_eq!(
        b.js("return document.getElementById('login').hidden;")
            .await,
        false
    );

    // The tenant signs in with the new key and sees its own data only.
    b.login_tenant(&key).await;
    for id in ["stats", "limits", "chart", "models", "recent", "setup"] {
        b.wait_ready(id).await;
    }
    assert_eq!(b.text_of("#who").await, "Tenant Alice Example (alice)");
    assert_eq!(b.rows("#rq-table").await.len(), 4);
    // By model: what the tenant's usage API says for 30 days, nothing of t2's.
    let models: Vec<String> = b
        .rows("#models")
        .await
        .into_iter()
        .map(|r| format!("{} {}", r[0], r[1]))
        .collect();
    let u: Value = client()
        .get(format!(
            "{}/api/tenant/usage?from={}&to={}&interval=day&groupBy=model",
            gw.url,
            (chrono::Local::now() - chrono::Duration::days(29)).format("%Y-%m-%d"),
            chrono::Local::now().format("%Y-%m-%d")
        ))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut expected: Vec<String> = u["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let n = g["totals"]["requests"].as_f64().unwrap() as i64;
            format!("{} {n}", g["key"].as_str().unwrap())
        })
        .collect();
    let mut shown = models.clone();
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected, "{u}");
    assert!(
        models.iter().any(|m| m.starts_with("claude-sonnet-4-6 ")),
        "{models:?}"
    );
    let limits = b.text_of("#limits").await;
    assert!(limits.contains("Daily budget"), "{limits}");
    assert!(limits.contains("/ $5.00"), "{limits}");
    assert!(b
        .text_of("#setup-claude")
        .await
        .contains(&format!("ANTHROPIC_BASE_URL={}/anthropic", gw.url)));
    let status_line = b.text_of("#setup-statusline").await;
    assert!(
        status_line.contains(&format!("{}/api/tenant/status?format=line", gw.url)),
        "{status_line}"
    );
    // The status line command works as shown: the key in an env var Claude Code has.
    let line = client()
        .get(format!("{}/api/tenant/status?format=line", gw.url))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(line.starts_with("ccgate · $"), "{line}");
    b.wait_js(
        "the chart's bars",
        "return document.querySelectorAll('#chart rect.seg').length > 0;",
    )
    .await;
    let text = b.text().await;
    let html = b
        .js("return document.documentElement.outerHTML;")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    for needle in ["claude-opus", TENANT2_KEY, "data-tenant", "data-key=\"t2\""] {
        assert!(!text.contains(needle), "{needle} in the page:\n{text}");
        assert!(!html.contains(needle), "{needle} in the DOM");
    }
    // The admin logged out: no admin session is left in this browser.
    let admin = b
        .js(
            "return fetch('/api/admin/session', {credentials: 'same-origin'})
               .then(function (r) { return r.status; });",
        )
        .await;
    assert_eq!(admin, 401);
    b.screenshot("console-tenant-portal.png").await;

    // A phone: nothing wider than the screen (tables scroll inside their cards).
    b.c().set_window_size(375, 1400).await.unwrap();
    let fit = b
        .wait_js(
            "the phone layout",
            "return window.innerWidth <= 400 && {inner: window.innerWidth, scroll: document.documentElement.scrollWidth};",
        )
        .await;
    assert!(
        fit["scroll"].as_i64().unwrap() <= fit["inner"].as_i64().unwrap(),
        "{fit}"
    );
    // The chart is redrawn at the phone's width (its text stays legible), not shrunk.
    b.wait_js(
        "the chart at the phone's width",
        "var s = document.querySelector('#chart svg.chart'); return s && Number(s.getAttribute('width')) <= 375;",
    )
    .await;
    b.screenshot("console-tenant-portal-375px.png").await;
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

    let login_error = "var e = document.getElementById('login-error');
                       return !e.hidden && document.getElementById('view').hidden && e.textContent;";
    b.open(&format!("{}/dashboard", gw.url)).await;
    // /dashboard opens on the tenant tab.
    assert_eq!(
        b.js("return document.getElementById('tab-tenant').getAttribute('aria-selected');")
            .await,
        "true"
    );
    b.login_tenant("tenant-key-that-does-not-exist").await;
    let msg = b.wait_js("the wrong-key message", login_error).await;
    assert_eq!(
        msg,
        "Wrong credentials: this API key is unknown or disabled."
    );

    b.login_admin("admin", "not-the-password").await;
    b.wait_js(
        "the wrong-password message",
        "return document.getElementById('login-error').textContent.indexOf('check the username') > 0;",
    )
    .await;
    assert_eq!(
        b.wait_js("the wrong-password message", login_error).await,
        "Wrong credentials: check the username and password."
    );

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
        .js("return {view: document.getElementById('view').hidden,
                     content: document.getElementById('view').childElementCount,
                     logout: document.getElementById('logout').hidden};")
        .await;
    assert_eq!(state, json!({"view": true, "content": 0, "logout": true}));
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
    const MODEL: &str = "claude-opus<script>alert(3)</script>";
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.tenants["tenants"][1]["id"] = json!(ID);
    files.tenants["tenants"][1]["name"] = json!(NAME);
    files.tenants["tenants"][1]["allowedModels"] = json!(["*sonnet*"]);
    let gw = Gateway::start(&files).await;
    assert_eq!(send(&gw, TENANT2_KEY, "claude-sonnet-4-6").await, 200);
    // A model name that is markup, refused by the gateway: it lands in the log as text.
    assert_eq!(send(&gw, TENANT2_KEY, MODEL).await, 403);

    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;
    let spend = b.rows("#spend").await;
    assert!(
        spend.iter().any(|r| r[0] == format!("{NAME} ({ID})")),
        "{spend:?}"
    );
    b.nav("tenants").await;
    b.wait_ready("tenants").await;
    let tenants = b.rows("#tenants").await;
    let row = tenants
        .iter()
        .find(|r| r[0] == ID)
        .unwrap_or_else(|| panic!("{tenants:?}"));
    assert_eq!(row[1], NAME);
    b.nav("requests").await;
    b.wait_ready("requests").await;
    b.wait_js(
        "the request log",
        "return document.querySelectorAll('#rq-table tbody tr').length > 0;",
    )
    .await;
    let log = b.rows("#rq-table").await;
    assert!(log.iter().all(|r| r[1] == ID), "{log:?}");
    assert!(log.iter().any(|r| r[2] == MODEL), "{log:?}");
    assert!(b.text().await.contains(ID));
    let injected = "return {img: document.querySelectorAll('img').length,
                            svg: document.querySelectorAll('svg:not(.chart)').length,
                            scripts: document.scripts.length};";
    assert_eq!(
        b.js(injected).await,
        json!({"img": 0, "svg": 0, "scripts": 1})
    );
    b.assert_clean().await;

    // The tenant's own view shows its name in the header, as text.
    b.logout().await;
    b.login_tenant(TENANT2_KEY).await;
    for id in ["stats", "limits", "recent"] {
        b.wait_ready(id).await;
    }
    assert_eq!(b.text_of("#who").await, format!("Tenant {NAME} ({ID})"));
    assert_eq!(
        b.js(injected).await,
        json!({"img": 0, "svg": 0, "scripts": 1})
    );
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
    let alert = "var a = document.querySelectorAll('#config-alert .msg.error[role=alert]');
                 return a.length ? a[0].textContent : null;";

    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;
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

    // A fresh page: the session cookie still holds, and the overview shows the alert.
    b.reload().await;
    for id in ["stats", "upstreams"] {
        b.wait_ready(id).await;
    }
    let text = b.wait_js("the rejected-config alert", alert).await;
    let text = text.as_str().unwrap();
    assert!(
        text.starts_with("The config files on disk were rejected"),
        "{text}"
    );
    // The session cookie opens the admin view of /health: the alert says what is wrong.
    assert!(
        text.contains("tenants.json: tenants[0].allowedModels"),
        "{text}"
    );
    // The last good config still runs: the tenants are there.
    b.nav("tenants").await;
    b.wait_ready("tenants").await;
    assert_eq!(b.rows("#tenants").await.len(), 2);
    b.assert_clean().await;
    b.close().await;
}

/// The tenants page's controls, each checked against the admin API and the key itself: disable and enable, edit
/// models, a limit and the expiry, rotate (the old key stops, the new one works), delete after a confirmation that
/// can be cancelled, and import of a tenants.json tenant.
#[tokio::test]
async fn browser_tenant_controls_change_the_tenant() {
    let Some(b) = Browser::start("browser_tenant_controls_change_the_tenant").await else {
        return;
    };
    let mock = mock().await;
    let gw = Gateway::start(&Files::new(&[mock.url()])).await;
    let bob = |v: &Value| -> Value {
        v["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == "bob")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let row = "#tenants tr[data-id=bob]";

    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;
    b.nav("tenants").await;
    b.wait_ready("tenants").await;
    b.click("#create summary").await;
    b.type_into("#new-name", "Bob").await;
    b.type_into("#new-id", "bob").await;
    b.click("#create-form button[type=submit]").await;
    let key1 = b
        .wait_js(
            "the new key",
            "var k = document.getElementById('new-key'); return k && k.textContent;",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    b.wait_js(
        "bob's row",
        &format!("return document.querySelector('{row}');"),
    )
    .await;
    assert_eq!(
        bob(&admin_get(&gw, "/api/admin/tenants").await)["allowedModels"],
        json!(["*"])
    );
    assert_eq!(send(&gw, &key1, "claude-sonnet-4-6").await, 200);

    // Disable, then enable.
    b.click(&format!("{row} button[data-action=toggle]")).await;
    b.wait_js(
        "bob disabled",
        &format!("var r = document.querySelector('{row}'); return r && r.cells[3].textContent === 'disabled';"),
    )
    .await;
    assert_eq!(
        bob(&admin_get(&gw, "/api/admin/tenants").await)["enabled"],
        false
    );
    assert_eq!(send(&gw, &key1, "claude-sonnet-4-6").await, 401);
    b.click(&format!("{row} button[data-action=toggle]")).await;
    b.wait_js(
        "bob enabled",
        &format!("var r = document.querySelector('{row}'); return r && r.cells[3].textContent === 'enabled';"),
    )
    .await;
    assert_eq!(send(&gw, &key1, "claude-sonnet-4-6").await, 200);

    // Edit: models, a monthly budget, an expiry.
    b.click(&format!("{row} button[data-action=edit]")).await;
    b.wait_js(
        "the edit form",
        "return document.getElementById('edit-form');",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('edit-name').value;")
            .await,
        "Bob"
    );
    b.type_into("#edit-allowedModels", "*haiku*").await;
    b.type_into("#edit-limits-monthly", "20").await;
    b.js("document.getElementById('edit-expiresAt').value = '2031-01-02T03:04'; return true;")
        .await;
    let expected_expiry = b
        .js("return new Date('2031-01-02T03:04').toISOString();")
        .await;
    b.click("#edit-form button[type=submit]").await;
    b.wait_js(
        "the edited row",
        &format!("var r = document.querySelector('{row}'); return !document.getElementById('edit-form') && r && r.cells[4].textContent === '*haiku*';"),
    )
    .await;
    let t = bob(&admin_get(&gw, "/api/admin/tenants").await);
    assert_eq!(t["allowedModels"], json!(["*haiku*"]), "{t}");
    assert_eq!(t["limits"]["monthly"]["maxUSD"], 20.0, "{t}");
    let at = chrono::DateTime::parse_from_rfc3339(t["expiresAt"].as_str().unwrap()).unwrap();
    let want = chrono::DateTime::parse_from_rfc3339(expected_expiry.as_str().unwrap()).unwrap();
    assert_eq!(at, want, "{t}");
    assert_eq!(send(&gw, &key1, "claude-sonnet-4-6").await, 403);
    assert_eq!(send(&gw, &key1, "claude-haiku-4-5").await, 200);
    // The new budget in the list, with its bar (used and max from the listing's limitStatus).
    let limits = b
        .js(&format!(
            "var c = document.querySelector('{row}').cells[5];
             return {{text: c.textContent, bars: c.querySelectorAll('.bar').length}};"
        ))
        .await;
    assert!(
        limits["text"]
            .as_str()
            .unwrap()
            .starts_with("Monthly budget: $"),
        "{limits}"
    );
    assert!(
        limits["text"].as_str().unwrap().ends_with("/ $20.00"),
        "{limits}"
    );
    assert_eq!(limits["bars"], 1, "{limits}");

    // Rotate: asked first; then a new key, and the old one stops.
    b.click(&format!("{row} button[data-action=rotate]")).await;
    b.click(&format!("{row} button[data-action^=confirm]"))
        .await;
    let key2 = b
        .wait_js(
            "the rotated key",
            &format!(
                "var k = document.getElementById('new-key'); return k && k.textContent !== '{key1}' && k.textContent;"
            ),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key2.starts_with("sk-ccg-"));
    eventually(5, || async {
        (send(&gw, &key1, "claude-haiku-4-5").await == 401).then_some(())
    })
    .await;
    assert_eq!(send(&gw, &key2, "claude-haiku-4-5").await, 200);
    b.click("#key-card button").await;

    // Delete: cancelled once, then confirmed.
    b.wait_ready("tenants").await;
    b.click(&format!("{row} button[data-action^=delete]")).await;
    let question = b.text_of(&format!("{row} .confirm")).await;
    assert_eq!(question, "Delete bob? Its usage rows are kept.");
    b.click(&format!("{row} button[data-action=cancel]")).await;
    assert_eq!(
        bob(&admin_get(&gw, "/api/admin/tenants").await)["id"],
        "bob"
    );
    b.click(&format!("{row} button[data-action^=delete]")).await;
    b.click(&format!("{row} button[data-action^=confirm]"))
        .await;
    b.wait_js(
        "bob gone",
        &format!("return !document.querySelector('{row}') && document.querySelector('#tenants tr[data-id=t1]');"),
    )
    .await;
    assert_eq!(
        bob(&admin_get(&gw, "/api/admin/tenants").await),
        Value::Null
    );
    assert_eq!(send(&gw, &key2, "claude-haiku-4-5").await, 401);

    // A tenants.json tenant: no edit controls, an import button.
    let t1 = "#tenants tr[data-id=t1]";
    assert_eq!(
        b.js(&format!(
            "return Array.from(document.querySelectorAll('{t1} button')).map(function (x) {{ return x.dataset.action; }});"
        ))
        .await,
        json!(["import"])
    );
    b.click(&format!("{t1} button[data-action=import]")).await;
    // Imported: a console copy, not served while tenants.json still defines t1 (the page says so).
    let note = b
        .wait_js(
            "t1 imported",
            "var r = document.querySelector('#tenants tr[data-id=t1][data-source=console]');
             return r && r.cells[2].textContent;",
        )
        .await;
    assert!(note.as_str().unwrap().contains("tenants.json"), "{note}");
    let listed = admin_get(&gw, "/api/admin/tenants").await;
    assert!(
        listed["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "t1" && t["source"] == "console"),
        "{listed}"
    );
    b.screenshot("console-admin-tenants.png").await;
    b.assert_clean().await;
    b.close().await;
}

/// A Chinese browser in dark mode on a phone: the console starts in Chinese, draws dark, and no admin page is wider
/// than the screen.
#[tokio::test]
async fn browser_chinese_dark_phone() {
    let Some(b) = Browser::chinese_dark_phone("browser_chinese_dark_phone").await else {
        return;
    };
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    // UTC+14: for most of the day, the gateway's "today" is not the browser's (UTC). The page asks for the gateway's.
    files.server["server"]["timezone"] = json!("Pacific/Kiritimati");
    let gw = Gateway::start(&files).await;
    assert_eq!(send(&gw, TENANT_KEY, "claude-sonnet-4-6").await, 200);
    assert_eq!(send(&gw, TENANT2_KEY, "claude-opus-4-1").await, 200);
    wait_logged(&gw, "t2", 1).await;

    b.open(&admin_url(&gw)).await;
    b.wait_js("a phone's width", "return window.innerWidth <= 400;")
        .await;
    let first = b
        .js("return {lang: document.documentElement.lang, title: document.getElementById('login-title').textContent,
                     dark: matchMedia('(prefers-color-scheme: dark)').matches,
                     bg: getComputedStyle(document.body).backgroundColor, width: window.innerWidth};")
        .await;
    assert_eq!(first["lang"], "zh-CN", "{first}");
    assert_eq!(first["title"], "登录", "{first}");
    assert_eq!(first["dark"], true, "{first}");
    assert_eq!(first["bg"], "rgb(20, 22, 27)", "{first}");
    assert!(first["width"].as_i64().unwrap() <= 400, "{first}");
    b.screenshot("console-login-zh-dark-375px.png").await;

    b.admin_overview().await;
    assert_eq!(b.text_of("#who").await, "管理员 admin");
    let today = b.text_of("#stat-today .s").await;
    assert!(today.starts_with("2 次请求"), "{today}");
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth
                       || {scroll: document.documentElement.scrollWidth, inner: window.innerWidth};";
    b.wait_js(
        "the chart at the phone's width",
        "var s = document.querySelector('#chart svg.chart'); return s && Number(s.getAttribute('width')) <= 375;",
    )
    .await;
    assert_eq!(b.js(fits).await, true);
    b.screenshot("console-admin-overview-zh-dark-375px.png")
        .await;
    b.nav("tenants").await;
    b.wait_ready("tenants").await;
    assert_eq!(b.js(fits).await, true);
    b.screenshot("console-admin-tenants-zh-dark-375px.png")
        .await;
    b.nav("requests").await;
    b.wait_ready("requests").await;
    b.wait_js(
        "the request log",
        "return document.querySelectorAll('#rq-table tbody tr').length === 2;",
    )
    .await;
    assert_eq!(b.js(fits).await, true);
    b.screenshot("console-admin-requests-zh-dark-375px.png")
        .await;
    b.assert_clean().await;
    b.close().await;
}

/// The request log pages with the API's cursor (older, then back to newer); an expired key is told when it expired.
#[tokio::test]
async fn browser_request_log_pages_and_an_expired_key_is_told() {
    let Some(b) = Browser::start("browser_request_log_pages_and_an_expired_key_is_told").await
    else {
        return;
    };
    let mock = mock().await;
    let gw = Gateway::start(&Files::new(&[mock.url()])).await;
    for _ in 0..25 {
        assert_eq!(send(&gw, TENANT_KEY, "claude-sonnet-4-6").await, 200);
    }
    wait_logged(&gw, "t1", 25).await;
    let r = client()
        .post(format!("{}/api/admin/tenants", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"name": "Old", "id": "old", "expiresAt": "2020-01-02T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let expired_key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;
    b.nav("requests").await;
    b.wait_ready("requests").await;
    b.c()
        .find(Locator::Css("#rq-limit"))
        .await
        .unwrap()
        .select_by_value("20")
        .await
        .unwrap();
    b.click("#rq-filters button[type=submit]").await;
    let ids = "return Array.from(document.querySelectorAll('#rq-table tbody tr')).map(function (r) { return Number(r.dataset.id); });";
    let page = |n: usize| {
        format!(
            "var s = document.getElementById('requests').dataset.state;
             return s === 'ready' && document.querySelectorAll('#rq-table tbody tr').length === {n};"
        )
    };
    b.wait_js("a page of 20", &page(20)).await;
    let first: Vec<i64> = serde_json::from_value(b.js(ids).await).unwrap();
    assert!(
        first.windows(2).all(|w| w[0] > w[1]),
        "newest first: {first:?}"
    );
    assert_eq!(b.text_of("#rq-page").await, "page 1 · 20 rows");
    b.click("#rq-older").await;
    b.wait_js("the older 5", &page(5)).await;
    let second: Vec<i64> = serde_json::from_value(b.js(ids).await).unwrap();
    assert!(second[0] < *first.last().unwrap(), "{first:?} {second:?}");
    assert_eq!(
        b.js("return document.getElementById('rq-older').disabled;")
            .await,
        true
    );
    b.click("#rq-newer").await;
    b.wait_js("the newest 20 again", &page(20)).await;
    assert_eq!(
        serde_json::from_value::<Vec<i64>>(b.js(ids).await).unwrap(),
        first
    );
    b.assert_clean().await;

    b.logout().await;
    b.login_tenant(&expired_key).await;
    let msg = b
        .wait_js(
            "the expired-key message",
            "var e = document.getElementById('login-error'); return !e.hidden && e.textContent;",
        )
        .await;
    let msg = msg.as_str().unwrap();
    assert!(
        msg.contains("expired") && msg.contains("2020-01-02"),
        "{msg}"
    );
    b.assert_clean().await;
    b.close().await;
}

/// A session that ends under the page (here: the admin password changed in server.json, which ends every session)
/// brings back the login card with a message, and no data.
#[tokio::test]
async fn browser_ended_session_returns_to_the_login() {
    let Some(b) = Browser::start("browser_ended_session_returns_to_the_login").await else {
        return;
    };
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;

    let mut server = files.server.clone();
    server["admin"]["password"] = json!("another-admin-password-456");
    gw.write_config("server.json", &server);
    eventually(10, || async {
        let r = client()
            .get(format!("{}/api/admin/tenants", gw.url))
            .basic_auth("admin", Some("another-admin-password-456"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    b.nav("tenants").await;
    let msg = b
        .wait_js(
            "the session-ended message",
            "var e = document.getElementById('login-error');
             return !e.hidden && !document.getElementById('login').hidden && e.textContent;",
        )
        .await;
    assert_eq!(msg, "Your session ended: sign in again.");
    assert_eq!(
        b.js("return {view: document.getElementById('view').childElementCount, nav: document.getElementById('nav').hidden,
                      admin: document.getElementById('tab-admin').getAttribute('aria-selected')};")
            .await,
        json!({"view": 0, "nav": true, "admin": "true"})
    );
    b.login_admin("admin", "another-admin-password-456").await;
    b.wait_js(
        "the admin console again",
        "return !document.getElementById('nav').hidden;",
    )
    .await;
    b.wait_ready("tenants").await;
    b.assert_clean().await;
    b.close().await;
}

/// The portal shows every kind of limit the gateway reports, whatever it is: rolling windows, tokens per minute, a
/// per-request cap, and limits scoped to some models.
#[tokio::test]
async fn browser_portal_shows_every_kind_of_limit() {
    let Some(b) = Browser::start("browser_portal_shows_every_kind_of_limit").await else {
        return;
    };
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.tenants["tenants"][1]["limits"] = json!({
        "daily": {"maxUSD": 3},
        "rolling": [{"hours": 5, "maxUSD": 2}],
        "rpm": 60,
        "tpm": 100000,
        "maxOutputTokens": 4096,
        "models": {"*opus*": {"daily": {"maxUSD": 1}}}
    });
    let gw = Gateway::start(&files).await;
    assert_eq!(send(&gw, TENANT2_KEY, "claude-opus-4-1").await, 200);

    b.open(&format!("{}/dashboard", gw.url)).await;
    b.login_tenant(TENANT2_KEY).await;
    b.wait_ready("limits").await;
    let names = b
        .js("return Array.from(document.querySelectorAll('#limits .limit .name')).map(function (n) { return n.textContent; });")
        .await;
    assert_eq!(
        names,
        json!([
            "Daily budget",
            "Rolling 5-hour budget",
            "Requests per minute",
            "Tokens per minute",
            "Output tokens per request",
            "Daily budget · models *opus*"
        ])
    );
    let text = b.text_of("#limits").await;
    assert!(text.contains("max 4,096"), "{text}");
    assert!(!text.contains("[object") && !text.contains("NaN"), "{text}");
    b.screenshot("console-tenant-limits.png").await;
    b.assert_clean().await;
    b.close().await;
}

/// The number of open trust flags of `upstream`, from the admin API.
async fn open_trust_flags(gw: &Gateway, upstream: &str) -> usize {
    let card = admin_get(gw, &format!("/api/admin/upstreams/{upstream}/scorecard")).await;
    card["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["open"] == true)
        .count()
}

/// Issue #24's console: a cheating upstream (it answers with another model) is flagged and demoted; the overview's
/// upstream row says so at a glance, its scorecard shows the suspect check with its evidence and the flag with its
/// figures, threshold and sample request ids (real ids of the request log); "Clear flags" clears it and lifts the
/// demotion.
#[tokio::test]
async fn browser_trust_scorecard_shows_a_cheater_and_clears_it() {
    let Some(b) = Browser::start("browser_trust_scorecard_shows_a_cheater_and_clears_it").await
    else {
        return;
    };
    let model = "claude-sonnet-4-6";
    let cheat = mock_with(ccgate_mock::MockConfig {
        substitute_model: Some("claude-haiku-4-5-20251001".into()),
        ..ccgate_mock::MockConfig::default()
    })
    .await;
    let honest = mock().await;
    let mut files = Files::new(&[cheat.url(), honest.url()]);
    files.upstreams["upstreams"][0]["priority"] = json!(0);
    files.upstreams["upstreams"][0]["trust"] = json!({"onSuspect": "demote"});
    files.upstreams["upstreams"][1]["priority"] = json!(5);
    let gw = Gateway::start(&files).await;
    // 25 answers naming another model: past the check's minimum of 20.
    for _ in 0..25 {
        assert_eq!(send(&gw, TENANT2_KEY, model).await, 200);
    }
    assert_eq!(cheat.request_count(), 25);
    eventually(20, || async {
        (open_trust_flags(&gw, "up1").await == 1).then_some(())
    })
    .await;
    let logged: Vec<String> = admin_get(&gw, "/api/admin/requests?upstream=up1").await["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap_or_default().to_owned())
        .collect();

    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;
    // The flagged upstream is visible in the table; the honest one is not marked.
    b.wait_js(
        "the suspect badge",
        "return document.querySelector('#upstreams tr[data-id=up1] [data-trust=suspect]');",
    )
    .await;
    let row = b.text_of("#upstreams tr[data-id=up1]").await;
    assert!(row.contains("suspect") && row.contains("demoted"), "{row}");
    let other = b.text_of("#upstreams tr[data-id=up2]").await;
    assert!(
        !other.contains("suspect") && !other.contains("demoted"),
        "{other}"
    );
    b.click("#upstreams tr[data-id=up1] a[data-action=trust]")
        .await;
    for id in [
        "trust-head",
        "trust-flags",
        "trust-models",
        "trust-canary",
        "trust-balance",
    ] {
        b.wait_ready(id).await;
    }
    assert_eq!(b.text_of("#trust-demoted").await, "demoted");
    // The check's verdict, as a badge, with its evidence unfolded.
    let check = "#trust-models .model[data-model=claude-sonnet-4-6] li[data-check=model_mismatch]";
    assert_eq!(
        b.js(&format!(
            "return document.querySelector('{check}').getAttribute('data-status');"
        ))
        .await,
        "suspect"
    );
    assert_eq!(b.text_of(&format!("{check} .badge")).await, "suspect");
    let evidence = b.text_of(&format!("{check} dl.kv")).await;
    assert!(
        evidence.contains("samples25") && evidence.contains("bad25"),
        "{evidence}"
    );
    // The 1h window counts the 25 requests.
    assert_eq!(
        b.text_of("#trust-models tr[data-figure=requests] td[data-window=\"1h\"]")
            .await,
        "25"
    );
    // The open flag: figures, threshold, model and sample request ids that are in the request log.
    let flag = "#trust-open .flag[data-check=model_mismatch]";
    let flag_text = b.text_of(flag).await;
    assert!(flag_text.contains("threshold.minSamples20"), "{flag_text}");
    assert!(flag_text.contains(&format!("model{model}")), "{flag_text}");
    let ids: Vec<String> = serde_json::from_value(
        b.js(&format!(
            "return Array.from(document.querySelectorAll('{flag} code.rid')).map(function (c) {{ return c.textContent; }});"
        ))
        .await,
    )
    .unwrap();
    assert!(!ids.is_empty(), "{flag_text}");
    assert!(
        ids.iter().all(|id| logged.contains(id)),
        "{ids:?} not in {logged:?}"
    );
    b.screenshot("console-trust-suspect.png").await;
    // A sample id opens the request log filtered to that one request.
    b.click(&format!("{flag} a.rid-link")).await;
    b.wait_ready("requests").await;
    let shown = b
        .wait_js(
            "the request log filtered to the sample",
            "var rows = document.querySelectorAll('#rq-table tbody tr'); \
             return rows.length ? Array.from(rows).map(function (r) { return r.getAttribute('data-request-id'); }) : null;",
        )
        .await;
    assert_eq!(shown, json!([ids[0]]));
    assert_eq!(
        b.js("return document.getElementById('rq-request').value;")
            .await,
        json!(ids[0])
    );
    b.js("location.hash = '#trust/up1'; return true;").await;
    for id in ["trust-head", "trust-flags"] {
        b.wait_ready(id).await;
    }

    b.click("#trust-clear").await;
    b.wait_js(
        "the flags cleared",
        "return document.getElementById('trust-no-flags') && document.getElementById('trust-flags').getAttribute('data-state') === 'ready';",
    )
    .await;
    assert_eq!(b.text_of("#trust-demoted").await, "not demoted");
    // The cleared flag stays in the history; the checks judge only what comes after the current hour.
    assert!(b
        .text_of("#trust-flags details.history")
        .await
        .contains("cleared"));
    assert_eq!(
        b.js(&format!(
            "return document.querySelector('{check}').getAttribute('data-status');"
        ))
        .await,
        "insufficient_data"
    );
    assert_eq!(open_trust_flags(&gw, "up1").await, 0);
    assert_eq!(
        admin_get(&gw, "/api/admin/upstreams").await["upstreams"][0]["demoted"],
        false
    );
    b.screenshot("console-trust-cleared.png").await;
    b.click("#trust-head a[href=\"#overview\"]").await;
    b.wait_ready("upstreams").await;
    b.wait_js(
        "the row without badges",
        "return !document.querySelector('#upstreams tr[data-id=up1] [data-trust]');",
    )
    .await;
    b.assert_clean().await;
    b.close().await;
}

/// An honest upstream's scorecard in Chinese, dark, on a 375-px phone: the model check is `ok` past its minimum,
/// the others `insufficient_data`; no flag; the canary's probes and the (low) balance; the page fits the phone's
/// width.
#[tokio::test]
async fn browser_trust_scorecard_of_an_honest_upstream_zh_dark_phone() {
    let Some(b) =
        Browser::chinese_dark_phone("browser_trust_scorecard_of_an_honest_upstream_zh_dark_phone")
            .await
    else {
        return;
    };
    let m = mock_with(ccgate_mock::MockConfig {
        billing_limit_usd: Some(10.0),
        billing_used_usd: 9.5,
        ..ccgate_mock::MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[m.url()]);
    // A canary without a reference (its token count has nothing to be compared with) and a low balance.
    files.upstreams["upstreams"][0]["trust"] =
        json!({"canary": {"intervalMinutes": 0.01, "model": "claude-sonnet-4-6"}});
    files.upstreams["upstreams"][0]["balance"] =
        json!({"preset": "new-api", "intervalMinutes": 0.01, "lowUsd": 1});
    let gw = Gateway::start(&files).await;
    eventually(20, || async {
        let card = admin_get(&gw, "/api/admin/upstreams/up1/scorecard").await;
        (card["canary"]["runs"].as_u64() >= Some(1) && card["balance"]["balanceUsd"].is_number())
            .then_some(())
    })
    .await;
    for _ in 0..22 {
        assert_eq!(send(&gw, TENANT2_KEY, "claude-sonnet-4-6").await, 200);
    }
    wait_logged(&gw, "t2", 22).await;
    b.open(&admin_url(&gw)).await;
    b.admin_overview().await;
    assert!(!b
        .text_of("#upstreams tr[data-id=up1]")
        .await
        .contains("可疑"));
    b.click("#upstreams tr[data-id=up1] a[data-action=trust]")
        .await;
    for id in [
        "trust-head",
        "trust-flags",
        "trust-models",
        "trust-canary",
        "trust-balance",
    ] {
        b.wait_ready(id).await;
    }
    let statuses: Value = b
        .js("var o = {}; document.querySelectorAll('#trust-models li[data-check]').forEach(function (li) {
               o[li.getAttribute('data-check')] = [li.getAttribute('data-status'), li.querySelector('.badge').textContent]; });
             return o;")
        .await;
    assert_eq!(
        statuses,
        json!({
            "model_mismatch": ["ok", "正常"],
            "thinking_signature": ["insufficient_data", "数据不足"],
            "token_inflation": ["insufficient_data", "数据不足"],
            "cache_not_honoured": ["insufficient_data", "数据不足"],
            "fake_streaming": ["insufficient_data", "数据不足"],
        })
    );
    assert_eq!(
        b.text_of("#trust-models tr[data-figure=requests] td[data-window=\"24h\"]")
            .await,
        "22"
    );
    assert_eq!(
        b.text_of("#trust-models tr[data-figure=success] td[data-window=\"1h\"]")
            .await,
        "100%"
    );
    assert_eq!(b.text_of("#trust-no-flags").await, "没有未清除的标记。");
    assert!(
        b.js("return !document.getElementById('trust-clear');")
            .await
            == true
    );
    // The canary's probes answer with the model asked for, but with no reference their token count says nothing.
    assert_eq!(b.text_of("#trust-canary [data-status]").await, "数据不足");
    assert!(b
        .text_of("#trust-canary")
        .await
        .contains("claude-sonnet-4-6"));
    let balance = b.text_of("#trust-balance").await;
    assert!(
        balance.contains("$0.50") && balance.contains("偏低"),
        "{balance}"
    );
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth
                       || {scroll: document.documentElement.scrollWidth, inner: window.innerWidth};";
    assert_eq!(b.js(fits).await, true);
    b.screenshot("console-trust-honest-zh-dark-375px.png").await;
    b.assert_clean().await;
    b.close().await;
}

//! The upstream transport: TLS upstreams trusted through `caFile` (HTTP/2 by ALPN), upstreams behind an HTTP
//! CONNECT proxy, and redirects refused.

use crate::common::*;
use ccgate_mock::MockConfig;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CA made for the test and a server certificate it signed for 127.0.0.1.
struct TestPki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn test_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ccgate test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    leaf.distinguished_name
        .push(DnType::CommonName, "ccgate test upstream");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        server_cert: leaf_cert.der().clone(),
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// A TLS upstream: TLS (ALPN h2 or http/1.1) and HTTP terminated here, each request passed on to the plain mock
/// behind it and the answer streamed back unchanged. Records what each connection negotiated and each request's
/// HTTP version.
struct TlsUpstream {
    url: String,
    ca_pem: String,
    alpn: Arc<Mutex<Vec<Option<Vec<u8>>>>>,
    versions: Arc<Mutex<Vec<http::Version>>>,
}

async fn tls_upstream(backend: String) -> TlsUpstream {
    let pki = test_pki();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.server_cert], pki.server_key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let alpn = Arc::new(Mutex::new(Vec::new()));
    let versions = Arc::new(Mutex::new(Vec::new()));
    let (alpn_seen, versions_seen) = (alpn.clone(), versions.clone());
    let client = reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, alpn_seen, versions_seen) =
                (acceptor.clone(), alpn_seen.clone(), versions_seen.clone());
            let (client, backend) = (client.clone(), backend.clone());
            tokio::spawn(async move {
                // A handshake the gateway refuses (unknown CA) simply ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                alpn_seen
                    .lock()
                    .push(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        versions_seen.lock().push(req.version());
                        pass_on(client.clone(), backend.clone(), req)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    TlsUpstream {
        url,
        ca_pem: pki.ca_pem,
        alpn,
        versions,
    }
}

async fn pass_on(
    client: reqwest::Client,
    backend: String,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<http::Response<reqwest::Body>, reqwest::Error> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers = parts.headers;
    for h in ["host", "content-length", "transfer-encoding", "connection"] {
        headers.remove(h);
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let resp = client
        .request(parts.method, format!("{backend}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await?;
    Ok(http::Response::from(resp))
}

/// The upstreams file with one upstream (`up1`) whose extra fields are `extra`.
fn with_upstream(url: &str, extra: Value) -> Files {
    let mut files = Files::new(&[url.to_string()]);
    let up = &mut files.upstreams["upstreams"][0];
    for (k, v) in extra.as_object().unwrap() {
        up[k] = v.clone();
    }
    files
}

#[tokio::test]
async fn an_https_upstream_trusted_through_ca_file_serves_and_meters_over_h2() {
    let m = mock().await;
    let tls = tls_upstream(m.url()).await;
    let files = with_upstream(&tls.url, json!({"caFile": "test-ca.pem"}));
    let config = TempDir::new("tls-cfg");
    files.write(&config.0);
    std::fs::write(config.0.join("test-ca.pem"), &tls.ca_pem).unwrap();
    let gw = Gateway::start_in(config, TempDir::new("tls-data")).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message", "{v}");
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", true)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("message_stop"));
    let u = wait_requests(&gw, 2).await;
    // The mock answers 25 input and 12 output tokens a request.
    assert_eq!(u["totals"]["input_tokens"], 50, "{u}");
    assert_eq!(u["totals"]["output_tokens"], 24, "{u}");
    assert_eq!(m.request_count(), 2);
    // The upstream offered h2 and http/1.1: the gateway chose h2 and kept one connection for both requests.
    assert_eq!(*tls.alpn.lock(), vec![Some(b"h2".to_vec())]);
    assert_eq!(
        *tls.versions.lock(),
        vec![http::Version::HTTP_2, http::Version::HTTP_2]
    );
}

#[tokio::test]
async fn an_https_upstream_with_an_unknown_ca_is_a_clear_502() {
    let m = mock().await;
    let tls = tls_upstream(m.url()).await;
    let gw = Gateway::start(&with_upstream(&tls.url, json!({}))).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("certificate"), "{msg}");
    assert!(!msg.contains(UPSTREAM_KEY), "{msg}");
    assert_eq!(m.request_count(), 0);
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_not_pem_is_refused_at_load_naming_the_file() {
    let m = mock().await;
    for (name, content) in [
        ("absent.pem", None),
        ("garbage.pem", Some("not a certificate")),
    ] {
        let config = TempDir::new("ca-cfg");
        with_upstream(&m.url(), json!({"caFile": name})).write(&config.0);
        if let Some(c) = content {
            std::fs::write(config.0.join(name), c).unwrap();
        }
        let data = TempDir::new("ca-data");
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
            .args(["config", "validate", "--config-dir"])
            .arg(&config.0)
            .arg("--data-dir")
            .arg(&data.0)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("upstreams[0].caFile"), "{err}");
        assert!(err.contains(name), "{err}");
    }
}

/// An HTTP proxy that records the request line of each connection: `CONNECT host:port` is answered 200 and
/// tunnelled; an absolute-form request (`POST http://…`) is passed on verbatim to its host.
struct ConnectProxy {
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

async fn connect_proxy() -> ConnectProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut buf = [0u8; 4096];
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap_or_default().to_string();
                seen.lock().push(line.clone());
                let mut words = line.split_whitespace();
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let authority = if method == "CONNECT" {
                    target.to_string()
                } else {
                    let rest = target.strip_prefix("http://").unwrap_or(target);
                    rest.split('/').next().unwrap_or("").to_string()
                };
                let Ok(mut upstream) = TcpStream::connect(&authority).await else {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                if method == "CONNECT" {
                    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    if client
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await
                        .is_err()
                        || upstream.write_all(&head[end..]).await.is_err()
                    {
                        return;
                    }
                } else if upstream.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    ConnectProxy { url, lines }
}

#[tokio::test]
async fn an_https_upstream_behind_a_proxy_is_reached_through_connect() {
    let m = mock().await;
    let tls = tls_upstream(m.url()).await;
    let proxy = connect_proxy().await;
    let files = with_upstream(
        &tls.url,
        json!({"caFile": "test-ca.pem", "proxy": proxy.url}),
    );
    let config = TempDir::new("proxy-cfg");
    files.write(&config.0);
    std::fs::write(config.0.join("test-ca.pem"), &tls.ca_pem).unwrap();
    let gw = Gateway::start_in(config, TempDir::new("proxy-data")).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", true)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("message_stop"));
    let authority = tls.url.trim_start_matches("https://");
    let lines = proxy.lines.lock().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("CONNECT {authority} ")),
        "{lines:?}"
    );
    assert_eq!(m.request_count(), 1);
    assert_eq!(wait_requests(&gw, 1).await["totals"]["output_tokens"], 12);
}

#[tokio::test]
async fn an_http_upstream_behind_a_proxy_gets_absolute_form_requests() {
    let m = mock().await;
    let proxy = connect_proxy().await;
    let gw = Gateway::start(&with_upstream(&m.url(), json!({"proxy": proxy.url}))).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    let lines = proxy.lines.lock().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("POST {}/v1/messages", m.url())),
        "{lines:?}"
    );
    assert_eq!(m.request_count(), 1);
    assert_eq!(wait_requests(&gw, 1).await["totals"]["output_tokens"], 12);
}

/// A mock that answers every API request with `302 Found` and a `Location` elsewhere.
async fn redirecting_mock() -> ccgate_mock::MockHandle {
    mock_with(MockConfig {
        status: 302,
        extra_headers: BTreeMap::from([(
            "location".to_string(),
            "http://127.0.0.1:9/elsewhere".to_string(),
        )]),
        ..MockConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_redirect_is_a_502_without_location_in_each_protocol() {
    let m = redirecting_mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("location").is_none(), "{:?}", r.headers());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "api_error", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("redirect"),
        "{v}"
    );
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let r = post_openai(&gw, &chat).await;
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("location").is_none(), "{:?}", r.headers());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "upstream_error", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("redirect"),
        "{v}"
    );
    assert_eq!(m.request_count(), 2);
    let rows = ledger_rows_eventually(&gw, 2).await;
    for row in rows {
        assert_eq!(row["status"], 502, "{row}");
        assert_eq!(row["error_class"], "upstream_redirect", "{row}");
    }
}

#[tokio::test]
async fn a_redirect_fails_over_to_the_next_upstream() {
    let bad = redirecting_mock().await;
    let good = mock().await;
    let mut files = Files::new(&[bad.url(), good.url()]);
    // The redirecting upstream is always tried first.
    files.upstreams["upstreams"][1]["priority"] = json!(1);
    let gw = Gateway::start(&files).await;
    for stream in [false, true] {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", stream)).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("location").is_none(), "{:?}", r.headers());
        let text = r.text().await.unwrap();
        assert!(text.contains("Hello from the mock upstream."), "{text}");
    }
    assert_eq!(bad.request_count(), 2);
    assert_eq!(good.request_count(), 2);
    assert_eq!(wait_requests(&gw, 2).await["totals"]["output_tokens"], 24);
}

async fn ledger_rows_eventually(gw: &Gateway, n: usize) -> Vec<Value> {
    eventually(10, || async {
        let rows = ledger_rows(gw).await;
        (rows.len() == n).then_some(rows)
    })
    .await
}

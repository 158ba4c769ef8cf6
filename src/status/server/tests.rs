use hyper::header::HeaderMap;
use proptest::prelude::*;

use super::guards::same_secret;
use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn form_token_is_decoded() {
    assert_eq!(
        form_token("a=1&token=ab%2Bc+d&b=2").as_deref(),
        Some("ab+c d")
    );
    assert_eq!(form_token("token=50%"), Some("50%".into()));
    assert_eq!(form_token("x=1"), None);
}

#[test]
fn other_origins_are_refused() {
    assert!(cross_origin(&headers(&[("host", "127.0.0.1:9753")])).is_none());
    assert!(cross_origin(&headers(&[
        ("host", "127.0.0.1:9753"),
        ("origin", "http://127.0.0.1:9753"),
        ("sec-fetch-site", "same-origin"),
    ]))
    .is_none());
    assert!(cross_origin(&headers(&[
        ("host", "127.0.0.1:9753"),
        ("origin", "http://evil.example"),
    ]))
    .is_some());
    assert!(cross_origin(&headers(&[
        ("host", "127.0.0.1:9753"),
        ("sec-fetch-site", "cross-site"),
    ]))
    .is_some());
    // A browser sending "null" (sandboxed or file: pages) is another origin.
    assert!(cross_origin(&headers(&[("host", "h:1"), ("origin", "null")])).is_some());
}

#[test]
fn secrets_compare_exactly() {
    assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
    assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeF"));
    assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
}

#[tokio::test(start_paused = true)]
async fn limiter_refills_evenly() {
    let l = Limiter::new(2);
    assert!(l.take().is_ok());
    assert!(l.take().is_ok());
    let wait = l.take().expect_err("bucket empty");
    assert!(wait <= Duration::from_secs(30) && wait > Duration::from_secs(29));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(l.take().is_ok());
    assert!(l.take().is_err());
}

#[test]
fn the_page_answers_only_to_its_own_host_names() {
    let lo: SocketAddr = "127.0.0.1:9753".parse().unwrap();
    let any: SocketAddr = "0.0.0.0:9753".parse().unwrap();
    let none: &[String] = &[];
    for ok in [
        "127.0.0.1:9753",
        "localhost:8080",
        "LOCALHOST.",
        "[::1]:9753",
        "127.0.0.2",
    ] {
        assert!(host_allowed(Some(ok), lo, none), "{ok}");
    }
    // DNS rebinding: the attacker's own name, resolving to 127.0.0.1.
    for bad in [
        "evil.example:9753",
        "evil.example",
        "10.0.1.23:9753",
        "",
        ":9753",
    ] {
        assert!(!host_allowed(Some(bad), lo, none), "{bad}");
    }
    assert!(host_allowed(None, lo, none), "no Host: no browser");
    // Listening on every address: any IP address, still no names.
    assert!(host_allowed(Some("10.0.1.23:9753"), any, none));
    assert!(!host_allowed(Some("evil.example"), any, none));
    let named = &["ip-10-0-1-23.ec2.internal".to_string()];
    assert!(host_allowed(
        Some("IP-10-0-1-23.ec2.internal:9753"),
        any,
        named
    ));
    assert!(host_allowed(Some("evil.example"), lo, &["*".to_string()]));
    assert_eq!(host_name("[::1]:80").as_deref(), Some("::1"));
    assert_eq!(host_name("::1").as_deref(), Some("::1"));
    assert_eq!(host_name("Example.COM.:1").as_deref(), Some("example.com"));
}

proptest! {
    // The page's untrusted input: form bodies, Host and Origin headers.
    #[test]
    fn form_bodies_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..MAX_BODY)) {
        let body = String::from_utf8_lossy(&bytes);
        if let Some(t) = form_token(&body) {
            prop_assert!(t.len() <= body.len() * 3);
        }
    }

    #[test]
    fn form_shaped_garbage_decodes(k in "[a-z%+&=]{0,8}", v in "[%0-9a-fA-F+&=g-z]{0,64}") {
        let body = format!("{k}&token={v}&x=1");
        prop_assert!(form_token(&body).is_some());
    }

    #[test]
    fn host_headers_never_panic(host in "\\PC{0,80}", port in 0u16..) {
        let lo: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let _ = host_name(&host);
        let _ = host_allowed(Some(&host), lo, &[]);
        if let Ok(v) = HeaderValue::from_str(&host) {
            let mut h = HeaderMap::new();
            h.insert("origin", v.clone());
            h.insert("host", v);
            let _ = cross_origin(&h);
        }
    }
}

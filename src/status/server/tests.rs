use hyper::header::HeaderMap;

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

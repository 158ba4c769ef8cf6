//! HTTP/1.1 framing for the fault proxy: reading requests and responses
//! (Content-Length, chunked, or until the peer closes) and writing them
//! re-framed. Part of `faultproxy.rs`.

use tokio::io::{AsyncRead, AsyncReadExt};

/// A request read from the client.
#[derive(Debug)]
pub struct Request {
    /// Start line and headers, as received.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub api: String,
    pub service: &'static str,
    /// AWS JSON protocol (answers errors in JSON), else query (XML).
    pub json: bool,
    /// The client asked to close after this response.
    pub close: bool,
}

impl Request {
    fn parse(start: String, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.trim().to_string())
        };
        let target = header("x-amz-target");
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (api, service, json) = match target {
            Some(t) => {
                let (prefix, op) = t.split_once('.').unwrap_or(("", t.as_str()));
                let service = if prefix.starts_with("AmazonSQS") {
                    "sqs"
                } else {
                    "other"
                };
                (op.to_string(), service, true)
            }
            None => {
                let form = String::from_utf8_lossy(&body);
                let query = start.split_whitespace().nth(1).unwrap_or("");
                let query = query.split_once('?').map(|q| q.1).unwrap_or("");
                let field = |k: &str| {
                    form.split('&')
                        .chain(query.split('&'))
                        .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                        .map(str::to_string)
                };
                let service = match field("Version").as_deref() {
                    Some("2011-01-01") => "autoscaling",
                    Some("2012-11-05") => "sqs",
                    _ => "other",
                };
                let api = field("Action").unwrap_or_else(|| "unknown".into());
                (api, service, false)
            }
        };
        Request {
            start,
            headers,
            body,
            api,
            service,
            json,
            close,
        }
    }

    /// The request for upstream: framed by `Content-Length`, closing.
    pub(super) fn upstream_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start).into_bytes();
        for (k, v) in &self.headers {
            if !hop_by_hop(k) {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response for the client.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Re-framed for a kept-alive client: `Content-Length`, no `Connection`
    /// (unless the client asked to close).
    pub(super) fn to_bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason).into_bytes();
        for (k, v) in &self.headers {
            if !hop_by_hop(k) {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Buffered HTTP/1.1 message reading over one connection.
#[derive(Default)]
pub(super) struct Wire {
    buf: Vec<u8>,
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl Wire {
    /// Reads more; false at end of stream.
    async fn fill<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Start line and headers; `None` at a clean end of stream.
    async fn head<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
    ) -> std::io::Result<Option<(String, Vec<(String, String)>)>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let mut lines = head.split("\r\n");
                let start = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                return Ok(Some((start, headers)));
            }
            if !self.fill(s).await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(bad("end of stream inside a message head"))
                };
            }
        }
    }

    async fn exact<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        n: usize,
    ) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill(s).await? {
                return Err(bad("end of stream inside a body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn line<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> std::io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if !self.fill(s).await? {
                return Err(bad("end of stream inside a chunked body"));
            }
        }
    }

    /// A body framed by `headers`: Content-Length, chunked, or (`to_eof`,
    /// responses only) everything until the peer closes.
    async fn body<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        headers: &[(String, String)],
        to_eof: bool,
    ) -> std::io::Result<Vec<u8>> {
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let size = self.line(s).await?;
                let size = size.split(';').next().unwrap_or("").trim();
                let n = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
                if n == 0 {
                    // Trailers, up to the empty line.
                    while !self.line(s).await?.is_empty() {}
                    return Ok(body);
                }
                body.extend(self.exact(s, n).await?);
                self.exact(s, 2).await?;
            }
        }
        if let Some(len) = header("content-length") {
            let n = len.trim().parse().map_err(|_| bad("bad Content-Length"))?;
            return self.exact(s, n).await;
        }
        if to_eof {
            while self.fill(s).await? {}
            return Ok(std::mem::take(&mut self.buf));
        }
        Ok(Vec::new())
    }

    pub(super) async fn request<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
    ) -> std::io::Result<Option<Request>> {
        let Some((start, headers)) = self.head(s).await? else {
            return Ok(None);
        };
        let body = self.body(s, &headers, false).await?;
        Ok(Some(Request::parse(start, headers, body)))
    }

    pub(super) async fn response<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
    ) -> std::io::Result<Response> {
        let (start, headers) = self
            .head(s)
            .await?
            .ok_or_else(|| bad("upstream closed without an answer"))?;
        let mut parts = start.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let reason = parts.next().unwrap_or("").to_string();
        let body = if status < 200 || status == 204 || status == 304 {
            Vec::new()
        } else {
            self.body(s, &headers, true).await?
        };
        Ok(Response {
            status,
            reason,
            headers,
            body,
        })
    }
}

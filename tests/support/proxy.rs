//! A TCP relay in front of moto that can fail every connection.

use super::*;

/// A TCP relay to `target` that can be switched to fail every connection,
/// or delay each one (a far-away region: every request pays the round
/// trip). It counts the connections it sees (moto closes each after one
/// response, so this is the number of requests attempted).
pub struct Proxy {
    pub port: u16,
    pub up: Arc<AtomicBool>,
    pub connections: Arc<AtomicU64>,
    /// Milliseconds each connection waits before it is relayed.
    pub delay_ms: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (u, c, d) = (up.clone(), connections.clone(), delay_ms.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                if !u.load(Ordering::SeqCst) {
                    drop(inbound); // reset: the endpoint is "down"
                    continue;
                }
                let delay = Duration::from_millis(d.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Ok(mut out) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Proxy {
            port,
            up,
            connections,
            delay_ms,
        }
    }
}

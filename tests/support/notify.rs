//! systemd's side of `NOTIFY_SOCKET`.

use super::*;

/// systemd's side of `NOTIFY_SOCKET`: a datagram socket in `wd` and every
/// message drainerd has sent to it so far, in order.
pub struct NotifySocket {
    pub path: PathBuf,
    sock: std::os::unix::net::UnixDatagram,
    pub messages: Vec<String>,
}

impl NotifySocket {
    pub fn bind(wd: &Workdir) -> NotifySocket {
        let path = wd.path("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            path,
            sock,
            messages: Vec::new(),
        }
    }
    /// Waits up to 200 ms for the next message.
    pub fn poll(&mut self) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.sock.recv(&mut buf) {
            self.messages
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    /// Takes every message already sent (for after the agent has exited).
    pub fn drain(&mut self) {
        loop {
            let before = self.messages.len();
            self.poll();
            if self.messages.len() == before {
                return;
            }
        }
    }
    pub fn saw(&self, needle: &str) -> bool {
        self.messages.iter().any(|m| m.contains(needle))
    }
}

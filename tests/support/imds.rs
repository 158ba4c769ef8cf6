//! The metadata simulator (imds-sim).

use super::*;

/// The metadata simulator (`imds-sim`, built beside the test binaries),
/// killed on drop.
pub struct ImdsSim {
    child: Child,
    pub endpoint: String,
    pub control: String,
}

impl ImdsSim {
    pub fn start(instance_id: &str) -> ImdsSim {
        // target/<profile>/deps/<test> → target/<profile>/imds-sim
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("imds-sim");
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p imds-sim` (scripts/test does)",
            bin.display()
        );
        let (port, ctl) = (free_port(), free_port());
        let child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--control",
                &format!("127.0.0.1:{ctl}"),
            ])
            .args(["--instance-id", instance_id, "--launched-ago", "10m"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start imds-sim");
        let sim = ImdsSim {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            control: format!("127.0.0.1:{ctl}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(&sim.control).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "imds-sim did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sim
    }

    /// Calls the control API; returns the JSON answer (panics on non-200).
    pub fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&self.control).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, payload) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "{method} {path}: {head}\n{payload}"
        );
        serde_json::from_str(payload).unwrap()
    }

    /// Environment that points drainerd at this simulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DRAINERD_METADATA_ENABLED", "true".into()),
            ("DRAINERD_METADATA_ENDPOINT", self.endpoint.clone()),
            ("DRAINERD_METADATA_POLL_INTERVAL", "1s".into()),
        ]
    }
}

impl Drop for ImdsSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! imds-sim: a local stand-in for the EC2 instance metadata service
//! (IMDSv2), for drainerd's tests, its demo and image tests. Not shipped in
//! drainerd's packages.
#![forbid(unsafe_code)]

mod server;
mod state;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};

const AFTER: &str = "\
Control API (JSON; every call answers with the whole state):
  GET    /state                     what is served, plus request counts
  POST   /spot        {\"action\":\"terminate|stop|hibernate\", \"in\":\"2m\"} or {\"time\":RFC3339}
  DELETE /spot                      cancel the interruption (404 again)
  POST   /rebalance                 rebalance recommendation, noticeTime now
  POST   /lifecycle   {\"state\":\"Terminated\"}   target lifecycle state
  POST   /maintenance [{\"Code\":\"system-reboot\",\"NotBefore\":\"21 Jan 2019 09:00:43 GMT\",...}]
  POST   /instance    {\"instance_id\",\"region\",\"availability_zone\",\"instance_type\",
                       \"launch_time\":RFC3339 or \"launched_ago\":\"57m\"}
  PUT    /user-data   raw body       DELETE /user-data
  POST   /tags        {\"Key\":\"value\"}  instance tags (tags/instance/<key>)
  POST   /faults      {\"latency_ms\",\"status\":500,\"unauthorized\":true,\"garbage\":true,
                       \"reset\":true,\"path_prefix\":\"/latest/meta-data/spot\",\"for\":\"30s\"}
  DELETE /faults
  POST   /down        {\"for\":\"60s\"}   the metadata port refuses connections
  POST   /reset                     clear notices, faults, user-data, tags

Examples:
  imds-sim serve --listen 127.0.0.1:8169 --control 127.0.0.1:8170 --launched-ago 57m
  imds-sim interrupt --in 2m          # spot interruption notice for the running demo
  imds-sim lifecycle Terminated
  imds-sim fault '{\"status\":500,\"for\":\"30s\"}'";

#[derive(Parser)]
#[command(name = "imds-sim", version, about = "Simulates the EC2 instance metadata service (IMDSv2)", after_help = AFTER)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve metadata and the control API until killed.
    Serve {
        /// Metadata service address (what the instance reads).
        #[arg(long, default_value = "127.0.0.1:8169")]
        listen: SocketAddr,
        /// Control API address.
        #[arg(long, default_value = "127.0.0.1:8170")]
        control: SocketAddr,
        #[arg(long)]
        instance_id: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// Launch time as an age, e.g. 57m.
        #[arg(long)]
        launched_ago: Option<String>,
        /// File served as user-data.
        #[arg(long)]
        user_data_file: Option<std::path::PathBuf>,
    },
    /// Schedule a spot interruption on a running simulator.
    Interrupt {
        #[arg(long, default_value = "127.0.0.1:8170")]
        control: String,
        #[arg(long, default_value = "terminate")]
        action: String,
        /// Time until the interruption.
        #[arg(long = "in", default_value = "2m")]
        in_: String,
    },
    /// Send a rebalance recommendation.
    Rebalance {
        #[arg(long, default_value = "127.0.0.1:8170")]
        control: String,
    },
    /// Set the Auto Scaling target lifecycle state (e.g. Terminated).
    Lifecycle {
        state: String,
        #[arg(long, default_value = "127.0.0.1:8170")]
        control: String,
    },
    /// Inject faults (a JSON object, see below); `{}` clears them.
    Fault {
        json: String,
        #[arg(long, default_value = "127.0.0.1:8170")]
        control: String,
    },
    /// Print the simulator's state.
    State {
        #[arg(long, default_value = "127.0.0.1:8170")]
        control: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            listen,
            control,
            instance_id,
            region,
            launched_ago,
            user_data_file,
        } => serve(
            listen,
            control,
            instance_id,
            region,
            launched_ago,
            user_data_file,
        ),
        Command::Interrupt {
            control,
            action,
            in_,
        } => call(
            &control,
            "POST",
            "/spot",
            &serde_json::json!({ "action": action, "in": in_ }).to_string(),
        ),
        Command::Rebalance { control } => call(&control, "POST", "/rebalance", ""),
        Command::Lifecycle { state, control } => call(
            &control,
            "POST",
            "/lifecycle",
            &serde_json::json!({ "state": state }).to_string(),
        ),
        Command::Fault { json, control } if json.trim() == "{}" => {
            call(&control, "DELETE", "/faults", "")
        }
        Command::Fault { json, control } => call(&control, "POST", "/faults", &json),
        Command::State { control } => call(&control, "GET", "/state", ""),
    };
    if let Err(e) = result {
        eprintln!("imds-sim: {e}");
        std::process::exit(1);
    }
}

fn serve(
    listen: SocketAddr,
    control: SocketAddr,
    instance_id: Option<String>,
    region: Option<String>,
    launched_ago: Option<String>,
    user_data_file: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let mut sim = state::Sim::default();
    if let Some(id) = instance_id {
        sim.instance.instance_id = id;
    }
    if let Some(r) = region {
        sim.instance.availability_zone = format!("{r}a");
        sim.instance.region = r;
    }
    if let Some(ago) = launched_ago {
        let d =
            humantime::parse_duration(&ago).map_err(|e| format!("--launched-ago {ago}: {e}"))?;
        sim.instance.launch_time =
            humantime::format_rfc3339_seconds(std::time::SystemTime::now() - d).to_string();
    }
    if let Some(p) = user_data_file {
        sim.user_data =
            Some(std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    let sim = Arc::new(Mutex::new(sim));
    let down = Arc::new(Mutex::new(None));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let ctl = tokio::net::TcpListener::bind(control)
            .await
            .map_err(|e| format!("{control}: {e}"))?;
        drop(ctl);
        eprintln!("imds-sim: metadata on http://{listen}, control on http://{control}");
        let killer = Arc::new(tokio::sync::watch::channel(0u64).0);
        let c = tokio::spawn(server::serve_control(
            control,
            sim.clone(),
            down.clone(),
            killer.clone(),
        ));
        let m = server::serve_imds(listen, sim, down, killer).await;
        c.abort();
        m.map_err(|e| format!("{listen}: {e}"))
    })
}

/// A one-shot HTTP/1.1 request to the control API; prints the answer.
fn call(control: &str, method: &str, path: &str, body: &str) -> Result<(), String> {
    let addr = control.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr)
        .map_err(|e| format!("cannot reach the simulator's control API at {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, payload) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    print!("{payload}");
    if head.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(head.lines().next().unwrap_or("no answer").to_string())
    }
}

//! The read-and-repair commands: `job` (a tracked job's state and
//! history), `queue` (depths) and `dlq redrive`.

use super::{settings, unavailable, Common, Failure};
use crate::config::overrides::ProcessEnv;
use crate::exit;
use crate::ops::admin::Admin;
use crate::ops::table;

pub(super) async fn job(common: &Common, id: &str) -> Result<(), Failure> {
    let s = settings(common, &ProcessEnv)?;
    let t = s.require_table().await?;
    let Some(j) = table::status(&t, id).await.map_err(unavailable)? else {
        return Err(Failure::new(
            1,
            format!(
                "job {id}: not in table {} (never tracked, mistyped, or expired)",
                t.name
            ),
        ));
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("job         {}", j.job_id);
    println!("state       {}", j.state.map_or("?", |s| s.name()));
    println!("attempts    {}", j.attempts);
    println!("queued      {}", opt(&j.queued_at));
    println!("started     {}", opt(&j.started_at));
    println!("finished    {}", opt(&j.finished_at));
    println!("instance    {}", opt(&j.instance_id));
    println!("message     {}", opt(&j.message_id));
    println!(
        "exit code   {}",
        j.exit_code.map_or("-".into(), |c| c.to_string())
    );
    println!(
        "duration    {}",
        j.duration_ms.map_or("-".into(), |d| format!("{d} ms"))
    );
    println!("history");
    for h in &j.history {
        println!(
            "  {}  {:<12} attempt {}{}{}",
            h.at,
            h.state,
            h.attempt,
            h.instance_id
                .as_deref()
                .map(|i| format!("  on {i}"))
                .unwrap_or_default(),
            h.exit_code
                .map(|c| format!("  exit {c}"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

async fn dlq_of(admin: &Admin) -> Result<Option<(String, u32)>, Failure> {
    let Some(p) = admin.redrive_policy().await.map_err(unavailable)? else {
        return Ok(None);
    };
    let url = admin.queue_url_of(&p.dlq_arn).await.map_err(unavailable)?;
    Ok(Some((url, p.max_receive_count)))
}

pub(super) async fn queue(common: &Common) -> Result<(), Failure> {
    let s = settings(common, &ProcessEnv)?;
    let url = s.queue_url()?;
    let admin = Admin::new(s.sqs().await, url);
    let d = admin.depth(url).await.map_err(unavailable)?;
    println!("queue       {url}");
    println!("visible     {}", d.visible);
    println!("in flight   {}", d.in_flight);
    println!("delayed     {}", d.delayed);
    match dlq_of(&admin).await? {
        Some((dlq, max)) => {
            let dd = admin.depth(&dlq).await.map_err(unavailable)?;
            println!("dlq         {dlq} (after {max} receives)");
            println!("dlq depth   {}", dd.visible + dd.in_flight + dd.delayed);
        }
        None => println!("dlq         none (no redrive policy)"),
    }
    Ok(())
}

pub(super) async fn redrive(common: &Common, yes: bool, limit: Option<u64>) -> Result<(), Failure> {
    let s = settings(common, &ProcessEnv)?;
    let url = s.queue_url()?;
    let admin = Admin::new(s.sqs().await, url);
    let Some((dlq, _)) = dlq_of(&admin).await? else {
        return Err(Failure::new(
            exit::USAGE,
            format!("queue {url} has no redrive policy, so no dead-letter queue to redrive from"),
        ));
    };
    let d = admin.depth(&dlq).await.map_err(unavailable)?;
    if !yes {
        println!(
            "{} messages in {dlq} ({} visible, {} in flight); nothing moved. Run again with --yes to move {} back to {url}.",
            d.visible + d.in_flight,
            d.visible,
            d.in_flight,
            limit.map_or("them".to_string(), |l| format!("up to {l} of them"))
        );
        return Ok(());
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let moved = admin
        .redrive(&dlq, limit, |m| {
            if tty {
                eprint!("\rmoved {}", m.moved + m.duplicated);
            }
        })
        .await
        .map_err(unavailable)?;
    if tty {
        eprintln!();
    }
    if let Some(t) = s.table().await {
        let mut reset = 0;
        for id in &moved.job_ids {
            if table::requeue(&t, id).await.is_ok() {
                reset += 1;
            }
        }
        println!("tracking: {reset} dead-lettered jobs marked Queued again");
    }
    println!(
        "moved {} messages from {dlq} to {url}{}{}",
        moved.moved,
        if moved.duplicated > 0 {
            format!(
                "; {} sent but not deleted from the DLQ (now in both queues)",
                moved.duplicated
            )
        } else {
            String::new()
        },
        if moved.failed > 0 {
            format!("; {} could not be sent and stay in the DLQ", moved.failed)
        } else {
            String::new()
        },
    );
    if moved.failed > 0 || moved.duplicated > 0 {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            "some messages were not moved cleanly (see above)",
        ));
    }
    Ok(())
}

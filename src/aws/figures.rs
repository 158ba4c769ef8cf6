//! The status page's queue, DLQ and group figures, read from SQS and Auto
//! Scaling (the [`Source`] the status page's refresher reads through).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::autoscaling::AutoScaling;
use super::sqs::Sqs;
use crate::status::board::{Figures, Source};

/// Reads the queue's and its DLQ's depths, and the group with its members.
pub struct AwsFigures {
    pub sqs: Arc<Sqs>,
    /// This instance's group, when it is in one.
    pub asg: Option<Arc<AutoScaling>>,
}

impl Source for AwsFigures {
    fn read<'a>(&'a self, last: &'a Figures) -> Pin<Box<dyn Future<Output = Figures> + Send + 'a>> {
        Box::pin(async move {
            let mut next = last.clone();
            next.errors.clear();
            next.queue_fresh = false;
            match self.sqs.depths(&self.sqs.url).await {
                Ok(d) => {
                    if next.dlq_url.is_none() {
                        if let Some(arn) = &d.dead_letter_arn {
                            match self.sqs.url_of(arn).await {
                                Ok(u) => next.dlq_url = Some(u),
                                Err(e) => next.errors.push(e.to_string()),
                            }
                        }
                    }
                    next.queue = Some(d);
                    next.queue_fresh = true;
                }
                Err(e) => next.errors.push(e.to_string()),
            }
            if let Some(url) = next.dlq_url.clone() {
                match self.sqs.depths(&url).await {
                    Ok(d) => next.dlq = Some(d),
                    Err(e) => next.errors.push(e.to_string()),
                }
            }
            if let Some(asg) = self.asg.as_ref().filter(|a| a.group().is_some()) {
                match asg.describe().await {
                    Ok(g) => next.group = Some(g),
                    Err(e) => next.errors.push(e.to_string()),
                }
            }
            next
        })
    }
}

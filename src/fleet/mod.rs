//! This instance's place in its Auto Scaling group: scale-in protection
//! while it has work, leaving the group when work is scarce, and the status
//! page's spawn and leave buttons. The decisions are `decide/`'s; the calls
//! are `aws::autoscaling`'s; what guards leaving is the drain's occupancy.

mod buttons;
pub mod membership;

pub use membership::{Membership, Refusal, Request};

//! From the site's evaluated `rollout { … }` block to the rollout engine's policy.
use std::time::Duration;

use ferry_lang::model as lang;
use ferry_rollout::{BatchSize, FailureLimit, OnFailure, Order, Pause, Policy};

/// The engine's policy for a site's rollout block.
pub fn policy_of(site: &lang::RolloutPolicy) -> Policy {
    Policy {
        order: match site.order {
            lang::RolloutOrder::Dependencies => Order::Dependencies,
            lang::RolloutOrder::Declared => Order::Declared,
            lang::RolloutOrder::None => Order::None,
        },
        canary: (site.canary > 0).then_some(site.canary),
        batch: match site.batch {
            lang::Amount::Count(n) => BatchSize::Count(n),
            lang::Amount::Percent(p) => BatchSize::Percent(p),
        },
        group_by: site.group_by.clone(),
        group_order: Vec::new(),
        max_failures: match site.max_failures {
            lang::Amount::Count(n) => FailureLimit::Count(n),
            lang::Amount::Percent(p) => FailureLimit::Percent(p),
        },
        on_failure: match site.on_failure {
            lang::OnFailure::Stop => OnFailure::Stop,
            lang::OnFailure::Rollback => OnFailure::Rollback,
            lang::OnFailure::Continue => OnFailure::Continue,
        },
        pause: match site.pause {
            lang::Pause::None => Pause::None,
            lang::Pause::Duration { ms } => Pause::Duration(Duration::from_millis(ms)),
            lang::Pause::Confirm => Pause::Confirm,
        },
        external: site.program.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_the_site_policy_reaches_the_engine() {
        let site = lang::RolloutPolicy {
            order: lang::RolloutOrder::Declared,
            canary: 2,
            batch: lang::Amount::Percent(30),
            group_by: Some("datacenter".into()),
            max_failures: lang::Amount::Count(1),
            on_failure: lang::OnFailure::Continue,
            pause: lang::Pause::Duration { ms: 1500 },
            program: Some(vec!["./policy.py".into()]),
        };
        let policy = policy_of(&site);
        assert_eq!(policy.order, Order::Declared);
        assert_eq!(policy.canary, Some(2));
        assert_eq!(policy.batch, BatchSize::Percent(30));
        assert_eq!(policy.group_by.as_deref(), Some("datacenter"));
        assert_eq!(policy.max_failures, FailureLimit::Count(1));
        assert_eq!(policy.on_failure, OnFailure::Continue);
        assert_eq!(policy.pause, Pause::Duration(Duration::from_millis(1500)));
        assert_eq!(policy.external, Some(vec!["./policy.py".to_string()]));
        assert_eq!(
            policy_of(&lang::RolloutPolicy { canary: 0, ..site }).canary,
            None
        );
    }
}

//! `run --resume` is bound to the trail: each pending UUID goes to the action its
//! `action_submitted` event recorded (the CXone execute path, for CXone), never to whatever
//! action happens to be configured now. Resuming a crashed run must not send its UUIDs to
//! another action: neither platform deduplicates by UUID, so that would run the wrong action
//! with no record of the right one.

use std::collections::BTreeSet;

use cxone_uuid_audit::Pending;
use cxone_uuid_client::{ClientConfig, ProviderConfig};

use crate::exit::usage;

/// Points `config` at the action the pending UUIDs were recorded with, and keeps the UUIDs
/// to send now. With no action configured, the recorded one is used; a configured action must
/// be the recorded one (or, when the trail holds several, one of them: the others stay
/// pending for a later `--resume`).
pub(super) fn bind(
    config: &mut ClientConfig,
    pending: Vec<Pending>,
) -> anyhow::Result<Vec<Pending>> {
    let flag = match &config.provider {
        ProviderConfig::Cxone(_) => "--execute-path",
        _ => "--data-action-id",
    };
    let recorded: BTreeSet<String> = pending
        .iter()
        .filter_map(|p| p.action_id.clone())
        .filter(|a| !a.is_empty())
        .collect();
    if recorded.is_empty() {
        return Ok(pending);
    }
    let Some(target) = target(config) else {
        return Ok(pending);
    };
    let list = || {
        recorded
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match target.as_deref().filter(|t| !t.is_empty()) {
        Some(given) if recorded.contains(given) => given.to_string(),
        Some(given) => {
            return Err(usage(format!(
                "{flag} {given} differs from the action the pending UUIDs were submitted to ({}): \
                 --resume sends each to the action it was recorded with; drop {flag}, or give {}",
                list(),
                if recorded.len() == 1 {
                    format!("{flag} {}", list())
                } else {
                    format!("{flag} with one of them")
                }
            )))
        }
        None if recorded.len() == 1 => recorded.iter().next().cloned().unwrap_or_default(),
        None => {
            return Err(usage(format!(
                "the pending UUIDs were submitted to {} actions ({}): resume them one action at a \
                 time with {flag} naming it",
                recorded.len(),
                list()
            )))
        }
    };
    *target = Some(chosen.clone());
    Ok(pending
        .into_iter()
        .filter(|p| {
            p.action_id
                .as_deref()
                .is_none_or(|a| a.is_empty() || a == chosen)
        })
        .collect())
}

/// Where the configured action lives for this provider.
fn target(config: &mut ClientConfig) -> Option<&mut Option<String>> {
    match &mut config.provider {
        ProviderConfig::Tutorial(t) => Some(&mut t.action_id),
        ProviderConfig::Genesys(g) => Some(&mut g.action_id),
        ProviderConfig::Cxone(c) => Some(&mut c.execute_path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cxone_uuid_client::Provider;
    use uuid::Uuid;

    fn pending(actions: &[&str]) -> Vec<Pending> {
        actions
            .iter()
            .map(|a| Pending {
                uuid: Uuid::new_v4(),
                action_id: Some((*a).to_string()),
                run_id: Uuid::nil(),
            })
            .collect()
    }

    fn config(action: Option<&str>) -> ClientConfig {
        let b = ClientConfig::builder().provider(Provider::Genesys);
        match action {
            Some(a) => b.with_action_id(a).build(),
            None => b.build(),
        }
    }

    #[test]
    fn no_action_given_takes_the_recorded_one() {
        let mut c = config(None);
        let kept = bind(&mut c, pending(&["a-1", "a-1"])).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(c.provider.action_id(), Some("a-1"));
    }

    #[test]
    fn another_action_is_refused_naming_both() {
        let mut c = config(Some("b-2"));
        let e = bind(&mut c, pending(&["a-1"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "--data-action-id b-2 differs from the action the pending UUIDs were submitted to \
             (a-1): --resume sends each to the action it was recorded with; drop \
             --data-action-id, or give --data-action-id a-1"
        );
    }

    #[test]
    fn several_actions_resume_one_at_a_time() {
        let mut c = config(None);
        let e = bind(&mut c, pending(&["a-1", "b-2"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 actions (a-1, b-2)"), "{e}");
        let mut c = config(Some("b-2"));
        let kept = bind(&mut c, pending(&["a-1", "b-2", "b-2"])).unwrap();
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|p| p.action_id.as_deref() == Some("b-2")));
    }
}

//! The events a run writes, shared by the Criterion bench and the `sustained` example so that
//! both measure the same mix.

use cxone_uuid_audit::{AuditEvent, EventKind};
use uuid::Uuid;

/// One event of `kind` for `uuid`, with the fields `run` fills in for that kind.
pub(crate) fn event(kind: EventKind, run: Uuid, uuid: Uuid) -> AuditEvent {
    let mut e = AuditEvent::new(kind, run);
    e.uuid = Some(uuid);
    match kind {
        EventKind::UuidGenerated => {
            e.generation_latency_ms = Some(0.004);
            e.uniqueness_rate = Some(1.0);
            let mut md = serde_json::Map::new();
            md.insert("version".into(), 4.into());
            md.insert("variant".into(), "RFC4122".into());
            e.metadata = Some(md);
        }
        EventKind::ActionSubmitted => e.action_id = Some("bench".into()),
        _ => {
            e.action_id = Some("bench".into());
            e.attempts = Some(1);
            e.http_status = Some(200);
            e.execution_latency_ms = Some(0.731);
            e.generation_latency_ms = Some(0.004);
            e.total_latency_ms = Some(0.735);
        }
    }
    e
}

/// `batch` events as a run writes them; `carry` holds the UUIDs whose outcome is still due.
pub(crate) fn run_mix(run: Uuid, batch: usize, carry: &mut Vec<Uuid>) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = carry
        .drain(..)
        .map(|u| event(EventKind::ActionExecuted, run, u))
        .collect();
    while out.len() + 2 <= batch {
        let u = Uuid::new_v4();
        out.push(event(EventKind::UuidGenerated, run, u));
        out.push(event(EventKind::ActionSubmitted, run, u));
        carry.push(u);
    }
    out
}

//! The report as aligned text, for a terminal or a ticket.

use std::fmt::Write as _;

use super::Report;

pub(super) fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = write(r, &mut s);
    s
}

fn write(r: &Report, s: &mut String) -> std::fmt::Result {
    writeln!(s, "cxone-uuid audit report: {}", r.database)?;
    writeln!(
        s,
        "generated {} by cxone-uuid {}",
        r.generated_at, r.tool_version
    )?;
    writeln!(s, "period: {}", super::html::period_words(r))?;
    writeln!(s)?;
    writeln!(s, "verification: {}", super::html::verdict_words(r))?;
    let v = &r.verification;
    if let Some(head) = &v.head {
        writeln!(s, "  head {head}")?;
    }
    if let Some(cp) = &v.last_checkpoint {
        writeln!(s, "  last checkpoint: seq {} at {}", cp.seq, cp.time)?;
    }
    if let Some(p) = &v.partial_copy {
        writeln!(
            s,
            "  partial copy of {}: starts at seq {}",
            p.source, p.first_seq
        )?;
    }
    #[cfg(feature = "audit-sqlite")]
    {
        let f = &r.figures;
        let t = &f.totals;
        writeln!(s)?;
        writeln!(
            s,
            "totals: {} submitted, {} succeeded, {} failed, {} pending, {} ambiguous",
            t.submitted, t.succeeded, t.failed, t.pending, t.ambiguous
        )?;
        writeln!(
            s,
            "        {} retries, {} answered 429, success rate {}",
            t.retries,
            t.rate_limited,
            super::html::percent(t.success_rate)
        )?;
        writeln!(s)?;
        writeln!(
            s,
            "{:<10}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}",
            "day", "succeeded", "failed", "p50 ms", "p95 ms", "p99 ms"
        )?;
        for d in &f.days {
            let q = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
            let l = d.latency_ms.as_ref();
            writeln!(
                s,
                "{:<10}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}",
                d.day,
                d.succeeded,
                d.failed,
                q(l.map(|l| l.p50)),
                q(l.map(|l| l.p95)),
                q(l.map(|l| l.p99))
            )?;
        }
        writeln!(s)?;
        writeln!(s, "failure reasons (most frequent first):")?;
        if f.failure_reasons.is_empty() {
            writeln!(s, "  none")?;
        }
        for reason in &f.failure_reasons {
            writeln!(
                s,
                "  {:>7}  {}  (e.g. {})",
                reason.count,
                reason.reason,
                reason.example_uuid.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(s)?;
        writeln!(s, "runs:")?;
        for run in &f.runs {
            writeln!(
                s,
                "  {}  {} .. {}  {} {}  submitted {}, succeeded {}, failed {}",
                run.run_id,
                run.start,
                run.end.as_deref().unwrap_or("(not finished in the period)"),
                run.provider.as_deref().unwrap_or("-"),
                run.action_id.as_deref().unwrap_or("-"),
                run.submitted,
                run.succeeded,
                run.failed
            )?;
        }
    }
    Ok(())
}

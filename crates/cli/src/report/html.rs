//! The report as one self-contained HTML page: inline CSS, SVG charts drawn by `plotters`'
//! SVG backend, no script, and a Content-Security-Policy that forbids every fetch, so the page
//! opens offline in any browser and nothing in it can call out. Text is escaped with
//! `html-escape`; element ids (`total-submitted`, …) let a test read the DOM back.

use std::fmt::Write as _;

use html_escape::encode_text as esc;

use super::Report;

/// The period in words, as every format says it.
pub(super) fn period_words(r: &Report) -> String {
    let p = &r.period;
    let mut s = match (&p.since, &p.until) {
        (None, None) => "everything in the database".to_string(),
        (Some(a), None) => format!("from {a}"),
        (None, Some(b)) => format!("before {b}"),
        (Some(a), Some(b)) => format!("from {a} to before {b}"),
    };
    if let Some(run) = &p.run_id {
        let _ = write!(s, ", run {run}");
    }
    s
}

/// The verdict in words.
pub(super) fn verdict_words(r: &Report) -> String {
    let v = &r.verification;
    let mut s = match &v.first_break {
        None => format!("intact: {} events, chain verified", v.events),
        Some(b) => format!("BROKEN at seq {}: {}", b.seq, b.reason),
    };
    match (v.proven, v.signed_through) {
        (Some(true), Some(n)) => {
            let _ = write!(s, "; signed checkpoints valid, events 1–{n} signed");
        }
        (Some(true), None) => s.push_str("; signed checkpoints valid"),
        (Some(false), _) if v.first_break.is_none() => {
            s.push_str("; NOT PROVEN: no checkpoint is signed by the given key")
        }
        _ if !v.signatures_checked && v.last_checkpoint.is_some() => {
            s.push_str(" (signatures not checked: pass --public-key)")
        }
        _ => {}
    }
    s
}

/// `96.9%`, or `n/a` with nothing answered.
pub(super) fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_string(), |r| format!("{:.1}%", r * 100.0))
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #1b1f24; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { padding: .25rem .6rem; text-align: left; }
th { background: #eef1f5; } tr:nth-child(even) td { background: #f7f8fa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #116329; font-weight: 600; } .bad { color: #a40e26; font-weight: 600; }
code { font-size: .9em; word-break: break-all; } .meta { color: #57606a; }
";

pub(super) fn render(r: &Report) -> anyhow::Result<String> {
    let mut s = String::with_capacity(64 * 1024);
    let title = format!("cxone-uuid audit report: {}", r.database);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n\
         <p class=\"meta\">Generated {} by cxone-uuid {}. Period: <span id=\"period\">{}</span>.</p>\n",
        esc(&title),
        esc(&title),
        esc(&r.generated_at),
        r.tool_version,
        esc(&period_words(r))
    );
    verification(&mut s, r);
    #[cfg(feature = "audit-sqlite")]
    figures(&mut s, r)?;
    s.push_str("</body></html>\n");
    Ok(s)
}

fn verification(s: &mut String, r: &Report) {
    let v = &r.verification;
    let class = if r.passed() { "ok" } else { "bad" };
    let _ = write!(
        s,
        "<h2>Verification</h2>\n<p id=\"verdict\" class=\"{class}\">{}</p>\n<table>",
        esc(&verdict_words(r))
    );
    let mut row = |k: &str, id: &str, val: String| {
        let _ = write!(
            s,
            "<tr><th>{k}</th><td id=\"{id}\"><code>{}</code></td></tr>",
            esc(&val)
        );
    };
    row("events verified", "verified-events", v.events.to_string());
    row(
        "head hash",
        "head",
        v.head.clone().unwrap_or_else(|| "-".into()),
    );
    row(
        "last checkpoint",
        "last-checkpoint",
        v.last_checkpoint
            .as_ref()
            .map_or_else(|| "none".into(), |c| format!("seq {} at {}", c.seq, c.time)),
    );
    if let Some(p) = &v.partial_copy {
        row(
            "partial copy",
            "partial-copy",
            format!("of {}, starting at seq {}", p.source, p.first_seq),
        );
    }
    s.push_str("</table>\n");
}

#[cfg(feature = "audit-sqlite")]
fn figures(s: &mut String, r: &Report) -> anyhow::Result<()> {
    let f = &r.figures;
    let t = &f.totals;
    s.push_str("<h2>Totals</h2>\n<table>");
    for (label, id, value) in [
        (
            "UUIDs submitted",
            "total-submitted",
            t.submitted.to_string(),
        ),
        ("succeeded", "total-succeeded", t.succeeded.to_string()),
        ("failed", "total-failed", t.failed.to_string()),
        ("pending", "total-pending", t.pending.to_string()),
        ("ambiguous", "total-ambiguous", t.ambiguous.to_string()),
        ("retries", "total-retries", t.retries.to_string()),
        (
            "answered 429",
            "total-rate-limited",
            t.rate_limited.to_string(),
        ),
        ("success rate", "success-rate", percent(t.success_rate)),
    ] {
        let _ = write!(
            s,
            "<tr><th>{label}</th><td class=\"n\" id=\"{id}\">{}</td></tr>",
            esc(&value)
        );
    }
    s.push_str("</table>\n<h2>Outcomes per day</h2>\n");
    s.push_str(&super::charts::outcomes(&f.days)?);
    s.push_str("\n<h2>Server latency per day (ms)</h2>\n");
    s.push_str(&super::charts::latency(&f.days)?);
    s.push_str(
        "\n<table><tr><th>day</th><th>succeeded</th><th>failed</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>",
    );
    for d in &f.days {
        let q = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        let l = d.latency_ms.as_ref();
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&d.day),
            d.succeeded,
            d.failed,
            q(l.map(|l| l.p50)),
            q(l.map(|l| l.p95)),
            q(l.map(|l| l.p99))
        );
    }
    s.push_str("</table>\n<h2>Most frequent failure reasons</h2>\n");
    if f.failure_reasons.is_empty() {
        s.push_str("<p id=\"no-failures\">No failures in the period.</p>\n");
    } else {
        s.push_str("<table id=\"failure-reasons\"><tr><th>count</th><th>reason</th><th>example UUID</th></tr>");
        for reason in &f.failure_reasons {
            let _ = write!(
                s,
                "<tr><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
                reason.count,
                esc(&reason.reason),
                esc(reason.example_uuid.as_deref().unwrap_or("-"))
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Runs</h2>\n<table id=\"runs\"><tr><th>run id</th><th>start</th><th>end</th><th>provider</th><th>action</th><th>submitted</th><th>succeeded</th><th>failed</th></tr>");
    for run in &f.runs {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&run.run_id),
            esc(&run.start),
            esc(run.end.as_deref().unwrap_or("not finished in the period")),
            esc(run.provider.as_deref().unwrap_or("-")),
            esc(run.action_id.as_deref().unwrap_or("-")),
            run.submitted,
            run.succeeded,
            run.failed
        );
    }
    s.push_str("</table>\n");
    Ok(())
}

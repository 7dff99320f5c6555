//! Rows 2a–2d and 2f: `cxone-uuid run` against the mock at concurrency 1, 8 and 64, beside the
//! two anchors it is read against: a load generator's ceiling on the same mock (oha, else wrk)
//! and the tutorial's Python client. Rows 2e and 2g, from the same mock, are in write_ahead.rs.

use std::process::Command;

use anyhow::{bail, Context, Result};

use super::json::{self, Json};
use super::proc::{self, measure, Job, Mock, Stdout};
use super::report::{human, Row};
use super::runner::{json_of, RunFigures};
use super::tools::{LoadGen, Tools};
use super::{Bench, ACTION_ID, CLIENT_ID, CLIENT_SECRET};

/// Row 2c: `run` at c64 must reach at least this share of the load generator's ceiling.
const VS_CEILING_MIN: f64 = 0.60;
/// Why row 2c can miss.
const WHY_VS_CEILING: &str =
    "the ceiling does nothing but HTTP with one fixed body; `run` also generates and \
    registers each UUID, writes three audit events with a group-commit fsync before \
    each POST, and parses and checks every response";

/// Row 2d: `run` at c64 must be at least this many times the tutorial client's rate.
const VS_TUTORIAL_MIN: f64 = 20.0;
/// Why row 2d can miss.
const WHY_VS_TUTORIAL: &str =
    "moves with row 2c; over a real network with TLS the tutorial's new connection per \
    request costs far more than on loopback, so loopback understates the gap";

/// `run` at concurrency 8 and 64 (and the oha ceiling): best of this many. Concurrency 1 runs
/// once (one request at a time, it is the longest run).
pub(super) const RUN_REPEATS: usize = 2;

impl Bench {
    /// Returns the c64 `run` figures (reused by row 5b as its small-n point).
    pub(super) fn end_to_end(&mut self, tools: &Tools) -> Option<(u64, RunFigures)> {
        let mock = match Mock::start(&self.bin, &[], &self.logs, "mock-e2e") {
            Ok(m) => m,
            Err(e) => {
                for id in ["2a", "2b", "2c", "2d", "2e", "2g", "2f", "4s"] {
                    self.push(Row::new(id, "run against the mock").failed(&e));
                }
                return None;
            }
        };

        // Anchors first, so each of our rows can state them.
        let (_, n64) = self.sizes.e2e[2];
        let ceiling = self.ceiling(tools, &mock, n64);
        let tutorial = self.tutorial_client(tools, &mock);
        match &ceiling {
            Ok(rps) => self.figure("ceiling_c64_rps", Json::Num(*rps)),
            Err(e) => self.note(format!("ceiling (load generator) failed: {e:#}")),
        }
        match &tutorial {
            Ok(rps) => self.figure("tutorial_client_rps", Json::Num(*rps)),
            Err(e) => self.note(format!("tutorial client failed: {e:#}")),
        }
        let tut_text = |rps: f64| {
            format!(
                "(b) tutorial client (sequential `requests.post`, no Session), {} requests: {} req/s",
                self.sizes.py_client,
                human(rps)
            )
        };

        let mut c64 = None;
        for (i, &(c, n)) in self.sizes.e2e.iter().enumerate() {
            let audit = format!(
                "jsonl:{}",
                self.dir.join(format!("run-c{c}.jsonl")).display()
            );
            let id = ["2a", "2b", "2c"][i];
            let mut row = Row::new(id, format!("run -n {n} --concurrency {c} --audit jsonl"));
            row.unit = "req/s";
            let trail = self.dir.join(format!("run-c{c}.jsonl"));
            let got = self.run_best(
                &format!("run-c{c}"),
                &mock,
                n,
                &[
                    "--concurrency",
                    &c.to_string(),
                    "--rate",
                    "unlimited",
                    "--audit",
                    &audit,
                ],
                n as f64 / 500.0,
                Some(&trail),
                if c == 1 { 1 } else { RUN_REPEATS },
            );
            match got {
                Ok(f) => {
                    self.figure(format!("run_c{c}_rps"), Json::Num(f.throughput));
                    self.figure(format!("run_c{c}_summary"), f.summary.clone());
                    row.value = Some(f.throughput);
                    row.note = format!(
                        "p50 {} ms, p99 {} ms",
                        human(f.summary.num("latency_ms.p50").unwrap_or(f64::NAN)),
                        human(f.summary.num("latency_ms.p99").unwrap_or(f64::NAN))
                    );
                    if c == 64 {
                        match &ceiling {
                            Ok(rps) => {
                                row.anchor = format!(
                                    "(a) {} c64 keep-alive, same body: {} req/s",
                                    tools.load_name(),
                                    human(*rps)
                                );
                                row.ratio = Some(f.throughput / rps);
                                row.ratio_unit = "of ceiling";
                                row.target = format!("≥ {VS_CEILING_MIN} of (a)");
                                row.why = WHY_VS_CEILING;
                                row.met = Some(f.throughput / rps >= VS_CEILING_MIN);
                            }
                            Err(e) => row.anchor = format!("(a) unavailable: {e:#}"),
                        }
                        c64 = Some((n, f));
                    } else if let Ok(rps) = &tutorial {
                        row.anchor = tut_text(*rps);
                        row.ratio = Some(f.throughput / rps);
                        row.ratio_unit = "× (b)";
                        row.target = "— (information)".into();
                    }
                }
                Err(e) => row = row.failed(&e),
            }
            self.push(row);
        }

        // 2d: c64 against the tutorial client.
        let mut row = Row::new("2d", format!("run -n {n64} --concurrency 64 --audit jsonl"));
        row.unit = "req/s";
        row.target = format!("≥ {VS_TUTORIAL_MIN}× (b)");
        row.why = WHY_VS_TUTORIAL;
        row.ratio_unit = "× (b)";
        match (&c64, &tutorial) {
            (Some((_, f)), Ok(rps)) => {
                row.value = Some(f.throughput);
                row.anchor = tut_text(*rps);
                row.ratio = Some(f.throughput / rps);
                row.met = Some(f.throughput / rps >= VS_TUTORIAL_MIN);
            }
            (None, _) => row = row.failed(&anyhow::anyhow!("the c64 run failed (row 2c)")),
            (_, Err(e)) => row = row.failed(e),
        }
        self.push(row);

        self.write_ahead(&mock, n64);

        // 2f: the SQLite sink in the same run (its trail feeds row 4).
        let db = self.dir.join("run-c64.db");
        let mut row = Row::new(
            "2f",
            format!("run -n {n64} --concurrency 64 --audit sqlite"),
        );
        row.unit = "req/s";
        row.target = "— (information)".into();
        row.ratio_unit = "of JSONL run";
        match self.run_best(
            "run-c64-sqlite",
            &mock,
            n64,
            &[
                "--concurrency",
                "64",
                "--rate",
                "unlimited",
                "--audit",
                &format!("sqlite:{}", db.display()),
            ],
            n64 as f64 / 500.0,
            Some(&db),
            RUN_REPEATS,
        ) {
            Ok(f) => {
                self.figure("run_c64_sqlite_rps", Json::Num(f.throughput));
                self.figure("run_c64_sqlite_elapsed_s", Json::Num(f.elapsed_s));
                row.value = Some(f.throughput);
                if let Some((_, j)) = &c64 {
                    row.anchor = format!("row 2c (JSONL): {} req/s", human(j.throughput));
                    row.ratio = Some(f.throughput / j.throughput);
                }
            }
            Err(e) => row = row.failed(&e),
        }
        self.push(row);
        drop(mock);
        c64
    }

    /// Requests/s of oha (or wrk) POSTing one body at concurrency 64 with keep-alive.
    fn ceiling(&self, tools: &Tools, mock: &Mock, n: u64) -> Result<f64> {
        self.ceiling_on(tools, mock, n, None, 64)
    }

    /// [`Self::ceiling`] with the load generator on the CPUs `cpus` when given, at
    /// `concurrency` connections.
    pub(super) fn ceiling_on(
        &self,
        tools: &Tools,
        mock: &Mock,
        n: u64,
        cpus: Option<&str>,
        concurrency: u32,
    ) -> Result<f64> {
        let c = concurrency.to_string();
        let load = tools.load.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let token = fetch_token(mock)?;
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let body = format!(r#"{{"inputs":{{"uuid":"{uuid}"}}}}"#);
        let url = format!("{}/api/v2/data-actions/{ACTION_ID}/execute", mock.base_url);
        match load {
            LoadGen::Oha(oha) => {
                let help = Command::new(oha).arg("--help").output()?;
                let help = String::from_utf8_lossy(&help.stdout);
                let json_flag: &[&str] = if help.contains("--output-format") {
                    &["--output-format", "json"]
                } else {
                    &["-j"]
                };
                let job = super::proc::pinned(oha, cpus)
                    .args(["-n", &n.to_string(), "-c", &c, "--no-tui", "-m", "POST"])
                    .args(json_flag.iter().copied())
                    .args(["-H", &format!("Authorization: Bearer {token}")])
                    .args(["-H", "Content-Type: application/json"])
                    .args(["-H", &format!("Idempotency-Key: {uuid}")])
                    .args(["-d", &body, &url]);
                let mut best = 0.0f64;
                for i in 0..RUN_REPEATS {
                    let out = measure(
                        &format!("oha-c{c}-{i}"),
                        &job,
                        Stdout::Capture,
                        self.timeout(n as f64 / 1000.0),
                        &self.logs,
                    )?;
                    best = best.max(oha_rps(&json_of(&out, "oha")?)?);
                }
                Ok(best)
            }
            LoadGen::Wrk(wrk) => {
                let script = self.dir.join("wrk-post.lua");
                std::fs::write(
                    &script,
                    format!(
                        "wrk.method = \"POST\"\nwrk.body = '{body}'\n\
                         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
                         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
                         wrk.headers[\"Idempotency-Key\"] = \"{uuid}\"\n"
                    ),
                )?;
                let job = super::proc::pinned(wrk, cpus)
                    .args([
                        "-t",
                        "2",
                        "-c",
                        &c,
                        "-d",
                        &format!("{}s", self.sizes.wrk_secs),
                        "-s",
                    ])
                    .arg(&script)
                    .arg(&url);
                let out = measure(
                    &format!("wrk-c{c}"),
                    &job,
                    Stdout::Capture,
                    self.timeout(30.0),
                    &self.logs,
                )?;
                let text = out.stdout_text();
                if text.contains("Non-2xx") {
                    bail!("wrk saw non-2xx responses: {}", text.trim());
                }
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
                    .and_then(|v| v.trim().parse().ok())
                    .context("wrk printed no Requests/sec")
            }
        }
    }

    fn tutorial_client(&self, tools: &Tools, mock: &Mock) -> Result<f64> {
        let python = tools
            .python
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let n = self.sizes.py_client;
        let env = vec![
            ("CXONE_CLIENT_ID".to_string(), CLIENT_ID.to_string()),
            ("CXONE_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
            ("CXONE_DATA_ACTION_ID".into(), ACTION_ID.into()),
            ("CXONE_BASE_URL".into(), mock.base_url.clone()),
            (
                "CXONE_TOKEN_URL".into(),
                format!("{}/oauth2/token", mock.base_url),
            ),
        ];
        let job = Job::new(python)
            .arg(crate::root().join("xtask/bench/tutorial_client.py"))
            .arg(n.to_string())
            .envs(&env);
        let out = measure(
            "tutorial-client",
            &job,
            Stdout::Capture,
            self.timeout(n as f64 / 100.0),
            &self.logs,
        )?;
        let v = json_of(&out, "tutorial_client.py")?;
        if v.num("failed").unwrap_or(0.0) > 0.0 {
            bail!(
                "tutorial client: {} requests failed",
                v.num("failed").unwrap_or(0.0)
            );
        }
        v.num("throughput_per_s")
            .context("tutorial client printed no throughput_per_s")
    }
}

/// Requests/s from oha's JSON, refusing a run in which the mock answered anything but 200.
fn oha_rps(v: &Json) -> Result<f64> {
    let rate = v.num("summary.successRate").unwrap_or(1.0);
    if rate < 0.99 {
        bail!("oha: only {:.1}% of requests succeeded", rate * 100.0);
    }
    let non_200: f64 = match v.get("statusCodeDistribution") {
        Some(Json::Obj(m)) => m
            .iter()
            .filter(|(k, _)| k != "200")
            .filter_map(|(_, v)| if let Json::Num(n) = v { Some(*n) } else { None })
            .sum(),
        _ => 0.0,
    };
    if non_200 > 0.0 {
        bail!("oha: {non_200} responses were not 200 (is the token or body rejected?)");
    }
    v.num("summary.requestsPerSec")
        .context("oha's JSON has no summary.requestsPerSec")
}

/// A bearer token from the mock's token endpoint, for the load generator.
fn fetch_token(mock: &Mock) -> Result<String> {
    let form = format!(
        "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&scope=data-actions%3Aexecute"
    );
    let (status, body) = proc::http_post(
        mock.authority(),
        "/oauth2/token",
        "application/x-www-form-urlencoded",
        &form,
    )?;
    if status != 200 {
        bail!("the mock's token endpoint answered {status}");
    }
    match json::parse(&body)
        .ok()
        .and_then(|v| v.get("access_token").cloned())
    {
        Some(Json::Str(t)) => Ok(t),
        _ => bail!("the mock's token response has no access_token"),
    }
}

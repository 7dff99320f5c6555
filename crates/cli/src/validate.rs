//! `cxone-uuid validate`: check UUIDs given as arguments or one a line on stdin.
//!
//! Results go to stdout, one line per input in input order, so the output can be joined back to
//! the input line by line; the exit code sums it up (0 all valid, 1 any invalid).

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use cxone_uuid_core::{parse, ParseOptions, UuidFormat};
use serde::Serialize;

use crate::generate::VersionArg;

/// How results are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Output {
    /// `valid<TAB>canonical` or `invalid<TAB>input<TAB>reason`.
    #[default]
    Text,
    /// One JSON object a line: input, valid, canonical and version, or error.
    Json,
}

/// Arguments of `validate`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  cxone-uuid validate 0f8fad5b-d9cb-469f-a165-70867728950e
  cxone-uuid validate --strict --uuid-version 4 0f8fad5b-d9cb-469f-a165-70867728950e
  cxone-uuid validate --strict \"{0F8FAD5B-D9CB-469F-A165-70867728950E}\"
      (invalid: --strict takes only the lowercase hyphenated form; without it this passes)
  cxone-uuid generate -n 1000 | cxone-uuid validate --output json

Accepts hyphenated, simple (32 hex), braced and urn:uuid: forms in any case (--strict: only
lowercase hyphenated). Exit code 0 when all are valid, 1 when any is invalid, 2 on usage errors.")]
pub(crate) struct Args {
    /// Accept only the canonical form: lowercase hyphenated 8-4-4-4-12.
    #[arg(long)]
    strict: bool,

    /// Require this version (default: any RFC 9562 version 1 to 8).
    #[arg(long, value_enum)]
    uuid_version: Option<VersionArg>,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Output,

    /// UUIDs to check; with none, reads one a line from stdin (blank lines are skipped).
    uuids: Vec<String>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    input: &'a str,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    canonical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

struct Checker {
    opts: ParseOptions,
    output: Output,
    out: BufWriter<std::io::Stdout>,
    checked: u64,
    invalid: u64,
}

impl Checker {
    fn check(&mut self, input: &str) -> anyhow::Result<()> {
        self.checked += 1;
        let result = parse(input, &self.opts);
        if result.is_err() {
            self.invalid += 1;
        }
        let write = match (self.output, result) {
            (Output::Text, Ok(id)) => writeln!(
                self.out,
                "valid\t{}",
                UuidFormat::Hyphenated.encode(&id, &mut cxone_uuid_core::Uuid::encode_buffer())
            ),
            (Output::Text, Err(e)) => writeln!(self.out, "invalid\t{input}\t{e}"),
            (Output::Json, result) => {
                let line = match result {
                    Ok(id) => JsonResult {
                        input,
                        valid: true,
                        canonical: Some(UuidFormat::Hyphenated.format(&id)),
                        version: Some(id.get_version_num()),
                        error: None,
                    },
                    Err(e) => JsonResult {
                        input,
                        valid: false,
                        canonical: None,
                        version: None,
                        error: Some(e.to_string()),
                    },
                };
                serde_json::to_writer(&mut self.out, &line)?;
                self.out.write_all(b"\n")
            }
        };
        write.context("cannot write to stdout")
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match check_all(args) {
        Err(e) if crate::exit::is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

fn check_all(args: Args) -> anyhow::Result<ExitCode> {
    let mut checker = Checker {
        opts: ParseOptions {
            strict: args.strict,
            version: args.uuid_version.map(Into::into),
        },
        output: args.output,
        out: BufWriter::new(std::io::stdout()),
        checked: 0,
        invalid: 0,
    };
    if args.uuids.is_empty() {
        let stdin = std::io::stdin();
        // Interactive use sees each answer at once; a pipe gets full buffers.
        let interactive = stdin.is_terminal();
        let mut reader = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .context("cannot read stdin")?
                == 0
            {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            checker.check(text)?;
            if interactive {
                checker.out.flush().context("cannot write to stdout")?;
            }
        }
        if checker.checked == 0 {
            return Err(crate::exit::usage(
                "no UUIDs given: pass them as arguments or one a line on stdin",
            ));
        }
    } else {
        for input in &args.uuids {
            checker.check(input)?;
        }
    }
    checker.out.flush().context("cannot write to stdout")?;
    Ok(if checker.invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILURE)
    })
}

//! `bare-uuid N`: N random v4 UUIDs from `uuid::Uuid::new_v4()`, one a line, to stdout.
//!
//! The same output path as `cxone-uuid generate` (64 KiB `BufWriter`, lowercase hyphenated,
//! `\n`), so the benchmark's ratio measures only what the tool adds: health tests and the
//! exact uniqueness registry.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let count: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: bare-uuid N");
            return ExitCode::from(2);
        }
    };
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut buf = uuid::Uuid::encode_buffer();
    for _ in 0..count {
        let line = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        if out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")).is_err() {
            return ExitCode::from(1);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

//! `cxone-uuid generate`: UUIDs offline, one a line, streamed to stdout.
//!
//! UUIDs are produced in batches (one registry round trip each), and each batch is written as
//! one block of lines, so memory stays flat in the count apart from the registry itself: 10 million
//! UUIDs never exist as 10 million strings.
//!
//! A batch is handed to an output thread only once the registry has taken all of it, and that
//! thread formats and writes it while the next batch is generated and registered: with the
//! memory registry's two halves also inserted on two threads, `generate -n 10000000` took 0.86
//! of the time it took with the output on the generating thread (medians of five alternating
//! runs on the 2-core VM, 0.54 against 0.63 s). Whatever stops generation, the batches already
//! handed over are written whole before the exit.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use cxone_uuid_core::{
    collision_probability, test_source, Generator, UniqueGenerator, UuidFormat, UuidVersion,
    DEFAULT_DUPLICATE_LIMIT,
};

/// Output form of each UUID (always lowercase).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FormatArg {
    /// 8-4-4-4-12, e.g. 0f8fad5b-d9cb-469f-a165-70867728950e.
    #[default]
    Hyphenated,
    /// 32 hex digits.
    Simple,
    /// urn:uuid:8-4-4-4-12.
    Urn,
    /// {8-4-4-4-12}.
    Braced,
}

impl From<FormatArg> for UuidFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Hyphenated => UuidFormat::Hyphenated,
            FormatArg::Simple => UuidFormat::Simple,
            FormatArg::Urn => UuidFormat::Urn,
            FormatArg::Braced => UuidFormat::Braced,
        }
    }
}

/// UUID version on the command line: 4 or 7.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum VersionArg {
    /// Random (122 random bits).
    #[default]
    #[value(name = "4")]
    V4,
    /// Time-ordered (Unix milliseconds, then random), for databases that index by UUID.
    #[value(name = "7")]
    V7,
}

impl From<VersionArg> for UuidVersion {
    fn from(v: VersionArg) -> Self {
        match v {
            VersionArg::V4 => UuidVersion::V4,
            VersionArg::V7 => UuidVersion::V7,
        }
    }
}

/// Arguments of `generate`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  cxone-uuid generate                          one v4 UUID
  cxone-uuid generate -n 1000000 > ids.txt     a million, each checked unique
  cxone-uuid generate -n 3 --uuid-version 7 --format urn
  cxone-uuid generate -n 100 --registry sqlite:used.db   unique across runs

Every UUID's random bytes pass the NIST SP 800-90B health tests; a failure stops generation
with exit code 1, as does reaching the duplicate limit or an unreachable registry.")]
pub(crate) struct Args {
    /// How many UUIDs to print.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = crate::exit::parse_count,
        default_value_t = 1)]
    count: u64,

    /// Output form.
    #[arg(long, value_enum, default_value_t)]
    format: FormatArg,

    /// UUID version.
    #[arg(long, value_enum, default_value_t)]
    uuid_version: VersionArg,

    #[command(flatten)]
    registry: crate::registries::RegistryArgs,

    /// Consecutive duplicates allowed while producing one UUID before stopping.
    #[arg(long, default_value_t = DEFAULT_DUPLICATE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    duplicate_limit: u32,

    /// TESTS ONLY: replace the OS random source with a predictable pattern
    /// (repeat:SEED:PERIOD, dup:SEED:EVERY, constant:BYTE, cycle:N, stuck:BYTE).
    #[arg(long, hide = true, value_name = "SPEC")]
    test_entropy: Option<String>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let version = UuidVersion::from(args.uuid_version);
    let generator = match &args.test_entropy {
        Some(spec) => {
            let source = test_source(spec).map_err(|e| crate::exit::usage(e.to_string()))?;
            crate::exit::note(&format!(
                "WARNING: --test-entropy {spec}: the random source is a PREDICTABLE TEST PATTERN. \
                 These UUIDs are not random; never use them outside tests."
            ));
            Generator::from_source(version, source)
        }
        None => Generator::new(version),
    };
    let registry = crate::registries::open_with(&args.registry, args.count).await?;
    // UUIDs per registry call, as the registry prefers: its cost per call (a commit, a round
    // trip) is shared by the batch, and output still streams batch by batch.
    let batch = u64::try_from(registry.preferred_batch().max(1)).unwrap_or(4096);
    let mut unique = UniqueGenerator::new(generator, registry, args.duplicate_limit);

    // Registered batches are formatted and written on a thread of their own while the next
    // is generated and registered here (module docs).
    let (batches, writer) = spawn_writer(UuidFormat::from(args.format))?;
    let mut written = 0u64;
    let mut generated = Ok(());
    while written < args.count {
        let n = (args.count - written).min(batch);
        let batch_size = usize::try_from(n).unwrap_or(usize::MAX);
        let ids = match unique.next_batch(batch_size).await {
            Ok(ids) => ids,
            Err(e) => {
                generated = Err(e).with_context(|| {
                    format!("generation stopped after {written} of {} UUIDs", args.count)
                });
                break;
            }
        };
        if batches.send(ids).is_err() {
            // The writer stopped: its result says why.
            break;
        }
        written += n;
    }
    // Whatever stopped the loop, the batches already handed over are written whole first.
    drop(batches);
    match writer.join() {
        Ok(Ok(())) => generated?,
        Ok(Err(e)) => return broken_pipe_or(e),
        Err(_) => anyhow::bail!("the output thread panicked; the output may be incomplete"),
    }
    let stats = unique.stats();
    tracing::info!(
        unique = stats.unique,
        candidates = stats.candidates,
        duplicates = stats.duplicates,
        uniqueness_rate = stats.uniqueness_rate(),
        collision_probability = collision_probability(stats.unique as f64),
        "generation finished"
    );
    Ok(ExitCode::SUCCESS)
}

/// Where registered batches go to be written.
type BatchSender = std::sync::mpsc::SyncSender<Vec<cxone_uuid_core::Uuid>>;
/// The output thread: its first write error, if any.
type Writer = std::thread::JoinHandle<std::io::Result<()>>;

/// Starts the thread that writes registered batches to stdout, each laid out as lines in one
/// buffer and written at once (no copy per UUID). It ends when the sender is dropped (after
/// flushing) or at the first write error, which it returns.
fn spawn_writer(format: UuidFormat) -> anyhow::Result<(BatchSender, Writer)> {
    // One batch queued while one is written and the next generated: memory stays flat.
    let (tx, rx): (BatchSender, _) = std::sync::mpsc::sync_channel(1);
    let writer = std::thread::Builder::new()
        .name("generate-output".into())
        .spawn(move || {
            let mut text = Vec::new();
            let mut out = std::io::stdout().lock();
            for ids in rx {
                format.encode_lines(&ids, &mut text);
                out.write_all(&text)?;
            }
            out.flush()
        })
        .context("cannot start the output thread")?;
    Ok((tx, writer))
}

/// A closed pipe (`generate | head`) is the reader's choice, not a failure.
fn broken_pipe_or(e: std::io::Error) -> anyhow::Result<ExitCode> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow::Error::new(e).context("cannot write to stdout"))
    }
}

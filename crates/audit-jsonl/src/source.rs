//! The read side: streaming lines across segments, and verifying the stored bytes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use cxone_uuid_audit::{AuditError, AuditEvent, AuditSource, Verifier, VerifySummary};
use ed25519_dalek::VerifyingKey;

use crate::files::{read_anchor, segments};
use crate::io_err;

/// Streams the lines of a trail across its segments, in chain order.
pub struct JsonlReader {
    segments: std::vec::IntoIter<(Option<u64>, PathBuf)>,
    current: Option<(PathBuf, BufReader<File>)>,
}

impl JsonlReader {
    /// Opens the trail at `path` (with its rotated segments). Errors if there is no file at all.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let segs = segments(path)?;
        if segs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no audit trail at {}", path.display()),
            ));
        }
        Ok(Self {
            segments: segs.into_iter(),
            current: None,
        })
    }

    /// The segment being read.
    pub fn current_file(&self) -> Option<&Path> {
        self.current.as_ref().map(|(p, _)| p.as_path())
    }

    /// Reads the next line into `buf` (without the newline); false at the end.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        loop {
            if self.current.is_none() {
                match self.segments.next() {
                    Some((_, p)) => {
                        let f = File::open(&p)?;
                        self.current = Some((p, BufReader::with_capacity(256 * 1024, f)));
                    }
                    None => return Ok(false),
                }
            }
            if let Some((_, r)) = &mut self.current {
                buf.clear();
                if r.read_until(b'\n', buf)? == 0 {
                    self.current = None;
                    continue;
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                return Ok(true);
            }
        }
    }

    /// Reads and parses the next event. A line that does not parse is an error naming its file.
    pub fn next_event(&mut self) -> Result<Option<AuditEvent>, AuditError> {
        let mut buf = Vec::new();
        let more = self.next_line(&mut buf).map_err(|source| AuditError::Io {
            sink: self.describe(),
            source,
        })?;
        if !more {
            return Ok(None);
        }
        serde_json::from_slice(&buf)
            .map(Some)
            .map_err(|e| AuditError::Backend {
                sink: self.describe(),
                message: format!("unparseable line: {e}"),
            })
    }

    fn describe(&self) -> String {
        format!(
            "jsonl:{}",
            self.current_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    }
}

impl Iterator for JsonlReader {
    type Item = Result<AuditEvent, AuditError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// Verifies the whole trail at `path` (all segments): [`JsonlSource::verify`].
pub fn verify(path: &Path, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
    JsonlSource::new(path).verify(public_key)
}

/// The trail at a path (with its rotated segments), read back.
#[derive(Debug, Clone)]
pub struct JsonlSource {
    path: PathBuf,
}

impl JsonlSource {
    /// The trail at `path`; nothing is opened until it is read.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl AuditSource for JsonlSource {
    fn describe(&self) -> String {
        format!("jsonl:{}", self.path.display())
    }

    fn exists(&self) -> Result<bool, AuditError> {
        Ok(!segments(&self.path).map_err(io_err(&self.path))?.is_empty())
    }

    /// Every event across the segments. Only the very last line may be partial (a crash
    /// mid-write, which the next writer moves aside): it is skipped; a bad line anywhere else
    /// is damage, [`AuditError::Damaged`].
    fn visit(
        &self,
        f: &mut dyn FnMut(&AuditEvent) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let err = io_err(&self.path);
        let mut reader = JsonlReader::open(&self.path).map_err(&err)?;
        let mut line = Vec::new();
        let mut bad: Option<String> = None;
        while reader.next_line(&mut line).map_err(&err)? {
            if let Some(why) = bad.take() {
                return Err(AuditError::Damaged {
                    sink: self.describe(),
                    message: format!(
                        "{} holds an unparseable line before its end ({why}); check it with `cxone-uuid audit verify`",
                        self.path.display()
                    ),
                });
            }
            match serde_json::from_slice::<AuditEvent>(&line) {
                Ok(ev) => f(&ev)?,
                Err(e) => bad = Some(e.to_string()),
            }
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<Option<AuditEvent>, AuditError> {
        Ok(read_anchor(&self.path))
    }

    /// Hashes the stored lines as they are (no parse for lines in the stored form), and names
    /// the segment file of a break. With `public_key`, checkpoints are checked too against the
    /// anchor kept beside the trail.
    fn verify(&self, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
        let path = &self.path;
        let mut reader = JsonlReader::open(path).map_err(io_err(path))?;
        let mut verifier = Verifier::new();
        if let Some(key) = public_key {
            verifier = verifier.with_public_key(key);
        }
        let mut line = Vec::with_capacity(1024);
        let chain_err = |b: cxone_uuid_audit::ChainBreak, file: Option<&Path>| AuditError::Chain {
            seq: b.seq,
            reason: b.reason,
            at: file.map(|f| format!("in {}", f.display())),
        };
        while reader.next_line(&mut line).map_err(io_err(path))? {
            if let Err(b) = verifier.feed_line(&line) {
                return Err(chain_err(b, reader.current_file()));
            }
        }
        let anchor = read_anchor(path);
        verifier
            .finish(anchor.as_ref())
            .map_err(|b| chain_err(b, None))
    }
}

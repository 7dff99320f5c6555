//! The trail's files: segment and anchor names, crash recovery, and reading the last line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cxone_uuid_audit::{AuditEvent, EventKind};

use crate::JsonlReader;

/// The length of `path` up to and including its last newline (0 when it has none): where a
/// failed write cuts the trail back to.
pub(crate) fn last_line_end(path: &Path) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    let mut end = f.metadata()?.len();
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = usize::try_from(end - start).unwrap_or(buf.len());
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

pub(crate) fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)
}

pub(crate) fn sync_dir(path: &Path) {
    // Makes a rename durable; best effort (not every platform can open a directory).
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path);
    Ok(())
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `PATH.N`, the N-th rotated segment (1 is the oldest).
pub fn segment_path(path: &Path, n: u64) -> PathBuf {
    with_suffix(path, &format!(".{n}"))
}

/// `PATH.checkpoint`, the latest signed checkpoint kept beside the trail.
pub fn anchor_path(path: &Path) -> PathBuf {
    with_suffix(path, ".checkpoint")
}

/// The trail's files in chain order: `PATH.1`, `PATH.2`, …, then `PATH` (numbered `None`).
/// Missing files are skipped.
pub fn segments(path: &Path) -> std::io::Result<Vec<(Option<u64>, PathBuf)>> {
    let mut out = Vec::new();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(out);
    };
    let prefix = format!("{name}.");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let fname = entry.file_name();
                let Some(fname) = fname.to_str() else {
                    continue;
                };
                if let Some(n) = fname
                    .strip_prefix(&prefix)
                    .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|rest| rest.parse::<u64>().ok())
                {
                    out.push((Some(n), segment_path(path, n)));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    }
    out.sort();
    if path.exists() {
        out.push((None, path.to_path_buf()));
    }
    Ok(out)
}

/// Moves a partial last line (no trailing newline) to `PATH.corrupt-<timestamp>` and truncates
/// the file after its last whole line. Returns where it went.
pub fn recover_partial_line(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let keep = match last_newline(&mut f, len)? {
        Some(pos) if pos + 1 == len => return Ok(None),
        Some(pos) => pos + 1,
        None => 0,
    };
    let mut partial = Vec::new();
    f.seek(SeekFrom::Start(keep))?;
    f.read_to_end(&mut partial)?;
    let stamp: String = cxone_uuid_audit::now_rfc3339_micros()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let aside = with_suffix(path, &format!(".corrupt-{stamp}"));
    write_atomically(&aside, &partial)?;
    f.set_len(keep)?;
    f.sync_all()?;
    Ok(Some(aside))
}

/// Position of the last `\n` in the first `len` bytes, reading backwards in chunks.
fn last_newline(f: &mut File, len: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The last whole line of `path` (without its newline), if any.
pub(crate) fn last_line(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    // The final byte is a newline after recovery; find the one before it.
    let end = match last_newline(&mut f, len)? {
        Some(p) => p,
        None => len,
    };
    let start = match last_newline(&mut f, end)? {
        Some(p) => p + 1,
        None => 0,
    };
    let mut line = vec![0u8; (end - start) as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut line)?;
    Ok(if line.is_empty() { None } else { Some(line) })
}

/// The checkpoint kept beside the trail, if there is a readable one.
pub fn read_anchor(path: &Path) -> Option<AuditEvent> {
    let bytes = std::fs::read(anchor_path(path)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(crate) fn last_checkpoint(path: &Path) -> std::io::Result<Option<AuditEvent>> {
    let mut reader = JsonlReader::open(path)?;
    let mut line = Vec::new();
    let mut last = None;
    while reader.next_line(&mut line)? {
        const NEEDLE: &[u8] = b"\"event\":\"checkpoint\"";
        if line.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
            if let Ok(ev) = serde_json::from_slice::<AuditEvent>(&line) {
                if ev.event == EventKind::Checkpoint {
                    last = Some(ev);
                }
            }
        }
    }
    Ok(last)
}

//! Signed checkpoints: what a bare hash chain cannot prove.
//!
//! Anyone able to rewrite a whole trail can recompute its chain, and a chain cannot show that its
//! tail was cut off. As AWS CloudTrail's digest files do, a sink given an Ed25519 signing key adds
//! a `checkpoint` event every N events and at the end of every run. Its `metadata` holds
//!
//! ```text
//! head_seq, head_hash   the event just before the checkpoint (its seq and hash)
//! time                  the checkpoint's own timestamp
//! prev_signature        the previous checkpoint's signature ("" for the first)
//! public_key            hex of the Ed25519 public key
//! signature             hex Ed25519 signature over signed_message(...) below
//! ```
//!
//! and the checkpoint is itself sealed into the chain. The signed message is the UTF-8 text
//! `"cxone-uuid checkpoint v1\nhead_seq={}\nhead_hash={}\ntime={}\nprev_signature={}\n"`.
//! Chaining signatures means checkpoints can neither be dropped from the middle nor reordered.
//!
//! Sinks also keep the latest checkpoint beside the trail (JSONL: `PATH.checkpoint`; SQLite: the
//! `audit_checkpoint_head` table). A tail cut before the last checkpoint leaves that anchor
//! pointing past the end of the trail, which [`CheckpointVerifier::finish`] reports. (Whoever also
//! deletes the anchor can only be caught by comparing with a copy kept elsewhere: `audit verify`
//! prints the last signed head for that purpose.)

mod checkpoint;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

pub use checkpoint::{CheckpointError, CheckpointVerifier, Checkpointer, SignedSummary};

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// Reading or writing a key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a key of the expected kind (the key itself is never shown).
    #[error("{}: {message}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The operating system's random source failed.
    #[error("cannot read random bytes from the operating system: {0}")]
    Random(String),
}
/// A new signing key from the operating system's random source.
pub fn generate_signing_key() -> Result<SigningKey, SigningError> {
    use rand::TryRngCore as _;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| SigningError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` to `path` (PKCS#8 PEM, mode 0600, never overwriting) and its public half to
/// `path.pub` (SPKI PEM). Returns the public key's path.
pub fn write_key_pair(key: &SigningKey, path: &Path) -> Result<PathBuf, SigningError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SigningError::Io { path, source }
    };
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| SigningError::Key {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| SigningError::Key {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let pub_path = public_key_path(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(pem.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    std::fs::write(&pub_path, public_pem).map_err(io(&pub_path))?;
    Ok(pub_path)
}

/// `PATH.pub`, where [`write_key_pair`] puts the public key.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".pub");
    PathBuf::from(s)
}

/// Reads a private key: PKCS#8 PEM (`cxone-uuid audit keygen`) or 64 hex digits (the seed).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, SigningError> {
    let text = read_text(path)?;
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(text).map_err(|_| SigningError::Key {
            path: path.to_path_buf(),
            message: "not an Ed25519 private key in PKCS#8 PEM (is this the .pub file?)".into(),
        });
    }
    let bytes = parse_hex32(text).ok_or_else(|| SigningError::Key {
        path: path.to_path_buf(),
        message: "expected a PKCS#8 PEM private key or 64 hex digits".into(),
    })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Reads a public key: SPKI PEM (`PATH.pub` from keygen) or 64 hex digits.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, SigningError> {
    let text = read_text(path)?;
    let text = text.trim();
    let bad = |message: &str| SigningError::Key {
        path: path.to_path_buf(),
        message: message.into(),
    };
    if text.contains("PRIVATE KEY") {
        return Err(bad(
            "this is a private key: pass the public key (PATH.pub) to verify",
        ));
    }
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text)
            .map_err(|_| bad("not an Ed25519 public key in SPKI PEM"));
    }
    let bytes =
        parse_hex32(text).ok_or_else(|| bad("expected an SPKI PEM public key or 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 public key"))
}

fn read_text(path: &Path) -> Result<String, SigningError> {
    std::fs::read_to_string(path).map_err(|source| SigningError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The bytes a checkpoint signs (see the module docs).
pub fn signed_message(head_seq: u64, head_hash: &str, time: &str, prev_signature: &str) -> Vec<u8> {
    format!(
        "cxone-uuid checkpoint v1\nhead_seq={head_seq}\nhead_hash={head_hash}\ntime={time}\nprev_signature={prev_signature}\n"
    )
    .into_bytes()
}

/// How a sink signs checkpoints: shared by every sink so the key is handled (and hidden from
/// `Debug`) in one place.
#[derive(Clone)]
pub struct Signing {
    /// The Ed25519 key that signs checkpoints.
    pub key: Arc<SigningKey>,
    /// Also checkpoint every N events (always at close).
    pub every: Option<u64>,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Signing")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_files_round_trip_and_private_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = generate_signing_key().unwrap();
        let pubp = write_key_pair(&key, &path).unwrap();
        assert_eq!(read_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(read_public_key(&pubp).unwrap(), key.verifying_key());
        assert!(read_public_key(&path).is_err());
        assert!(write_key_pair(&key, &path).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("hex"), hex::encode(key.to_bytes())).unwrap();
        assert_eq!(
            read_signing_key(&dir.path().join("hex"))
                .unwrap()
                .to_bytes(),
            key.to_bytes()
        );
    }
}

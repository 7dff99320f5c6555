//! `cargo xtask release`: the tarball users download.
//!
//! Completions and the man page come from the built binary itself (hidden `completions SHELL`
//! and `manpage` commands), so they always match the clap definitions that shipped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Shells we ship completions for, and the file name each shell looks for.
const COMPLETIONS: &[(&str, &str)] = &[
    ("bash", "cxone-uuid.bash"),
    ("zsh", "_cxone-uuid"),
    ("fish", "cxone-uuid.fish"),
    ("elvish", "cxone-uuid.elv"),
    ("powershell", "_cxone-uuid.ps1"),
];

/// Builds (unless `prebuilt` names a binary to package instead) and packages.
pub(crate) fn release(dry_run: bool, prebuilt: Option<PathBuf>) -> Result<()> {
    let target = crate::target_dir();
    let bin = match prebuilt {
        Some(bin) => bin,
        None => {
            crate::run_cmd(crate::cargo().args([
                "build",
                "--release",
                "-p",
                "cxone-uuid-cli",
                "--all-features",
            ]))?;
            target.join("release").join("cxone-uuid")
        }
    };
    let version = version(&bin)?;
    let triple = host_triple()?;
    let name = format!("cxone-uuid-{version}-{triple}");

    // Staging lives under target/, so even a dry run builds the real tarball for inspection.
    let staging_root = target.join("dist");
    let stage = staging_root.join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("clear {}", stage.display()))?;
    }
    std::fs::create_dir_all(stage.join("complete"))?;
    std::fs::create_dir_all(stage.join("man"))?;
    copy(&bin, &stage.join("cxone-uuid"))?;
    let root = crate::root();
    copy(&root.join("README.md"), &stage.join("README.md"))?;
    let mut licences = 0;
    for entry in std::fs::read_dir(&root)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with("LICENSE") || file_name.starts_with("LICENCE") {
            copy(&entry.path(), &stage.join(&file_name))?;
            licences += 1;
        }
    }
    if licences == 0 {
        bail!(
            "no LICENSE file at {}: a release must carry its licence",
            root.display()
        );
    }
    for (shell, file) in COMPLETIONS {
        let text =
            crate::capture(Command::new(&bin).args(["completions", shell])).with_context(|| {
                format!(
                    "`cxone-uuid completions {shell}` failed: the binary needs its hidden \
                     `completions SHELL` command for releases"
                )
            })?;
        write(&stage.join("complete").join(file), &text)?;
    }
    let man = crate::capture(Command::new(&bin).arg("manpage")).context(
        "`cxone-uuid manpage` failed: the binary needs its hidden `manpage` command for releases",
    )?;
    write(&stage.join("man").join("cxone-uuid.1"), &man)?;

    let tarball_name = format!("{name}.tar.gz");
    let tarball = staging_root.join(&tarball_name);
    crate::run_cmd(
        Command::new("tar")
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
            .arg("-czf")
            .arg(&tarball)
            .arg("-C")
            .arg(&staging_root)
            .arg(&name),
    )?;
    let sum = sha256_file(&tarball)?;

    if dry_run {
        eprintln!(
            "xtask: dry run: built {}; would copy it to dist/{tarball_name} and add to dist/SHA256SUMS:",
            tarball.display()
        );
        println!("{sum}  {tarball_name}");
        return Ok(());
    }
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist)?;
    copy(&tarball, &dist.join(&tarball_name))?;
    let sums = sums_of(&dist)?;
    write(&dist.join("SHA256SUMS"), sums.as_bytes())?;
    eprintln!("xtask: wrote dist/{tarball_name} and dist/SHA256SUMS");
    print!("{sums}");
    Ok(())
}

/// `sha256sum`-compatible lines for every tarball in `dist`, sorted by name.
fn sums_of(dist: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dist)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    files.sort();
    let mut out = String::new();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push_str(&format!("{}  {name}\n", sha256_file(&f)?));
    }
    Ok(out)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn version(bin: &Path) -> Result<String> {
    let out = crate::capture(Command::new(bin).arg("--version"))?;
    let text = String::from_utf8_lossy(&out);
    // clap prints "cxone-uuid 0.1.0".
    match text.split_whitespace().nth(1) {
        Some(v) => Ok(v.to_string()),
        None => bail!("unexpected `cxone-uuid --version` output: {text:?}"),
    }
}

fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = crate::capture(Command::new(rustc).arg("-vV"))?;
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("`rustc -vV` printed no host line")
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_a_known_vector() {
        let dir = std::env::temp_dir().join(format!("xtask-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Passwords come from a file or an interactive prompt, never from the command line
//! (where other users could read them in the process list).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};

/// The first line of `file`, or a prompt on the terminal. `confirm` asks twice.
pub fn read_password(file: Option<&Path>, prompt: &str, confirm: bool) -> anyhow::Result<String> {
    if let Some(path) = file {
        return from_file(path);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password on; pass --password-file FILE");
    }
    let password = rpassword::prompt_password(format!("{prompt}: ")).context("cannot read the password")?;
    if confirm {
        let again = rpassword::prompt_password(format!("{prompt} (again): ")).context("cannot read the password")?;
        if again != password {
            bail!("the two passwords differ");
        }
    }
    Ok(password)
}

fn from_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read password file {}", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        bail!("password file {} is empty", path.display());
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_without_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret password\nignored\n").expect("write");
        assert_eq!(read_password(Some(&path), "Password", true).expect("read"), "s3cret password");
        std::fs::write(&path, "\n").expect("write");
        assert!(read_password(Some(&path), "Password", false).is_err());
        assert!(read_password(Some(&dir.path().join("missing")), "Password", false).is_err());
    }
}

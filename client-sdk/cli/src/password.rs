//! Passwords come from a file or an interactive prompt, never from the command line
//! (where other users could read them in the process list).

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;

use anyhow::{Context, bail};

/// Longer lines than this are not passwords (and a file like `/dev/zero` must not hang us).
const MAX_LINE_BYTES: u64 = 64 * 1024;

/// Where one password comes from.
#[derive(Debug, Clone, Copy)]
pub struct PasswordSource<'a> {
    /// A file whose first line is the password; `-` means standard input.
    pub file: Option<&'a Path>,
    /// The option that names such a file, for the error message (`--password-file`).
    pub flag: &'static str,
    /// What to ask for at the prompt ("Password", "New password").
    pub prompt: &'static str,
    /// Ask twice at the prompt and require both answers to match.
    pub confirm: bool,
}

/// Reads a password: the first line of the file (without its line ending), or from a
/// prompt on the terminal (written to stderr). Fails without a terminal and a file.
pub fn read_password(source: PasswordSource<'_>) -> anyhow::Result<String> {
    match source.file {
        Some(path) if path == Path::new("-") => {
            first_line(std::io::stdin().lock()).context("cannot read the password from stdin")
        }
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("cannot read password file {}", path.display()))?;
            first_line(file).with_context(|| format!("password file {}", path.display()))
        }
        None => prompt(source),
    }
}

fn prompt(source: PasswordSource<'_>) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "cannot ask for the password: stdin is not a terminal; pass {} FILE (or - for stdin)",
            source.flag
        );
    }
    let ask = |prompt: String| {
        let config = rpassword::ConfigBuilder::new().output_writer(std::io::stderr()).build();
        rpassword::prompt_password_with_config(prompt, config).context("cannot read the password")
    };
    let password = ask(format!("{}: ", source.prompt))?;
    if password.is_empty() {
        bail!("no password entered");
    }
    if source.confirm && ask(format!("{} (again): ", source.prompt))? != password {
        bail!("the two passwords differ");
    }
    Ok(password)
}

/// The first line of `input`, without `\n` or `\r\n`; an empty first line is an error.
fn first_line(input: impl Read) -> anyhow::Result<String> {
    let mut line = String::new();
    BufReader::new(input.take(MAX_LINE_BYTES))
        .read_line(&mut line)
        .context("not readable as UTF-8 text")?;
    let had_newline = line.ends_with('\n');
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!("is empty (the password is its first line)");
    }
    if !had_newline && line.len() as u64 == MAX_LINE_BYTES {
        bail!("its first line is longer than {MAX_LINE_BYTES} bytes");
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(path: &Path) -> anyhow::Result<String> {
        read_password(PasswordSource {
            file: Some(path),
            flag: "--password-file",
            prompt: "Password",
            confirm: true,
        })
    }

    #[test]
    fn first_line_without_its_line_ending() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret password\nignored\n")?;
        assert_eq!(from_file(&path)?, "s3cret password");
        std::fs::write(&path, "windows line\r\nignored")?;
        assert_eq!(from_file(&path)?, "windows line");
        std::fs::write(&path, "no newline at all")?;
        assert_eq!(from_file(&path)?, "no newline at all");
        std::fs::write(&path, "  spaces are kept  \n")?;
        assert_eq!(from_file(&path)?, "  spaces are kept  ");
        Ok(())
    }

    #[test]
    fn unusable_files_are_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("pw");
        for bad in ["", "\n", "\r\nsecond line"] {
            std::fs::write(&path, bad)?;
            let err = from_file(&path).err().map(|e| format!("{e:#}")).unwrap_or_default();
            assert!(err.contains("is empty"), "{bad:?}: {err}");
        }
        std::fs::write(&path, [0xff, 0xfe, b'\n'])?;
        assert!(from_file(&path).is_err());
        std::fs::write(&path, "x".repeat(MAX_LINE_BYTES as usize + 10))?;
        assert!(from_file(&path).is_err());
        let missing = from_file(&dir.path().join("missing"));
        let err = missing.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err.contains("cannot read password file"), "{err}");
        Ok(())
    }
}

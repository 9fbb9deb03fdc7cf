//! What the CLI prints on stdout: a human sentence or table, or JSON with `--json`.

use std::borrow::Cow;

use parley_specs::client_api::DeviceInfo;
use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

/// Display names longer than this are cut in the device table.
const MAX_NAME_COLUMN: usize = 40;

/// Prints results in the chosen format.
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints `value` as JSON, or the text `text` makes.
    pub(crate) fn print<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", text());
        }
        Ok(())
    }

    /// For commands whose API response is empty: `{"ok": true}`, or the text.
    pub(crate) fn ok(&self, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        self.print(&serde_json::json!({"ok": true}), text)
    }
}

/// `text` safe to print on a terminal: control characters (escape sequences a server or
/// another device could put in a name or message) become U+FFFD.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// The device list as an aligned table; `*` marks the current device.
pub(crate) fn device_table(devices: &[DeviceInfo]) -> String {
    if devices.is_empty() {
        return "No devices.".to_owned();
    }
    let rows: Vec<[String; 5]> = devices
        .iter()
        .map(|d| {
            [
                if d.current { "*" } else { " " }.to_owned(),
                d.device_id.to_string(),
                cut(&printable(&d.display_name), MAX_NAME_COLUMN),
                when(d.created_at),
                when(d.last_seen_at),
            ]
        })
        .collect();
    let header = [" ", "DEVICE", "NAME", "CREATED (UTC)", "LAST SEEN (UTC)"].map(str::to_owned);
    let mut widths = [0; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str(if i == 1 { " " } else { "  " });
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("* = this device");
    out
}

pub(crate) fn when(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.to_string())
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use parley_specs::DeviceId;
    use time::macros::datetime;

    use super::*;

    fn device(id: &str, name: &str, current: bool) -> anyhow::Result<DeviceInfo> {
        Ok(DeviceInfo {
            device_id: DeviceId::parse(id)?,
            display_name: name.to_owned(),
            created_at: datetime!(2026-01-02 03:04:05 UTC),
            last_seen_at: datetime!(2026-01-02 05:06:07 +02:00),
            current,
        })
    }

    #[test]
    fn table_marks_the_current_device_and_aligns() -> anyhow::Result<()> {
        let table = device_table(&[
            device("ABCD1234", "parley CLI on laptop", true)?,
            device("XY", "phone \x1b[2J", false)?,
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("  DEVICE"), "{table}");
        assert!(
            lines[1].starts_with("* ABCD1234  parley CLI on laptop  2026-01-02 03:04"),
            "{table}"
        );
        assert!(lines[1].ends_with("2026-01-02 03:06"), "UTC: {table}");
        assert!(lines[2].starts_with("  XY        phone \u{fffd}[2J"), "{table}");
        assert!(!table.contains('\x1b'));
        assert_eq!(lines[3], "* = this device");
        Ok(())
    }

    #[test]
    fn long_names_are_cut() -> anyhow::Result<()> {
        let table = device_table(&[device("A", &"n".repeat(100), true)?]);
        assert!(
            table.contains(&format!("{}…", "n".repeat(MAX_NAME_COLUMN - 1))),
            "{table}"
        );
        assert_eq!(device_table(&[]), "No devices.");
        Ok(())
    }

    #[test]
    fn printable_replaces_control_characters() {
        assert_eq!(printable("plain é"), "plain é");
        assert_eq!(printable("a\nb\x07"), "a\u{fffd}b\u{fffd}");
    }
}

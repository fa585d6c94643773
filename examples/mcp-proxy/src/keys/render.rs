//! How the `keys` commands print: the table of `keys list`, JSON lines,
//! instants, and text made safe for a terminal.

use crate::shown::is_unsafe_to_show;
use chrono::{DateTime, Utc};
use tower_api_keys::management;
use tower_api_keys::record::KeyStatus;

use super::{Key, Result};

/// The table `keys list` prints: a column for the owner where the keys'
/// owners are known (on the store), and the reason of a revocation where
/// it was recorded.
pub(crate) fn table(keys: &[Key]) -> String {
    let owners = keys.iter().any(|key| key.owner.is_some());
    let mut header = vec!["ID"];
    if owners {
        header.push("OWNER");
    }
    header.extend([
        "NAME",
        "PREFIX",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "STATUS",
    ]);
    let rows = keys.iter().map(|key| {
        let body = &key.body;
        let mut row = vec![body.id.to_string()];
        if owners {
            row.push(
                key.owner
                    .as_ref()
                    .map_or_else(String::new, |owner| shown(owner.as_str())),
            );
        }
        row.extend([
            shown(&body.name),
            shown(&body.display_prefix),
            scopes(body),
            when(body.created_at),
            body.last_used_at.map_or_else(|| "never".to_owned(), when),
            body.expires_at.map_or_else(|| "never".to_owned(), when),
            status(key),
        ]);
        row
    });
    columns(&header, rows)
}

/// Rows under a header, in columns as wide as their widest cell.
fn columns(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows)
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths.iter().copied()).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `active`, `expired`, `revoked`, or `revoked: <reason>`.
fn status(key: &Key) -> String {
    match (key.body.status, &key.revoked_reason) {
        (KeyStatus::Revoked, Some(reason)) => format!("revoked: {reason}"),
        (status, _) => status.to_string(),
    }
}

/// A key's scopes, space-separated, or `*` for full access.
pub(crate) fn scopes(key: &management::Key) -> String {
    match &key.scopes {
        None => "*".to_owned(),
        Some(scopes) => shown(&scopes.join(" ")),
    }
}

/// An instant as the commands print it: `2030-01-31 00:00:00Z`.
pub(crate) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `value` as one line of JSON on stdout (see [`json_line`]).
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", json_line(value)?);
    Ok(())
}

/// `value` as one line of JSON, with the characters [`shown`] escapes
/// written as `\u` escapes (JSON itself escapes only the C0 controls), so
/// no text from a row or a server reaches the terminal raw.
pub(crate) fn json_line(value: &impl serde::Serialize) -> Result<String> {
    let text = serde_json::to_string(value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe_to_show(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// `text` as it is safe to print on a terminal: control and bidirectional
/// formatting characters (which older rows, written before the library
/// refused them, or a hostile server's answers may hold) are shown
/// escaped, as `\u{1b}`.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe_to_show(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_escapes_what_json_lets_through() {
        let line = json_line(&serde_json::json!({"name": "a\u{9b}2J\u{202e}b\u{E0041}"})).unwrap();
        assert!(
            !line.contains(['\u{9b}', '\u{202e}', '\u{E0041}']),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back["name"], "a\u{9b}2J\u{202e}b\u{E0041}",
            "the same value, escaped"
        );
    }
}

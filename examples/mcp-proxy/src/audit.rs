//! `--audit-log PATH`: every key event as one JSON line, appended to a
//! file that is only ever appended to. Events name keys by id, owner and
//! display prefix; they carry no secret and no hash.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tower_api_keys::ApiKeysBuilder;
use tower_api_keys::event::KeyEvent;

/// An open audit log; cloning shares the file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    file: Arc<Mutex<File>>,
}

impl AuditLog {
    /// Opens `path` for appending, creating it if missing.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends one event: a line written with one call, so lines of
    /// processes sharing the file do not interleave.
    pub fn append(&self, event: &KeyEvent) {
        let mut line = match serde_json::to_string(event) {
            Ok(line) => line,
            Err(error) => {
                tracing::error!(%error, "a key event could not be serialized");
                return;
            }
        };
        line.push('\n');
        let written = match self.file.lock() {
            Ok(mut file) => file.write_all(line.as_bytes()),
            Err(poisoned) => poisoned.into_inner().write_all(line.as_bytes()),
        };
        if let Err(error) = written {
            tracing::error!(%error, "the audit log could not be written");
        }
    }

    /// `builder` with its events appended here.
    pub fn attach(&self, builder: ApiKeysBuilder) -> ApiKeysBuilder {
        let log = self.clone();
        builder.on_key_event(move |event| log.append(event))
    }
}

//! `--audit-log PATH`: every key event as one JSON line, appended to a
//! file that is only ever appended to. Events name keys by id, owner and
//! display prefix; they carry no secret and no hash.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tower_api_keys::ApiKeysBuilder;
use tower_api_keys::event::KeyEvent;

/// Warns when the audit log's mode lets other users read or write it.
#[cfg(unix)]
fn warn_if_shared(path: &Path, file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the audit log can be read or written by other users; make it 0600 (chmod 600)"
        );
    }
    Ok(())
}

/// An open audit log; cloning shares the file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    file: Arc<Mutex<File>>,
}

impl AuditLog {
    /// Opens `path` for appending, creating it if missing readable and
    /// writable by its owner alone (0600), as the key store's file is: it
    /// names every key's owner. Warns when an existing one is open to
    /// other users.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        #[cfg(unix)]
        warn_if_shared(path, &file)?;
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

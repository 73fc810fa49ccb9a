//! The actor's ledger: the durable record of the commands it executed.
//!
//! One line per command id, appended and synced to disk once the command's
//! execution record is published and before the control topic's offset is
//! committed. After a restart the actor reads it back, so that replaying the
//! control topic rebuilds its state without carrying anything out twice.

use bellwether_schemas::CommandId;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The ledger could not be read or written.
#[derive(Debug, Error)]
#[error("actor ledger {path}: {source}")]
pub struct LedgerError {
    /// The ledger file.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: std::io::Error,
}

/// An append-only file of executed command ids.
pub struct Ledger {
    path: PathBuf,
    file: File,
    ids: HashSet<CommandId>,
}

impl Ledger {
    /// Opens (or creates) `dir/executed-commands.log`.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        let path = dir.join("executed-commands.log");
        let err = |source| LedgerError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut ids = HashSet::new();
        if path.exists() {
            for line in BufReader::new(File::open(&path).map_err(err)?).lines() {
                let line = line.map_err(err)?;
                // A torn last line (crash mid-write) was never synced, so its
                // command was never committed: it is executed again, once.
                if !line.is_empty() {
                    ids.insert(CommandId(line));
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        Ok(Ledger { path, file, ids })
    }

    /// Every command id recorded.
    pub fn ids(&self) -> &HashSet<CommandId> {
        &self.ids
    }

    /// Records `ids` and syncs the file.
    pub fn record(&mut self, ids: &[CommandId]) -> Result<(), LedgerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for id in ids {
            if self.ids.insert(id.clone()) {
                text.push_str(&id.0);
                text.push('\n');
            }
        }
        let err = |source| LedgerError {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(text.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_ids_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        assert!(ledger.ids().is_empty());
        let a = CommandId::rollback("r", "vm-1");
        ledger.record(&[a.clone(), a.clone()]).unwrap();
        drop(ledger);
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.ids().len(), 1);
        assert!(ledger.ids().contains(&a));
    }
}

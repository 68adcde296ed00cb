//! The list of recently used graph files, kept in a small text file (one path per line) in the
//! user's configuration directory.

use std::path::{Path, PathBuf};

/// How many files the list keeps.
pub const MAX_RECENT: usize = 10;

/// Recently opened or saved graphs, newest first.
#[derive(Clone, Debug, Default)]
pub struct RecentFiles {
    /// Where the list is stored; `None` keeps it in memory only.
    store: Option<PathBuf>,
    files: Vec<PathBuf>,
}

/// The default place of the list: `$XDG_CONFIG_HOME/stylegraph/recent-graphs.txt`, else
/// `~/.config/...` (or `%APPDATA%\stylegraph\...` on Windows).
pub fn default_store() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("APPDATA").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("stylegraph").join("recent-graphs.txt"))
}

impl RecentFiles {
    /// Reads the list from `store` (an unreadable or missing file gives an empty list).
    pub fn load(store: Option<PathBuf>) -> RecentFiles {
        let files = store
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(PathBuf::from)
                    .take(MAX_RECENT)
                    .collect()
            })
            .unwrap_or_default();
        RecentFiles { store, files }
    }

    /// The files, newest first.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Puts `path` first and writes the list.
    pub fn add(&mut self, path: &Path) {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.files.retain(|p| *p != path);
        self.files.insert(0, path);
        self.files.truncate(MAX_RECENT);
        self.write();
    }

    /// Removes `path` (it could not be opened) and writes the list.
    pub fn remove(&mut self, path: &Path) {
        self.files.retain(|p| p != path);
        self.write();
    }

    fn write(&self) {
        let Some(store) = &self.store else { return };
        if let Some(dir) = store.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!("cannot create {}: {e}", dir.display());
                return;
            }
        }
        let mut text = String::new();
        for f in &self.files {
            text.push_str(&f.to_string_lossy());
            text.push('\n');
        }
        if let Err(e) = stylegraph_core::fsutil::write_atomic(store, text.as_bytes()) {
            tracing::warn!("cannot write {}: {e}", store.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_without_duplicates_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("sub").join("recent.txt");
        let mut r = RecentFiles::load(Some(store.clone()));
        assert!(r.files().is_empty());
        let a = dir.path().join("a.ron");
        let b = dir.path().join("b.ron");
        r.add(&a);
        r.add(&b);
        r.add(&a);
        assert_eq!(r.files(), &[a.clone(), b.clone()]);
        let again = RecentFiles::load(Some(store));
        assert_eq!(again.files(), &[a, b]);
    }

    #[test]
    fn keeps_at_most_the_limit() {
        let mut r = RecentFiles::load(None);
        for i in 0..(MAX_RECENT + 5) {
            r.add(Path::new(&format!("/nonexistent/{i}.ron")));
        }
        assert_eq!(r.files().len(), MAX_RECENT);
        assert_eq!(
            r.files()[0],
            Path::new(&format!("/nonexistent/{}.ron", MAX_RECENT + 4))
        );
    }
}

//! Choosing files: the platform's dialogs with the `native-dialogs` feature, otherwise a small
//! file browser drawn with egui (it needs no desktop portal, so it also works in tests).

use egui::{Id, RichText, Ui};
use std::path::{Path, PathBuf};

/// What a chosen file is for.
#[derive(Clone, Debug, PartialEq)]
pub enum FilePurpose {
    /// Open a graph.
    OpenGraph,
    /// Save the graph under a new name; then carry on with the pending action, if any.
    SaveGraphAs,
    /// Fill a path param.
    Param {
        node: String,
        param: String,
        save: bool,
    },
}

impl FilePurpose {
    fn is_save(&self) -> bool {
        match self {
            FilePurpose::OpenGraph => false,
            FilePurpose::SaveGraphAs => true,
            FilePurpose::Param { save, .. } => *save,
        }
    }
    fn title(&self) -> String {
        match self {
            FilePurpose::OpenGraph => "Open graph".into(),
            FilePurpose::SaveGraphAs => "Save graph as".into(),
            FilePurpose::Param { node, param, .. } => format!("Choose {node}.{param}"),
        }
    }
    fn extension(&self) -> Option<&'static str> {
        match self {
            FilePurpose::OpenGraph | FilePurpose::SaveGraphAs => Some("ron"),
            FilePurpose::Param { .. } => None,
        }
    }
}

/// Asks the platform's dialog. `None` when cancelled.
#[cfg(feature = "native-dialogs")]
pub fn native_pick(purpose: &FilePurpose, start: &Path) -> Option<PathBuf> {
    let mut d = rfd::FileDialog::new()
        .set_directory(start)
        .set_title(purpose.title());
    if let Some(ext) = purpose.extension() {
        d = d.add_filter("Stylegraph graph", &[ext]);
    }
    if purpose.is_save() {
        d.save_file()
    } else {
        d.pick_file()
    }
}

/// The in-app browser: a directory listing and a file name field.
pub struct FileBrowser {
    pub purpose: FilePurpose,
    dir: PathBuf,
    name: String,
    error: Option<String>,
}

/// What the browser did this frame.
pub enum BrowserResult {
    Open,
    Chosen(PathBuf),
    Cancelled,
}

impl FileBrowser {
    /// A browser starting in `start` (a directory, or a file whose directory is used).
    pub fn new(purpose: FilePurpose, start: &Path) -> FileBrowser {
        let (dir, name) = if start.is_dir() {
            (start.to_path_buf(), String::new())
        } else {
            (
                start
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
                start
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        };
        FileBrowser {
            purpose,
            dir,
            name,
            error: None,
        }
    }

    /// The path the browser would return now.
    pub fn target(&self) -> PathBuf {
        let mut p = self.dir.join(&self.name);
        if let Some(ext) = self.purpose.extension() {
            if self.purpose.is_save() && p.extension().is_none() {
                p.set_extension(ext);
            }
        }
        p
    }

    /// Sets the file name field (for tests and keyboard users).
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_owned();
    }

    /// Shows the browser as a modal window.
    pub fn show(&mut self, ctx: &egui::Context) -> BrowserResult {
        let mut result = BrowserResult::Open;
        let modal = egui::Modal::new(Id::new("stylegraph-file-browser")).show(ctx, |ui| {
            ui.set_width(520.0);
            ui.heading(self.purpose.title());
            ui.horizontal(|ui| {
                if ui.button("Up").on_hover_text("parent folder").clicked() {
                    if let Some(p) = self.dir.parent() {
                        self.dir = p.to_path_buf();
                    }
                }
                ui.label(RichText::new(self.dir.display().to_string()).monospace());
            });
            ui.separator();
            egui::ScrollArea::vertical()
                .max_height(300.0)
                .show(ui, |ui| self.listing(ui, &mut result));
            ui.separator();
            ui.horizontal(|ui| {
                ui.label("File name");
                let r = ui.add(egui::TextEdit::singleline(&mut self.name).desired_width(300.0));
                if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                    self.accept(&mut result);
                }
            });
            if let Some(e) = &self.error {
                ui.colored_label(egui::Color32::LIGHT_RED, e);
            }
            ui.horizontal(|ui| {
                let ok = if self.purpose.is_save() {
                    "Save"
                } else {
                    "Open"
                };
                if ui.button(ok).clicked() {
                    self.accept(&mut result);
                }
                if ui.button("Cancel").clicked() {
                    result = BrowserResult::Cancelled;
                }
            });
        });
        if modal.should_close() && matches!(result, BrowserResult::Open) {
            result = BrowserResult::Cancelled;
        }
        result
    }

    fn listing(&mut self, ui: &mut Ui, result: &mut BrowserResult) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                ui.colored_label(egui::Color32::LIGHT_RED, format!("cannot list: {e}"));
                return;
            }
        };
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                dirs.push(name);
            } else if self
                .purpose
                .extension()
                .is_none_or(|ext| p.extension().is_some_and(|x| x == ext))
            {
                files.push(name);
            }
        }
        dirs.sort();
        files.sort();
        for d in dirs {
            if ui.selectable_label(false, format!("{d}/")).clicked() {
                self.dir = self.dir.join(&d);
            }
        }
        for f in files {
            let r = ui.selectable_label(self.name == f, &f);
            if r.clicked() {
                self.name = f.clone();
            }
            if r.double_clicked() {
                self.name = f;
                self.accept(result);
            }
        }
    }

    fn accept(&mut self, result: &mut BrowserResult) {
        if self.name.trim().is_empty() {
            self.error = Some("type or pick a file name".into());
            return;
        }
        let target = self.target();
        if !self.purpose.is_save() && !target.is_file() {
            self.error = Some(format!("{} is not a file", target.display()));
            return;
        }
        *result = BrowserResult::Chosen(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_target_gets_the_graph_extension() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = FileBrowser::new(FilePurpose::SaveGraphAs, dir.path());
        b.set_name("mine");
        assert_eq!(b.target(), dir.path().join("mine.ron"));
        b.set_name("other.ron");
        assert_eq!(b.target(), dir.path().join("other.ron"));
        // Starting from a file keeps its folder and name.
        let b = FileBrowser::new(FilePurpose::OpenGraph, &dir.path().join("x.ron"));
        assert_eq!(b.target(), dir.path().join("x.ron"));
    }
}

//! Placeholder for the egui node editor (see the editor issue). It exists so the workspace
//! already has the layout of the design card; the real editor uses `stylegraph-core` as a library.
fn main() {
    eprintln!("stylegraph-editor: the node editor is not built yet; use the `stylegraph` CLI.");
    std::process::exit(2);
}

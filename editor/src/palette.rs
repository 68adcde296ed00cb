//! The node palette: node types of the loaded plugins grouped by category, filtered by a search
//! over their id, name and documentation.

use std::collections::BTreeMap;
use stylegraph_core::plugin::{NodeTypeInfo, PluginHost};

/// Category used for node types that declare none.
pub const UNCATEGORISED: &str = "Other";

/// True if `info` matches every word of `query` (case-insensitive) in its type id, display name,
/// category or doc. An empty query matches everything.
pub fn matches(info: &NodeTypeInfo, query: &str) -> bool {
    let hay = format!(
        "{}\n{}\n{}\n{}",
        info.type_id, info.display_name, info.category, info.doc
    )
    .to_lowercase();
    query
        .split_whitespace()
        .all(|w| hay.contains(&w.to_lowercase()))
}

/// Node types matching `query`, by category (sorted), each list sorted by display name.
pub fn grouped<'a>(host: &'a PluginHost, query: &str) -> BTreeMap<String, Vec<&'a NodeTypeInfo>> {
    let mut out: BTreeMap<String, Vec<&NodeTypeInfo>> = BTreeMap::new();
    for info in host.node_types().values() {
        if !matches(info, query) {
            continue;
        }
        let cat = if info.category.trim().is_empty() {
            UNCATEGORISED.to_owned()
        } else {
            info.category.clone()
        };
        out.entry(cat).or_default().push(info);
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| {
            a.display_name
                .to_lowercase()
                .cmp(&b.display_name.to_lowercase())
                .then_with(|| a.type_id.cmp(&b.type_id))
        });
    }
    out
}

/// The first line of a doc string, for compact lists.
pub fn first_line(doc: &str) -> &str {
    doc.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

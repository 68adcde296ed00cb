//! Regenerates the C header of the plugin ABI from its Rust definition:
//! `cargo run -p stylegraph-gen-header` (writes `engine/abi/include/stylegraph_plugin.h`).
//!
//! Not part of the default build: the header is committed, and the test
//! `c_sees_the_same_struct_layout_as_rust` in `tests/tests/plugins.rs` compiles it with a C
//! compiler and checks every struct's size and field offsets against the Rust definitions, so a
//! stale header fails CI.

use std::path::Path;

const HEADER_PREAMBLE: &str = "\
/*
 * stylegraph_plugin.h: the C ABI of Stylegraph node plugins.
 *
 * GENERATED from engine/abi/src/ffi.rs by `cargo run -p stylegraph-gen-header`; do not edit.
 * The contract (ownership, threading, versioning) is documented in docs/plugin-abi.md and in the
 * comments below. A plugin exports one symbol:
 *
 *     const SgPlugin *stylegraph_plugin_entry(void);
 *
 * Objects (SgObject) you hand to the host must be usable from any thread.
 */";

const TRAILER: &str = "
/* Name of the entry symbol every plugin exports. */
#define SG_ENTRY_SYMBOL \"stylegraph_plugin_entry\"
/* Reserved extension ids for SgHost.get_extension (not offered yet: it returns NULL). */
#define SG_EXT_WGPU \"stylegraph.wgpu.v1\"
#define SG_EXT_CUDA \"stylegraph.cuda.v1\"

/* The entry point a plugin defines. */
#ifdef __cplusplus
extern \"C\"
#endif
const SgPlugin *stylegraph_plugin_entry(void);

";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let abi = root.join("engine/abi");
    let mut config = cbindgen::Config {
        language: cbindgen::Language::C,
        include_guard: Some("STYLEGRAPH_PLUGIN_H".into()),
        header: Some(HEADER_PREAMBLE.into()),
        cpp_compat: true,
        documentation: true,
        documentation_style: cbindgen::DocumentationStyle::C99,
        sys_includes: vec!["stdbool.h".into(), "stddef.h".into(), "stdint.h".into()],
        no_includes: true,
        usize_is_size_t: true,
        ..Default::default()
    };
    config.parse.parse_deps = false;
    config.export.include = vec![
        "SgPlugin".into(),
        "SgPluginEntryFn".into(),
        "SgHost".into(),
        "SgExecArgs".into(),
        "SgNodeDesc".into(),
    ];
    let out = abi.join("include/stylegraph_plugin.h");
    match cbindgen::Builder::new()
        .with_config(config)
        .with_src(abi.join("src/ffi.rs"))
        .generate()
    {
        Ok(bindings) => {
            let mut bytes = Vec::new();
            bindings.write(&mut bytes);
            let text = String::from_utf8_lossy(&bytes);
            // Rust's associated constants (`SgValue::NONE`...) come out as C compound-literal
            // macros that reference each other and are not valid C++; C authors don't need them.
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !(l.starts_with("#define Sg") && l.contains("_") && l.contains("(Sg")))
                .collect();
            let mut header = kept.join("\n");
            header.push('\n');
            // Our additions go inside the include guard.
            let guard_end = "#endif  /* STYLEGRAPH_PLUGIN_H */";
            match header.rfind(guard_end) {
                Some(pos) => header.insert_str(pos, TRAILER),
                None => {
                    eprintln!("cbindgen output has no include guard end");
                    std::process::exit(1);
                }
            }
            if let Err(e) = std::fs::write(&out, header) {
                eprintln!("cannot write {}: {e}", out.display());
                std::process::exit(1);
            }
            println!("wrote {}", out.display());
        }
        Err(e) => {
            eprintln!("cbindgen failed: {e}");
            std::process::exit(1);
        }
    }
}

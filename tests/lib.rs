//! Helpers for the workspace-level tests: where the built plugin libraries are, and how to
//! build the C test plugins from the generated header.

use std::path::{Path, PathBuf};
use std::process::Command;
use stylegraph_core::plugin::PluginHost;

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory holding the shared libraries cargo built for this test run (`target/<profile>/deps`):
/// the test executable lives there too.
pub fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().expect("executable directory").to_path_buf()
}

/// The shared library of a workspace plugin crate (`lib<name>.so` on Linux).
pub fn plugin_library(crate_lib_name: &str) -> PathBuf {
    let file = format!(
        "{}{crate_lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let path = artifact_dir().join(&file);
    assert!(
        path.exists(),
        "{} is missing: it is built by `cargo test` as a dev-dependency of stylegraph-tests",
        path.display()
    );
    path
}

/// A host with the core plugin and the misbehaving test plugin loaded from their libraries.
pub fn host_with_test_plugins() -> PluginHost {
    let mut host = PluginHost::new();
    for lib in ["stylegraph_plugin_core", "sgtest_faulty"] {
        host.load_file(&plugin_library(lib))
            .unwrap_or_else(|e| panic!("loading {lib}: {e}"));
    }
    host
}

/// Compiles a C source file into a shared library with the system C compiler (`cc`), against
/// the generated ABI header. Returns the library path.
pub fn compile_c_library(
    source: &Path,
    out_dir: &Path,
    lib_name: &str,
    defines: &[&str],
) -> PathBuf {
    let out = out_dir.join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let include = workspace_root().join("engine/abi/include");
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args([
        "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
    ])
    .arg("-I")
    .arg(&include)
    .arg("-o")
    .arg(&out)
    .arg(source);
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let status = cmd
        .status()
        .expect("running the C compiler `cc` (install gcc; scripts/install-test-deps.sh does)");
    assert!(status.success(), "cc failed on {}", source.display());
    out
}

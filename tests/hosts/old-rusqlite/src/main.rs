//! A host on rusqlite 0.25 with SQLite bundled (see Cargo.toml).

#[path = "../../host.rs"]
mod host;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The SQLite of the host's rusqlite 0.25, bundled: libsqlite3-sys 0.22.
    let version = rusqlite::version();
    if !version.starts_with("3.35.") {
        return Err(format!("SQLite {version}, not the 3.35 bundled with rusqlite 0.25").into());
    }
    host::run("old-rusqlite")
}

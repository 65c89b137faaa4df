//! A host on rusqlite 0.43 with the system SQLite (see Cargo.toml).

#[path = "../../host.rs"]
mod host;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The system library is loaded as a shared object; a bundled SQLite
    // would be linked into the binary instead.
    #[cfg(target_os = "linux")]
    {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        if !maps.contains("libsqlite3.so") {
            return Err("SQLite is not the system library: something turned on `bundled`".into());
        }
    }
    host::run("system-sqlite")
}

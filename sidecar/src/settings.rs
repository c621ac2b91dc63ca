//! Sidecar settings: a JSON file, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(name = "meshguard-sidecar", version, about = "meshguard's native sidecar service")]
pub struct Flags {
    /// Settings file (JSON); flags given here override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The meshguard plugin configuration whose policies the sidecar applies.
    #[arg(long)]
    pub plugin_config: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub plugin_config: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub plugin_config: PathBuf,
    pub max_body_bytes: usize,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

impl Settings {
    pub fn resolve(flags: Flags) -> Result<Self, String> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let listen = match flags.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().map_err(|e| format!("default listen address: {e}"))?,
        };
        let plugin_config = flags
            .plugin_config
            .or(file.plugin_config)
            .ok_or("no plugin configuration: pass --plugin-config FILE or set `plugin_config` in the settings file")?;
        Ok(Self { listen, plugin_config, max_body_bytes: flags.max_body_bytes.or(file.max_body_bytes).unwrap_or(1024 * 1024) })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read settings file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("settings file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("mg-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sidecar.json");
        std::fs::write(&file, r#"{"listen":"127.0.0.1:9000","plugin_config":"a.json","max_body_bytes":10}"#).unwrap();
        let flags = Flags::parse_from(["sidecar", "--config", file.to_str().unwrap(), "--listen", "127.0.0.1:9001"]);
        let settings = Settings::resolve(flags).unwrap();
        assert_eq!(settings.listen.port(), 9001);
        assert_eq!(settings.plugin_config, PathBuf::from("a.json"));
        assert_eq!(settings.max_body_bytes, 10);
    }

    #[test]
    fn unknown_file_fields_are_errors() {
        let dir = std::env::temp_dir().join(format!("mg-settings-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sidecar.json");
        std::fs::write(&file, r#"{"listen_addr":"127.0.0.1:9000"}"#).unwrap();
        let err = Settings::resolve(Flags::parse_from(["sidecar", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn plugin_config_is_required() {
        let err = Settings::resolve(Flags::parse_from(["sidecar"])).unwrap_err();
        assert!(err.contains("--plugin-config"), "{err}");
    }
}

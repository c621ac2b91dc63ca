//! Configuration errors that name the field they are about.

use std::fmt;

/// A configuration problem, located by its JSON field path
/// (`policies.finance.detectors.aws_access_key`), so an operator can find it
/// in a large document without guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid meshguard configuration: {}", self.message)
        } else {
            write!(f, "invalid meshguard configuration at `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Joins a parent path and a child key the way the error messages show them.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

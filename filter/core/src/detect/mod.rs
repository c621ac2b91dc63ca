//! Placeholder until the detection engine lands: accepts no detectors.
use std::collections::BTreeMap;
use serde::Deserialize;
use crate::config_error::{join, ConfigError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorsConfig {}

#[derive(Debug, Deserialize)]
pub struct DetectorSetting(pub String);

#[derive(Debug)]
pub struct PolicyEngine;

impl PolicyEngine {
    pub fn compile(_c: &DetectorsConfig, sel: &BTreeMap<String, DetectorSetting>, path: &str) -> Result<Self, ConfigError> {
        if let Some(id) = sel.keys().next() {
            return Err(ConfigError::new(join(&join(path, "detectors"), id), "unknown detector"));
        }
        Ok(PolicyEngine)
    }
    pub fn process(&self, _t: &str, _f: &str, _s: &mut ScanSession) -> Processed { Processed::Unchanged }
}
pub enum Processed { Unchanged, Rewritten(String), Blocked { detector_id: String } }
pub struct ScanSession { findings: Vec<crate::record::FindingRecord> }
impl ScanSession {
    pub fn new(_d: &'static str) -> Self { Self { findings: Vec::new() } }
    pub fn take_findings(&mut self) -> Vec<crate::record::FindingRecord> { std::mem::take(&mut self.findings) }
}

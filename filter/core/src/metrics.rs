//! The metrics a decision record turns into. Names carry their labels in the
//! `label=.=value;.;` form that Envoy's `stats_tags` (and Istio's defaults)
//! extract into Prometheus labels; see envoy/demo.yaml `stats_config`.
//! Labels come only from configuration and fixed vocabularies — verdicts,
//! policy names, detector ids, categories — never from request content.

use crate::record::DecisionRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Histogram,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub kind: Kind,
    pub name: String,
    pub value: u64,
}

/// Every metric the filter emits (the Grafana dashboard is checked against it).
pub const NAMES: &[&str] = &[
    "meshguard_requests_total",
    "meshguard_added_latency_us",
    "meshguard_detector_hits_total",
    "meshguard_escalations_total",
    "meshguard_degraded_total",
    "meshguard_tokens_total",
    "meshguard_shadow_total",
    "meshguard_classifier_score",
];

/// The label names, in the order Envoy's tag extraction is configured for.
pub const LABELS: &[&str] = &["verdict", "policy", "category", "rule", "direction", "outcome", "kind"];

/// Label values keep to a safe alphabet, so a metric name can never smuggle
/// text (or break the tag syntax).
fn clean(value: &str) -> String {
    value
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect()
}

pub fn name(metric: &str, labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (label, value) in labels {
        out.push_str(label);
        out.push_str("=.=");
        out.push_str(&clean(value));
        out.push_str(";.;");
    }
    out.push_str(metric);
    out
}

fn counter(metric: &str, labels: &[(&str, &str)], value: u64) -> Sample {
    Sample { kind: Kind::Counter, name: name(metric, labels), value }
}

/// Everything one finished request adds to the metrics.
pub fn samples(record: &DecisionRecord) -> Vec<Sample> {
    let policy = record.policy.as_deref().unwrap_or("none");
    let mut out = vec![
        counter("meshguard_requests_total", &[("verdict", record.verdict.as_str()), ("policy", policy)], 1),
        Sample { kind: Kind::Histogram, name: "meshguard_added_latency_us".to_string(), value: record.added_latency_us },
    ];
    for finding in &record.findings {
        out.push(counter(
            "meshguard_detector_hits_total",
            &[("category", &finding.category), ("rule", &finding.rule_id), ("direction", finding.direction)],
            finding.count as u64,
        ));
    }
    for escalation in &record.escalations {
        out.push(counter("meshguard_escalations_total", &[("outcome", &escalation.outcome)], 1));
    }
    if record.degraded {
        out.push(counter("meshguard_degraded_total", &[("policy", policy)], 1));
    }
    if let Some(usage) = record.usage {
        for (kind, tokens) in [("input", usage.input_tokens), ("output", usage.output_tokens)] {
            if let Some(tokens) = tokens {
                out.push(counter("meshguard_tokens_total", &[("policy", policy), ("kind", kind)], tokens));
            }
        }
    }
    if let Some(max) = record.classifier.as_ref().and_then(|c| c.max) {
        // Per-mille: Envoy histograms take integers.
        let per_mille = (max * 1000.0).round().clamp(0.0, 1000.0) as u64;
        out.push(Sample { kind: Kind::Histogram, name: "meshguard_classifier_score".to_string(), value: per_mille });
    }
    if let Some(shadow) = &record.shadow {
        out.push(counter(
            "meshguard_shadow_total",
            &[("policy", &shadow.policy), ("verdict", shadow.verdict.as_str()), ("outcome", if shadow.differs { "differs" } else { "same" })],
            1,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FindingRecord, Verdict};

    #[test]
    fn names_carry_clean_labels() {
        assert_eq!(name("m", &[("policy", "fin.ance team")]), "policy=.=fin_ance_team;.;m");
        assert_eq!(name("m", &[]), "m");
    }

    #[test]
    fn a_record_becomes_counters_without_content() {
        let mut record = DecisionRecord::new(0, "h");
        record.policy = Some("standard".into());
        record.verdict = Verdict::Modify;
        record.findings.push(FindingRecord {
            rule_id: "email".into(),
            category: "pii".into(),
            action: "redact".into(),
            direction: "request",
            field: "messages[0].content".into(),
            count: 2,
            offsets: vec![[0, 5], [9, 14]],
            fingerprints: vec![],
        });
        let samples = samples(&record);
        assert!(samples.contains(&counter("meshguard_requests_total", &[("verdict", "modify"), ("policy", "standard")], 1)));
        assert!(samples.contains(&Sample {
            kind: Kind::Counter,
            name: "category=.=pii;.;rule=.=email;.;direction=.=request;.;meshguard_detector_hits_total".into(),
            value: 2
        }));
        assert!(samples.iter().all(|s| !s.name.contains("messages")));
        assert!(samples.iter().all(|s| NAMES.iter().any(|n| s.name.ends_with(n))));
    }
}

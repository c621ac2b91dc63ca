//! The calls one request makes to the sidecar, in order: a classification
//! (`sidecar_review`, or an injection score in the uncertain band with an
//! escalation budget), then retrieval on `rag` routes. The request waits,
//! paused, while a call is in flight; each answer decides whether the next
//! call runs. A call that fails is left to the policy's fail mode.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use meshguard_core::classify::ClassifierAction;
use meshguard_core::config::{FailMode, Policy};
use meshguard_core::encoding;
use meshguard_core::rag::{self, RagRecord, RetrieveResponse};
use meshguard_core::record::{Escalation, Verdict};
use meshguard_core::review::{self, ReviewVerdict};
use meshguard_core::ClientError;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType};

use super::RequestFilter;
use crate::host;

#[derive(Debug)]
enum Call {
    /// `/v1/classify`; `escalation`: asked because of an uncertain score.
    Classify { timeout_ms: u64, escalation: bool },
    Retrieve { query: String, k: usize },
}

/// What the sidecar calls of one request need.
#[derive(Debug, Default)]
pub(super) struct SidecarCalls {
    queue: VecDeque<Call>,
    in_flight: Option<(Call, SystemTime)>,
    /// The texts sent for classification (after this policy's rewrites).
    texts: Vec<String>,
    /// The request body as forwarded so far (decoded), for context insertion.
    body: Option<Vec<u8>>,
    /// Bytes Envoy holds for the body now: what a rewrite replaces.
    buffered_len: usize,
    /// The caller's groups, for retrieval's ACL.
    pub(super) groups: Vec<String>,
}

/// What `on_request_body` decided, for planning the calls.
pub(super) struct Planned<'a> {
    pub texts: Vec<String>,
    pub rag_query: Option<String>,
    pub body: &'a [u8],
    pub buffered_len: usize,
}

impl RequestFilter {
    /// Queues this request's sidecar calls and starts the first; `Continue`
    /// when there is nothing to wait for.
    pub(super) fn start_sidecar_calls(&mut self, policy: &Policy, planned: Planned<'_>) -> Action {
        let Some(sidecar) = self.config.sidecar.as_ref() else {
            return Action::Continue;
        };
        let escalation_budget = policy
            .injection
            .as_ref()
            .and_then(|i| i.escalation_budget_ms)
            .filter(|_| self.record.classifier.as_ref().is_some_and(|c| c.action == ClassifierAction::Escalate));
        let calls = &mut self.sidecar_calls;
        if policy.sidecar_review || escalation_budget.is_some() {
            // A full review keeps the sidecar's timeout; an escalation alone its budget.
            let timeout_ms = if policy.sidecar_review { sidecar.timeout_ms } else { escalation_budget.unwrap_or(sidecar.timeout_ms).min(sidecar.timeout_ms) };
            calls.queue.push_back(Call::Classify { timeout_ms, escalation: escalation_budget.is_some() });
            calls.texts = planned.texts;
        }
        if let (Some(query), Some(cfg)) = (planned.rag_query, policy.rag.as_ref()) {
            if query.is_empty() {
                self.record.rag = Some(RagRecord { outcome: "no_query".into(), ..RagRecord::default() });
            } else {
                calls.queue.push_back(Call::Retrieve { query, k: cfg.top_k });
                calls.body = Some(planned.body.to_vec());
                calls.buffered_len = planned.buffered_len;
            }
        }
        self.next_sidecar_call()
    }

    /// Starts the next queued call: `Pause` while one is in flight.
    fn next_sidecar_call(&mut self) -> Action {
        while let Some(call) = self.sidecar_calls.queue.pop_front() {
            match self.dispatch(&call) {
                Ok(()) => {
                    self.sidecar_calls.in_flight = Some((call, host::now()));
                    return Action::Pause;
                }
                Err(()) => {
                    if let Some(refused) = self.sidecar_failed(&call, "dispatch_failed", 0) {
                        return refused;
                    }
                }
            }
        }
        Action::Continue
    }

    fn dispatch(&self, call: &Call) -> Result<(), ()> {
        let Some(sidecar) = self.config.sidecar.as_ref() else { return Err(()) };
        let (path, body, timeout_ms) = match call {
            Call::Classify { timeout_ms, .. } => (review::CLASSIFY_PATH, review::request_body(&self.policy_name, &self.sidecar_calls.texts), *timeout_ms),
            Call::Retrieve { query, k } => (rag::RETRIEVE_PATH, rag::request_body(query, *k), sidecar.timeout_ms),
        };
        let request_id = self.record.request_id.clone().unwrap_or_default();
        let subject = self.record.subject.clone().unwrap_or_default();
        let tenant = self.record.tenant.clone().unwrap_or_default();
        let groups = self.sidecar_calls.groups.join(",");
        let mut headers = vec![
            (":method", "POST"),
            (":path", path),
            (":authority", sidecar.authority.as_str()),
            ("content-type", "application/json"),
            ("x-meshguard-policy", self.policy_name.as_str()),
        ];
        // The sidecar acts for the verified caller, never for a forged one:
        // these come from the verified identity (client copies were removed).
        for (name, value) in [("x-request-id", &request_id), ("x-meshguard-subject", &subject), ("x-meshguard-tenant", &tenant), ("x-meshguard-groups", &groups)] {
            if !value.is_empty() {
                headers.push((name, value.as_str()));
            }
        }
        hostcalls::dispatch_http_call(&sidecar.cluster, headers, Some(body.as_bytes()), vec![], Duration::from_millis(timeout_ms))
            .map(|_token| ())
            .map_err(|status| log::warn!("sidecar call to cluster `{}` failed to start: {status:?}", sidecar.cluster))
    }

    /// A call did not complete usefully: the policy's fail mode decides and
    /// the record says the verdict was degraded. `Some` when refused.
    fn sidecar_failed(&mut self, call: &Call, outcome: &str, latency_us: u64) -> Option<Action> {
        self.record.degraded = true;
        match call {
            Call::Classify { .. } => self.record.escalations.push(Escalation { service: "sidecar".into(), outcome: outcome.into(), latency_us }),
            Call::Retrieve { .. } => self.record.rag = Some(RagRecord { outcome: outcome.into(), latency_us, ..RagRecord::default() }),
        }
        // Each kind of check may override the policy's fail mode.
        let fail_mode = self.policy().map_or(FailMode::Closed, |p| {
            let own = match call {
                Call::Classify { escalation: true, .. } if !p.sidecar_review => p.injection.as_ref().and_then(|i| i.fail_mode),
                Call::Classify { .. } => None,
                Call::Retrieve { .. } => p.rag.as_ref().and_then(|r| r.fail_mode),
            };
            own.unwrap_or(p.fail_mode)
        });
        match fail_mode {
            FailMode::Closed => Some(self.refuse(
                ClientError::unavailable("sidecar_unavailable", "the meshguard sidecar could not complete its check of this request"),
                Verdict::Unavailable,
            )),
            FailMode::Open => None,
        }
    }

    /// The answer to the call in flight; then the next call, or the request
    /// goes on.
    pub(super) fn on_sidecar_response(&mut self, body_size: usize) {
        let Some((call, sent_at)) = self.sidecar_calls.in_flight.take() else {
            return;
        };
        let latency_us = host::elapsed_us(sent_at);
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status").ok().flatten();
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default();
        let refused = match &call {
            Call::Classify { escalation, .. } => match review::parse_response(status.as_deref(), &body) {
                Ok(ReviewVerdict::Allow) => {
                    self.record.escalations.push(Escalation { service: "sidecar".into(), outcome: "allow".into(), latency_us });
                    None
                }
                Ok(ReviewVerdict::Block { code }) => {
                    self.record.escalations.push(Escalation { service: "sidecar".into(), outcome: "block".into(), latency_us });
                    if *escalation {
                        log::debug!("escalated request blocked by the sidecar: {code}");
                    }
                    Some(self.refuse(ClientError::blocked(&code), Verdict::Block))
                }
                Err(failure) => self.sidecar_failed(&call, failure, latency_us),
            },
            Call::Retrieve { .. } => match rag::parse_response(status.as_deref(), &body) {
                Ok(retrieved) => self.insert_retrieved(&retrieved, latency_us),
                Err(failure) => self.sidecar_failed(&call, failure, latency_us),
            },
        };
        if refused.is_some() || self.replied {
            return;
        }
        if self.next_sidecar_call() == Action::Continue {
            if let Err(status) = hostcalls::resume_http_request() {
                log::error!("could not resume the request after the sidecar's answer: {status:?}");
            }
        }
    }

    /// Puts the retrieved chunks into the buffered request body.
    fn insert_retrieved(&mut self, retrieved: &RetrieveResponse, latency_us: u64) -> Option<Action> {
        let max_bytes = self.policy().and_then(|p| p.rag.as_ref()).map_or(0, |r| r.max_context_bytes);
        let mut record = RagRecord { outcome: "no_context".into(), kb_version: Some(retrieved.kb_version), latency_us, ..RagRecord::default() };
        let (block, used) = rag::context_block(retrieved, max_bytes);
        let body = self.sidecar_calls.body.take().unwrap_or_default();
        let mut value: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(_) => {
                record.outcome = "unsupported_dialect".into();
                self.record.rag = Some(record);
                return None;
            }
        };
        if used.is_empty() {
            self.record.rag = Some(record);
            return None;
        }
        if !rag::insert_context(self.dialect, &mut value, &block) {
            record.outcome = "unsupported_dialect".into();
            self.record.rag = Some(record);
            return None;
        }
        for chunk in &used {
            if !record.documents.contains(&chunk.document_id) {
                record.documents.push(chunk.document_id.clone());
            }
        }
        record.chunks = used.len();
        record.outcome = "inserted".into();
        self.record.rag = Some(record);
        let body = meshguard_core::json_encode::to_vec(&value, body.len() + block.len());
        let rewritten = encoding::encode(self.request_encoding, &body);
        if !host::replace_body(BufferType::HttpRequestBody, self.sidecar_calls.buffered_len, &rewritten) {
            return Some(self.refuse(ClientError::unavailable("rewrite_failed", "the request could not be rewritten"), Verdict::Unavailable));
        }
        None
    }
}

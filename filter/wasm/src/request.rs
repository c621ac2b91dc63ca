//! One HTTP request through the filter. Each callback gathers bytes from
//! Envoy, asks `meshguard-core` what to do, and carries the answer out.

use std::cell::RefCell;
use std::rc::Rc;

use meshguard_core::buffer::{self, BufferStep};
use meshguard_core::config::Policy;
use meshguard_core::detect::ScanSession;
use meshguard_core::dialect::{Dialect, Usage};
use meshguard_core::encoding::{self, Encoding};
use meshguard_core::identity::{AuthMode, Authenticator};
use meshguard_core::canary;
use meshguard_core::rag;
use meshguard_core::inspect::{self, Outcome, RequestExtras};
use meshguard_core::quota::{self, Quota};
use meshguard_core::record::{DecisionRecord, ShadowOutcome, Verdict};
use meshguard_core::response;
use meshguard_core::stream::{StreamFilter, StreamLimits, StreamOutput};
use meshguard_core::{ClientError, CompiledConfig};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use crate::host;

mod sidecar;

/// Headers with this prefix are meshguard's own: a client must not be able
/// to forge them, so they are removed from every incoming request.
const INTERNAL_HEADER_PREFIX: &str = "x-meshguard-";

enum ResponseMode {
    /// Not yet known (before response headers).
    Pending,
    /// Buffered whole, up to the response cap, then inspected.
    Buffered,
    /// Server-sent events: redacted event by event, holding back only what
    /// could still become a match.
    Streaming(Box<StreamFilter>),
}

pub struct RequestFilter {
    config: Rc<CompiledConfig>,
    auth: Option<Rc<RefCell<Authenticator>>>,
    policy_name: String,
    record: DecisionRecord,
    content_type: Option<String>,
    /// Microseconds spent inside our callbacks: the latency meshguard adds.
    busy_us: u64,
    /// We answered the client ourselves; later callbacks only pass through.
    replied: bool,
    response_mode: ResponseMode,
    /// Calls to the sidecar: queued, in flight, and what they need.
    sidecar_calls: sidecar::SidecarCalls,
    dialect: Dialect,
    /// The request's scan state (the `tokenize` vault), for the response.
    request_scan: Option<ScanSession>,
    /// Kept from the response headers: header maps can only be read in
    /// their own callback (the SDK aborts the VM on a read at another time).
    response_content_type: Option<String>,
    request_encoding: Encoding,
    /// The canary placed in this request's system prompt.
    canary: Option<String>,
}

impl RequestFilter {
    pub fn new(config: Rc<CompiledConfig>, auth: Option<Rc<RefCell<Authenticator>>>) -> Self {
        let record = DecisionRecord::new(host::now_nanos(), &config.config_hash);
        let policy_name = config.default_policy.clone();
        Self {
            config,
            auth,
            policy_name,
            record,
            content_type: None,
            busy_us: 0,
            replied: false,
            response_mode: ResponseMode::Pending,
            sidecar_calls: sidecar::SidecarCalls::default(),
            dialect: Dialect::Unknown,
            request_scan: None,
            response_content_type: None,
            request_encoding: Encoding::Identity,
            canary: None,
        }
    }

    fn policy(&self) -> Option<&Policy> {
        self.config.policy(&self.policy_name)
    }

    /// Refuses the request (or replaces the response) with a JSON error.
    fn refuse(&mut self, error: ClientError, verdict: Verdict) -> Action {
        self.refuse_with(error, verdict, &[])
    }

    fn refuse_with(&mut self, error: ClientError, verdict: Verdict, headers: &[(&str, &str)]) -> Action {
        self.record.verdict.escalate(verdict);
        self.record.reason = Some(error.code.clone());
        self.record.status = Some(error.status);
        self.replied = true;
        let _ = self.publish_record();
        host::send_error(&error, headers);
        Action::Pause
    }

    /// Establishes who is calling and picks their policy. `Err` carries the
    /// action after a refusal (401, or 503 when no keys are usable).
    fn authenticate(&mut self, headers: &[(String, String)]) -> Result<(), Action> {
        let Some(auth) = self.auth.clone() else {
            return Ok(());
        };
        let mode = auth.borrow().mode();
        let verified = match mode {
            AuthMode::None => return Ok(()),
            AuthMode::Jwt => auth.borrow_mut().authenticate(headers, host::now_secs()),
            AuthMode::TrustedMetadata => {
                let auth = auth.borrow();
                let claims = host::dynamic_metadata_json(auth.metadata_location().0);
                auth.authenticate_metadata(&claims, host::now_secs())
            }
        };
        match verified {
            Ok(identity) => {
                self.policy_name = self.config.selector.select(Some(&identity)).to_string();
                if let Some(rag) = self.config.policy(&self.policy_name).and_then(|p| p.rag.as_ref()) {
                    self.sidecar_calls.groups = rag::groups_from_claims(&identity.claims, &rag.groups_claim);
                }
                host::set_header(MapType::HttpRequestHeaders, "x-meshguard-subject", Some(&identity.subject));
                if let Some(tenant) = &identity.tenant {
                    host::set_header(MapType::HttpRequestHeaders, "x-meshguard-tenant", Some(tenant));
                }
                self.record.subject = Some(identity.subject);
                self.record.issuer = Some(identity.issuer);
                self.record.tenant = identity.tenant;
                Ok(())
            }
            Err(err) => {
                let kind = if err.status() == 401 { "authentication_error" } else { "service_unavailable" };
                let error = ClientError::new(err.status(), kind, err.reason, err.message);
                let verdict = if err.status() == 401 { Verdict::Reject } else { Verdict::Unavailable };
                let challenge = err.www_authenticate();
                Err(self.refuse_with(error, verdict, &[("www-authenticate", challenge.as_str())]))
            }
        }
    }

    /// Puts the record where Envoy's access log can read it, and returns it
    /// as JSON. `on_log` always publishes the final record; a local reply
    /// publishes too, before Envoy logs it.
    fn publish_record(&mut self) -> String {
        self.record.added_latency_us = self.busy_us;
        let json = self.record.to_json();
        host::set_filter_state(host::DECISION_PROPERTY, &json);
        json
    }

    /// Per-subject request rate and token budget (per Envoy instance).
    fn enforce_quotas(&mut self) -> Result<(), Action> {
        let Some(policy) = self.policy() else { return Ok(()) };
        let limits = policy.rate_limit.clone();
        let subject = self.record.subject.clone().unwrap_or_else(|| "anonymous".to_string());
        let now_s = host::now_secs();
        if let Some(per_minute) = limits.requests_per_minute {
            let key = quota::key("rpm", &self.policy_name, &subject);
            let decision = host::update_shared(&key, |stored| match quota::take_request(stored, now_s, per_minute) {
                Quota::Allow { store } => (Some(store), None),
                Quota::Deny { retry_after_s } => (None, Some(retry_after_s)),
            });
            if let Some(Some(retry_after_s)) = decision {
                return Err(self.too_many("rate_limited", format!("more than {per_minute} requests per minute"), retry_after_s));
            }
        }
        if let Some(per_hour) = limits.tokens_per_hour {
            let key = quota::key("tph", &self.policy_name, &subject);
            let stored = hostcalls::get_shared_data(&key).ok().and_then(|(value, _)| value);
            if let Err(retry_after_s) = quota::check_budget(stored.as_deref(), now_s, per_hour) {
                return Err(self.too_many("token_budget_exceeded", format!("the hourly budget of {per_hour} tokens is spent"), retry_after_s));
            }
        }
        Ok(())
    }

    fn too_many(&mut self, code: &str, what: String, retry_after_s: u64) -> Action {
        let error = ClientError::new(429, "rate_limit_error", code, format!("{what}; retry after {retry_after_s} s"));
        let retry_after = retry_after_s.to_string();
        self.refuse_with(error, Verdict::Block, &[("retry-after", retry_after.as_str())])
    }

    /// Adds the tokens a response reports to the subject's hourly budget.
    fn spend_tokens(&self, tokens: u64) {
        let Some(policy) = self.policy() else { return };
        if policy.rate_limit.tokens_per_hour.is_none() || tokens == 0 {
            return;
        }
        let subject = self.record.subject.clone().unwrap_or_else(|| "anonymous".to_string());
        let key = quota::key("tph", &self.policy_name, &subject);
        let now_s = host::now_secs();
        host::update_shared(&key, |stored| (Some(quota::spend_tokens(stored, now_s, tokens)), ()));
    }

    fn on_request_headers(&mut self, end_of_stream: bool) -> Action {
        // One read of the whole map: each host call costs more than the
        // lookups (≈1.5 µs per header read in V8).
        let mut headers = host::lowercase_headers(MapType::HttpRequestHeaders);
        headers.retain(|(name, _)| {
            let internal = name.starts_with(INTERNAL_HEADER_PREFIX);
            if internal {
                host::set_header(MapType::HttpRequestHeaders, name, None);
            }
            !internal
        });
        let request_header = |name: &str| host::find_header(&headers, name);
        self.record.request_id = request_header("x-request-id");
        self.record.route.method = request_header(":method").unwrap_or_default();
        self.record.route.path = request_header(":path").unwrap_or_default();
        self.record.route.authority = request_header(":authority").unwrap_or_default();
        if let Err(action) = self.authenticate(&headers) {
            return action;
        }
        self.record.policy = Some(self.policy_name.clone());
        if let Err(action) = self.enforce_quotas() {
            return action;
        }
        self.content_type = request_header("content-type");
        host::set_header(MapType::HttpRequestHeaders, "x-meshguard-policy", Some(&self.policy_name));
        // A compressed answer could not be scanned: ask the upstream for an
        // uncompressed one (a compressed answer is refused at its headers).
        host::set_header(MapType::HttpRequestHeaders, "accept-encoding", Some("identity"));

        if end_of_stream {
            return Action::Continue;
        }
        let compressed = self.policy().map(|p| p.compressed_requests).unwrap_or_default();
        match encoding::parse(request_header("content-encoding").as_deref(), compressed) {
            Ok(request_encoding) => self.request_encoding = request_encoding,
            Err(error) => return self.refuse(error, Verdict::Reject),
        }
        let cap = self.policy().map_or(self.config.limits.max_request_bytes, |p| p.max_request_bytes);
        if buffer::declared_too_large(request_header("content-length").as_deref(), cap) {
            return self.refuse(ClientError::body_too_large(cap), Verdict::Reject);
        }
        // The body may be rewritten to another length. Envoy 1.40 needs the
        // header gone here, with Continue: pausing headers hangs the request.
        host::set_header(MapType::HttpRequestHeaders, "content-length", None);
        Action::Continue
    }

    fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Pause;
        }
        let config = Rc::clone(&self.config);
        let Some(policy) = config.policy(&self.policy_name) else {
            return self.refuse(ClientError::unavailable("policy_missing", "no policy applies to this request"), Verdict::Unavailable);
        };
        match buffer::next_step(body_size, end_of_stream, policy.max_request_bytes) {
            BufferStep::Wait => return Action::Pause,
            BufferStep::TooLarge => return self.refuse(ClientError::body_too_large(policy.max_request_bytes), Verdict::Reject),
            BufferStep::Inspect => {}
        }
        self.record.request_bytes = body_size;
        let received = host::body(BufferType::HttpRequestBody, body_size);
        // The cap applies to the decoded body too, so a small compressed
        // body cannot unpack into more than the policy scans.
        let body = match encoding::decode(self.request_encoding, received, policy.max_request_bytes) {
            Ok(body) => body,
            Err(error) => return self.refuse(error, Verdict::Reject),
        };
        if policy.canary {
            let seed = format!("{}:{}:{}", host::now_nanos(), host::next_sequence(), self.record.request_id.as_deref().unwrap_or(""));
            self.canary = Some(canary::make(seed.as_bytes()));
        }
        let extras = RequestExtras { fingerprint_key: config.fingerprint_key.as_ref(), canary: self.canary.as_deref() };
        let inspection = inspect::inspect_request(policy, &self.record.route.path, self.content_type.as_deref(), &body, extras);
        if let Some(shadow) = policy.shadow.as_deref().and_then(|name| config.policy(name)) {
            let candidate = inspect::inspect_request(shadow, &self.record.route.path, self.content_type.as_deref(), &body, RequestExtras::default());
            self.record.shadow = Some(ShadowOutcome {
                policy: shadow.name.clone(),
                differs: candidate.verdict != inspection.verdict || candidate.reason != inspection.reason,
                verdict: candidate.verdict,
                reason: candidate.reason,
                findings: candidate.findings.iter().map(|f| f.count).sum(),
            });
        }
        self.record.prompt_fingerprint = inspection.prompt_fingerprint.clone();
        self.record.canary = inspection.canary_inserted;
        self.record.classifier = inspection.classifier.clone();
        if !inspection.canary_inserted {
            self.canary = None;
        }
        self.dialect = inspection.dialect;
        self.record.dialect = Some(inspection.dialect.as_str());
        self.request_scan = Some(inspection.session);
        self.record.model = inspection.model;
        self.record.routed_to = inspection.routed_to.clone();
        self.record.findings.extend(inspection.findings);
        self.record.verdict.escalate(inspection.verdict);
        if inspection.reason.is_some() && self.record.reason.is_none() {
            self.record.reason = inspection.reason.clone();
        }
        let (forwarded, buffered_len) = match inspection.outcome {
            Outcome::Refuse(error) => return self.refuse(error, inspection.verdict),
            Outcome::Rewrite(new_body) => {
                // `content-encoding` has gone upstream already: keep its promise.
                let encoded = encoding::encode(self.request_encoding, &new_body);
                let replaced = host::replace_body(BufferType::HttpRequestBody, body_size, &encoded).then_some(encoded.len());
                let Some(encoded_len) = replaced else {
                    return self.refuse(ClientError::unavailable("rewrite_failed", "the request could not be rewritten"), Verdict::Unavailable);
                };
                (new_body, encoded_len)
            }
            Outcome::Forward => (body, body_size),
        };
        let planned = sidecar::Planned { texts: inspection.texts, rag_query: inspection.rag_query, body: &forwarded, buffered_len };
        self.start_sidecar_calls(policy, planned)
    }

    fn on_response_headers(&mut self, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        if end_of_stream {
            return Action::Continue;
        }
        let config = Rc::clone(&self.config);
        let Some(policy) = config.policy(&self.policy_name) else {
            return self.refuse(ClientError::unavailable("policy_missing", "no policy applies to this request"), Verdict::Unavailable);
        };
        let cap = config.limits.max_response_bytes;
        let headers = host::lowercase_headers(MapType::HttpResponseHeaders);
        let response_header = |name: &str| host::find_header(&headers, name);
        if let Some(error) = inspect::check_content_encoding(response_header("content-encoding").as_deref()) {
            let error = ClientError::response_rejected(&error.code, "the upstream answered with a compressed body, which cannot be inspected");
            return self.refuse(error, Verdict::Reject);
        }
        self.response_content_type = response_header("content-type");
        let content_type = self.response_content_type.clone().unwrap_or_default();
        if content_type.to_ascii_lowercase().starts_with("text/event-stream") {
            let dialect = self.dialect;
            let vault = self.request_scan.take().unwrap_or_else(|| ScanSession::new("request"));
            let limits = StreamLimits::for_engine(&policy.engine, cap);
            let stream = StreamFilter::new(dialect, vault, limits)
                .with_canary(self.canary.clone())
                .with_rules(Some(policy.rules.clone()));
            self.response_mode = ResponseMode::Streaming(Box::new(stream));
        } else {
            // Envoy 1.40 does not deliver the body to a filter that paused the
            // response headers, so an oversized response must be caught here,
            // while the headers can still be replaced by an error reply.
            if buffer::declared_too_large(response_header("content-length").as_deref(), cap) {
                return self.refuse(response_too_large(cap), Verdict::Reject);
            }
            self.response_mode = ResponseMode::Buffered;
        }
        // The body may be rewritten to another length.
        host::set_header(MapType::HttpResponseHeaders, "content-length", None);
        Action::Continue
    }

    fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        match std::mem::replace(&mut self.response_mode, ResponseMode::Pending) {
            ResponseMode::Streaming(mut stream) => {
                let action = self.on_stream_chunk(&mut stream, body_size, end_of_stream);
                self.response_mode = ResponseMode::Streaming(stream);
                action
            }
            ResponseMode::Buffered => {
                self.response_mode = ResponseMode::Buffered;
                match buffer::next_step(body_size, end_of_stream, self.config.limits.max_response_bytes) {
                    BufferStep::Wait => Action::Pause,
                    // Headers are already on their way: the stream is reset,
                    // and the unscanned body never reaches the client.
                    BufferStep::TooLarge => self.refuse(response_too_large(self.config.limits.max_response_bytes), Verdict::Reject),
                    BufferStep::Inspect => self.inspect_response_body(body_size),
                }
            }
            ResponseMode::Pending => {
                self.record.response_bytes = self.record.response_bytes.saturating_add(body_size);
                Action::Continue
            }
        }
    }

    /// One chunk of an SSE stream: what may be released replaces the chunk.
    fn on_stream_chunk(&mut self, stream: &mut StreamFilter, body_size: usize, end_of_stream: bool) -> Action {
        let config = Rc::clone(&self.config);
        let Some(policy) = config.policy(&self.policy_name) else {
            return Action::Continue;
        };
        self.record.response_bytes = self.record.response_bytes.saturating_add(body_size);
        let chunk = host::body(BufferType::HttpResponseBody, body_size);
        let mut out = stream.push(&policy.engine, &chunk);
        if end_of_stream {
            let last = stream.finish(&policy.engine);
            out.bytes_to_emit.extend_from_slice(&last.bytes_to_emit);
            out.blocked = out.blocked.or(last.blocked);
            out.usage = last.usage.or(out.usage);
        }
        self.note_stream_output(&out);
        host::replace_body(BufferType::HttpResponseBody, body_size, &out.bytes_to_emit);
        if end_of_stream {
            self.record.findings.extend(stream.take_findings());
            if stream.rewritten() {
                self.record.verdict.escalate(Verdict::Modify);
            }
            if let Some(usage) = stream.usage() {
                self.note_usage(usage);
            }
        }
        Action::Continue
    }

    fn note_stream_output(&mut self, out: &StreamOutput) {
        if let Some(block) = &out.blocked {
            self.record.verdict.escalate(if block.by_detector { Verdict::Block } else { Verdict::Reject });
            self.record.reason = Some(block.code.clone());
        }
    }

    fn note_usage(&mut self, usage: Usage) {
        self.record.usage = Some(usage);
        if let Some(total) = usage.total() {
            self.spend_tokens(total);
        }
    }

    /// A whole non-streamed response: forwarded, rewritten, or refused.
    fn inspect_response_body(&mut self, body_size: usize) -> Action {
        let config = Rc::clone(&self.config);
        let Some(policy) = config.policy(&self.policy_name) else {
            return Action::Continue;
        };
        self.record.response_bytes = body_size;
        let body = host::body(BufferType::HttpResponseBody, body_size);
        if self.canary.as_deref().is_some_and(|c| canary::leaked(&body, c)) {
            let error = ClientError::new(403, "policy_violation", canary::LEAK_CODE, "the answer repeated the system prompt's canary and was not delivered");
            return self.refuse(error, Verdict::Block);
        }
        if policy.rules.tools.is_some() {
            if let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Err(error) = policy.rules.check_tool_calls(&answer) {
                    return self.refuse(error, Verdict::Block);
                }
            }
        }
        let content_type = self.response_content_type.clone();
        let vault = self.request_scan.take().unwrap_or_else(|| ScanSession::new("request"));
        let inspection = response::inspect_response(self.dialect, &policy.engine, &vault, content_type.as_deref(), &body);
        self.record.findings.extend(inspection.findings);
        if let Some(usage) = inspection.usage {
            self.note_usage(usage);
        }
        match inspection.outcome {
            Outcome::Forward => {
                self.record.verdict.escalate(inspection.verdict);
            }
            Outcome::Rewrite(new_body) => {
                self.record.verdict.escalate(inspection.verdict);
                host::replace_body(BufferType::HttpResponseBody, body_size, &new_body);
            }
            // The status line has gone out already: the stream is reset and
            // the client never receives the refused body.
            Outcome::Refuse(error) => return self.refuse(error, inspection.verdict),
        }
        Action::Continue
    }

    fn timed<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> T {
        let start = host::now();
        let result = step(self);
        self.busy_us = self.busy_us.saturating_add(host::elapsed_us(start));
        result
    }
}

fn response_too_large(cap: usize) -> ClientError {
    ClientError::response_rejected("response_too_large", format!("the upstream response exceeds the {cap}-byte limit and was not delivered"))
}

impl Context for RequestFilter {
    fn on_http_call_response(&mut self, _token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        self.timed(|this| this.on_sidecar_response(body_size));
    }
}

impl HttpContext for RequestFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.timed(|this| this.on_request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.timed(|this| this.on_request_body(body_size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.timed(|this| this.on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.timed(|this| this.on_response_body(body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        let json = self.publish_record();
        if self.config.audit.log_decisions {
            log::info!("meshguard.decision {json}");
        }
        host::emit_metrics(&meshguard_core::metrics::samples(&self.record));
    }
}

//! The root context: reads and compiles the plugin configuration once, keeps
//! the per-worker authenticator (token cache, key set) and refreshes a remote
//! JWKS on a timer.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use meshguard_core::identity::Authenticator;
use meshguard_core::CompiledConfig;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};

use crate::host;
use crate::request::RequestFilter;

/// How often the timer looks whether a JWKS refresh is due; the schedule
/// itself (refresh period, backoff) lives in `meshguard-core`.
const JWKS_TICK: Duration = Duration::from_secs(1);

/// Largest JWKS document accepted from the identity provider.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Default)]
pub struct MeshguardRoot {
    config: Option<Rc<CompiledConfig>>,
    auth: Option<Rc<RefCell<Authenticator>>>,
    jwks_in_flight: bool,
}

impl MeshguardRoot {
    fn fetch_jwks_if_due(&mut self) {
        let Some(auth) = &self.auth else { return };
        let now_s = host::now_secs();
        let remote = {
            let auth = auth.borrow();
            match auth.remote_jwks() {
                Some(remote) if !self.jwks_in_flight && auth.jwks_fetch_due(now_s) => remote.clone(),
                _ => return,
            }
        };
        let headers = vec![(":method", "GET"), (":path", remote.path.as_str()), (":authority", remote.authority.as_str()), ("accept", "application/json")];
        match hostcalls::dispatch_http_call(&remote.cluster, headers, None, vec![], Duration::from_millis(remote.timeout_ms)) {
            Ok(_) => self.jwks_in_flight = true,
            Err(status) => {
                log::warn!("JWKS fetch from cluster `{}` could not start: {status:?}", remote.cluster);
                auth.borrow_mut().jwks_fetch_failed(now_s);
            }
        }
    }
}

impl Context for MeshguardRoot {
    fn on_http_call_response(&mut self, _token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        self.jwks_in_flight = false;
        let Some(auth) = &self.auth else { return };
        let now_s = host::now_secs();
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status").ok().flatten();
        let mut auth = auth.borrow_mut();
        if status.as_deref() != Some("200") || body_size > MAX_JWKS_BYTES {
            log::warn!("JWKS fetch failed (status {}); keeping the current keys", status.as_deref().unwrap_or("none"));
            auth.jwks_fetch_failed(now_s);
            return;
        }
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default();
        match auth.update_jwks(&body, now_s) {
            Ok(keys) => log::info!("JWKS refreshed: {keys} keys"),
            Err(err) => log::warn!("JWKS rejected, keeping the current keys: {err}"),
        }
    }
}

impl RootContext for MeshguardRoot {
    /// Returning false fails plugin start: Envoy then refuses the
    /// configuration, and the reason (with its field path) is in its log.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        meshguard_core::clock::install(host::now_us);
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            _ => Vec::new(),
        };
        let mut config = match CompiledConfig::from_json(&bytes) {
            Ok(config) => config,
            Err(err) => {
                log::error!("{err}");
                return false;
            }
        };
        log::info!(
            "meshguard configured: {} policies, default `{}`, config hash {}",
            config.policies.len(),
            config.default_policy,
            config.config_hash
        );
        self.auth = config.authenticator.take().map(|auth| Rc::new(RefCell::new(auth)));
        self.config = Some(Rc::new(config));
        if self.auth.as_ref().is_some_and(|auth| auth.borrow().remote_jwks().is_some()) {
            if let Err(status) = hostcalls::set_tick_period(JWKS_TICK) {
                log::error!("could not start the JWKS refresh timer: {status:?}");
                return false;
            }
            self.fetch_jwks_if_due();
        }
        true
    }

    fn on_tick(&mut self) {
        self.fetch_jwks_if_due();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(RequestFilter::new(config, self.auth.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

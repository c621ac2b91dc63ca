//! The root context: reads and compiles the plugin configuration once, then
//! hands each request a shared reference to it.

use std::rc::Rc;

use meshguard_core::CompiledConfig;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::request::RequestFilter;

#[derive(Default)]
pub struct MeshguardRoot {
    config: Option<Rc<CompiledConfig>>,
}

impl Context for MeshguardRoot {}

impl RootContext for MeshguardRoot {
    /// Returning false fails plugin start: Envoy then refuses the
    /// configuration, and the reason (with its field path) is in its log.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            _ => Vec::new(),
        };
        match CompiledConfig::from_json(&bytes) {
            Ok(config) => {
                log::info!(
                    "meshguard configured: {} policies, default `{}`, config hash {}",
                    config.policies.len(),
                    config.default_policy,
                    config.config_hash
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(err) => {
                log::error!("{err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(RequestFilter::new(config)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

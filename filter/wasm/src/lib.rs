//! meshguard's proxy-wasm filter. This crate only moves bytes between Envoy
//! and `meshguard-core`; every decision is made there and tested on the host.

mod host;
mod request;
mod root;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::MeshguardRoot::default()) });
}}

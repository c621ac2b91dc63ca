//! The floor under any proxy-wasm filter, for `scripts/bench-load --floor`.
//!
//! Its plugin configuration picks one of two modes:
//!
//! - `pass`: every callback returns at once. What Envoy pays to run a wasm
//!   filter at all (V8 entered for each callback).
//! - `read`: the least an inspecting filter must do, and no inspection: read
//!   the request and response header maps, drop `content-length` (a
//!   rewritten body may change length), buffer each body whole and read it
//!   (a body that passes unchanged is not written back, as in meshguard),
//!   and leave a small record in filter state for the access log. meshguard does all of this and then its own work, so
//!   the gap between this mode and meshguard is what meshguard's logic costs.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { read: false }) });
}}

struct Root {
    read: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match config.trim_ascii() {
            b"pass" | b"" => self.read = false,
            b"read" => self.read = true,
            _ => return false,
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor { read: self.read, seen_bytes: 0 }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    read: bool,
    /// Bytes of headers and bodies read: goes into the record, so the reads
    /// cannot be optimised away.
    seen_bytes: usize,
}

impl Floor {
    fn headers(&mut self, map: MapType) {
        let headers = proxy_wasm::hostcalls::get_map(map).unwrap_or_default();
        self.seen_bytes += headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
        let _ = proxy_wasm::hostcalls::set_map_value(map, "content-length", None);
    }

    fn body(&mut self, buffer: BufferType, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = proxy_wasm::hostcalls::get_buffer(buffer, 0, size).ok().flatten().unwrap_or_default();
        self.seen_bytes += body.len();
        Action::Continue
    }
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.read {
            self.headers(MapType::HttpRequestHeaders);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.read {
            return Action::Continue;
        }
        self.body(BufferType::HttpRequestBody, body_size, end_of_stream)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.read {
            self.headers(MapType::HttpResponseHeaders);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.read {
            return Action::Continue;
        }
        self.body(BufferType::HttpResponseBody, body_size, end_of_stream)
    }

    fn on_log(&mut self) {
        if self.read {
            let record = format!("{{\"seen_bytes\":{}}}", self.seen_bytes);
            let _ = proxy_wasm::hostcalls::set_property(vec!["meshguard_decision"], Some(record.as_bytes()));
        }
    }
}
